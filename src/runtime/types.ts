// Contracts of the single-host runtime: images, containers (runc + conmon), group networks (CNI).
import type { Readable, Writable } from 'node:stream';

/** The parts of an OCI image config that shape a container's process. */
export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  env: string[]; // "KEY=value"
  workingDir: string;
  user: string;
  exposedPorts: string[]; // "80/tcp"
}

/** An image present in the local store, ready to be used as a container rootfs. */
export interface PulledImage {
  /** Normalised reference the image was asked for, e.g. "127.0.0.1:5000/web:1" or "docker.io/library/busybox:latest". */
  reference: string;
  /** Digest of the manifest that was selected (linux/amd64 when the reference named an index). */
  digest: string;
  config: ImageConfig;
  /** Unpacked layer directories, bottom layer first. Read-only: shared by every container of the image. */
  layerDirs: string[];
  /** Compressed size of all layers in bytes. */
  size: number;
}

export interface RegistryCredentials {
  server: string; // "127.0.0.1:5000", "myregistry.example"
  username: string;
  password: string;
}

export type PullEvent =
  | { type: 'resolved'; reference: string; digest: string; layers: number; totalBytes: number }
  | { type: 'layer'; digest: string; doneBytes: number; totalBytes: number; cached: boolean }
  | { type: 'done'; reference: string; digest: string };

export interface PullOptions {
  credentials?: RegistryCredentials[];
  onEvent?: (e: PullEvent) => void;
  signal?: AbortSignal;
}

export interface Mount {
  source: string;
  destination: string;
  readOnly: boolean;
}

/** Everything needed to run one container of a group. */
export interface ContainerSpec {
  /** runc container id; unique on the host; [a-z0-9][a-z0-9_.-]*. */
  id: string;
  image: PulledImage;
  /** ACI semantics: when set, replaces both the image's entrypoint and cmd. */
  command?: string[];
  /** Merged over the image's env. */
  env: Record<string, string>;
  /** CPU limit in cores (0.5 = half a core). */
  cpuLimit: number;
  memoryLimitBytes: number;
  /** Network namespace shared by the group's containers (from NetworkManager.setup). */
  netnsPath: string;
  hostname: string;
  mounts: Mount[];
  /** Defaults to 1024. */
  pidsLimit?: number;
  /** The sandbox's address (Sandbox.ip), written into /etc/hosts for the hostname; 127.0.1.1 when absent. */
  ip?: string;
  /**
   * A directory for the container's writable layer (e.g. on its group's size-limited disk); it
   * belongs to the caller, who removes it. Default: the container's own dir.
   */
  scratchDir?: string;
}

export type ContainerRunState = 'created' | 'running' | 'exited' | 'unknown';

/** What a container has used: the counters Azure Monitor's container metrics are made from. */
export interface ContainerUsage {
  /** CPU time used since the container started, in nanoseconds (a counter). */
  cpuNanos: number;
  /** Memory in use now, without the page cache the kernel can take back (Kubernetes' "working set"). */
  memoryBytes: number;
  /** Bytes received and sent on the container's network interfaces, loopback aside (counters of its network namespace). */
  rxBytes?: number;
  txBytes?: number;
}

export interface ContainerStatus {
  id: string;
  state: ContainerRunState;
  /** PID of the container's init process, while running. */
  pid?: number;
  exitCode?: number;
  oomKilled?: boolean;
  startedAt?: string; // ISO 8601
  finishedAt?: string; // ISO 8601
}

export interface PublishedPort {
  port: number;
  protocol: 'TCP' | 'UDP';
}

export interface Sandbox {
  id: string;
  netnsPath: string;
  ip: string;
}

/** The size of a terminal in character cells. */
export interface TerminalSize {
  rows: number;
  cols: number;
}

export interface ExecOptions {
  /** "KEY=value", added to the container's environment. */
  env?: string[];
  cwd?: string;
  /** Run under a pseudo-terminal of this size (0 x 0: size unknown). */
  tty?: TerminalSize;
}

export interface ExecResult {
  /** The process's exit code; 128 + the signal's number when a signal ended it. */
  exitCode?: number;
  /** Set instead of exitCode when the process never ran (e.g. no such executable). */
  error?: string;
}

/** A process started in a running container. */
export interface ExecHandle {
  readonly tty: boolean;
  /** Its input; end() is end of input (with a tty: the terminal's EOF character, once). */
  readonly stdin: Writable;
  /** Its output; with a tty everything the terminal shows. */
  readonly stdout: Readable;
  /** Its stderr; with a tty only the OCI runtime's own messages. */
  readonly stderr: Readable;
  /** Resizes the terminal (no-op without one); the process gets SIGWINCH. */
  resize(size: TerminalSize): void;
  /** Ends the session: the process and every process of its session are killed. */
  kill(): void;
  /** Settles once the process has ended (or could not start) and its output has been passed on. */
  readonly done: Promise<ExecResult>;
}

export interface LogOptions {
  tail?: number;
  timestamps?: boolean;
  /** The log of the container's previous run (a restart keeps exactly one). */
  previous?: boolean;
}
