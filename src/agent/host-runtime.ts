// What the agent needs of its host: the runtime's parts as interfaces, so the reconciler runs against the real runtime or against fakes in unit tests.
import type { HttpProbeTarget, ProbeResult } from '../runtime/probe.js';
import type {
  ContainerSpec, ContainerStatus, ContainerUsage, ExecHandle, ExecOptions, LogOptions, PublishedPort, PullOptions, PulledImage, Sandbox,
} from '../runtime/types.js';
import type { VolumeSpec } from './spec.js';

/** Containers under their monitor (runc/crun + conmon): ContainerRuntime. */
export interface Containers {
  list(): Promise<string[]>;
  status(id: string): Promise<ContainerStatus | undefined>;
  /** Mounts the rootfs (image layers + writable layer in `scratchDir`) ahead of the start. */
  prepare(id: string, layerDirs: string[], scratchDir?: string): Promise<void>;
  start(spec: ContainerSpec): Promise<ContainerStatus>;
  stop(id: string, graceSeconds: number): Promise<ContainerStatus>;
  remove(id: string): Promise<void>;
  exec(id: string, argv: string[], opts?: ExecOptions): Promise<ExecHandle>;
  readLogs(id: string, opts: LogOptions): Promise<string>;
  followLogs(id: string, opts: LogOptions, onChunk: (text: string) => void, signal: AbortSignal): Promise<void>;
  /** Calls `onExit` with a container's id as its exit is recorded; returns a function that stops. */
  watchExits(onExit: (id: string) => void): () => void;
  /** What the container has used (its cgroup's counters); undefined when it has no cgroup (not running). */
  usage(id: string): ContainerUsage | undefined;
}

/** Group network sandboxes (a netns with an address, ports published on the host): NetworkManager. */
export interface Networks {
  list(): Promise<string[]>;
  get(sandboxId: string): Promise<Sandbox | undefined>;
  /**
   * The sandbox as soon as it can be used, and `published` once its host ports are too; in network `segment` (it
   * reaches the sandboxes of its segment only; absent: the host's default) with the segment's cluster-wide `tag`
   * (its sandboxes on other hosts; absent: none). Idempotent.
   */
  setupStaged(sandboxId: string, ports: PublishedPort[], segment?: string, tag?: number): { sandbox: Promise<Sandbox>; published: Promise<Sandbox> };
  /** The ports of `ports` the host keeps (its own sockets, berth's reserved ports) where they would be published. */
  unavailablePorts(ports: PublishedPort[]): Promise<PublishedPort[]>;
  /** Every port the host keeps where ports would be published, in order of port. */
  heldPorts(): Promise<PublishedPort[]>;
  teardown(sandboxId: string): Promise<void>;
}

/** The local image store: ImageStore. */
export interface Images {
  get(ref: string, opts?: { anonymousOnly?: boolean }): Promise<PulledImage | undefined>;
  pull(ref: string, opts?: PullOptions): Promise<PulledImage>;
  list(): Promise<PulledImage[]>;
}

/** Where a group generation's writable layers and volumes live: GroupStorage (size-limited disks or the data dir). */
export interface Storage {
  claim(id: string): Promise<void>;
  scratchDir(id: string, container: string): string | undefined;
  volumeDir(id: string, volume: string): string;
  prepareVolumes(id: string, volumes: VolumeSpec[], netnsPath: string): Promise<void>;
  ids(): Promise<string[]>;
  remove(id: string): Promise<void>;
  /** The disk's figures when it is full, else undefined. */
  full(id: string): { limitBytes: number } | undefined;
}

/** An httpGet probe against an address of the group (runtime/probe.ts's httpProbe). */
export type HttpProbe = (target: HttpProbeTarget) => Promise<ProbeResult>;

export interface HostRuntime {
  containers: Containers;
  network: Networks;
  images: Images;
  storage: Storage;
  httpProbe: HttpProbe;
}
