// Fakes of the host's runtime for the agent's unit tests (never used by berth itself; the end-to-end suites run the real runtime): in memory, recording what the agent asked of them.
import { PassThrough } from 'node:stream';
import { BerthError, Codes } from '../lib/errors.js';
import type { ProbeResult } from '../runtime/probe.js';
import type { ContainerSpec, ContainerStatus, ContainerUsage, ExecHandle, LogOptions, PublishedPort, PullOptions, PulledImage, Sandbox } from '../runtime/types.js';
import type { Containers, HostRuntime, Images, Networks, Storage } from './host-runtime.js';
import type { HostContainer, HostSpec, PlacedHostSpec, VolumeSpec } from './spec.js';

const now = () => new Date().toISOString();

interface FakeContainer {
  spec: ContainerSpec;
  status: ContainerStatus;
}

export class FakeContainers implements Containers {
  readonly containers = new Map<string, FakeContainer>();
  /** Every call that changes something, in order: `start ID`, `stop ID`, `remove ID`, `prepare ID`. */
  readonly actions: string[] = [];
  /** What a start does after the container runs (e.g. exit at once): set by a test. */
  onStart?: (id: string, spec: ContainerSpec) => void;
  /** The exit code of an exec (probes): set by a test. Default 0. */
  execExitCode: (id: string, argv: string[]) => number = () => 0;
  /** Makes the next calls of a kind fail (a runtime that breaks). */
  failing = new Map<'start' | 'list', number>();
  /** What a running container's cgroup says it used: set by a test. Default nothing used yet. */
  usageOf: (id: string) => ContainerUsage = () => ({ cpuNanos: 0, memoryBytes: 0 });
  private exitWatchers = new Set<(id: string) => void>();

  async list(): Promise<string[]> {
    this.fail('list');
    return [...this.containers.keys()];
  }

  async status(id: string): Promise<ContainerStatus | undefined> {
    const c = this.containers.get(id);
    return c && { ...c.status };
  }

  async prepare(id: string): Promise<void> {
    this.actions.push(`prepare ${id}`);
  }

  async start(spec: ContainerSpec): Promise<ContainerStatus> {
    this.fail('start');
    this.actions.push(`start ${spec.id}`);
    const c = { spec, status: { id: spec.id, state: 'running' as const, pid: 1000 + this.actions.length, startedAt: now() } };
    this.containers.set(spec.id, c);
    this.onStart?.(spec.id, spec);
    return { ...c.status };
  }

  async stop(id: string): Promise<ContainerStatus> {
    this.actions.push(`stop ${id}`);
    const c = this.containers.get(id);
    if (!c) throw new BerthError(Codes.NotFound, `no container ${id}`, 404);
    if (c.status.state === 'running') this.exit(id, 143);
    return { ...c.status };
  }

  async remove(id: string): Promise<void> {
    this.actions.push(`remove ${id}`);
    this.containers.delete(id);
  }

  async exec(id: string, argv: string[]): Promise<ExecHandle> {
    const code = this.execExitCode(id, argv);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stdout.end();
    stderr.end();
    return { tty: false, stdin: new PassThrough(), stdout, stderr, resize: () => undefined, kill: () => undefined, done: Promise.resolve({ exitCode: code }) };
  }

  async readLogs(id: string, opts: LogOptions): Promise<string> {
    if (!this.containers.has(id)) throw new BerthError(Codes.NotFound, `no container ${id}`, 404);
    return `log of ${id}${opts.previous ? ' (previous)' : ''}\n`;
  }

  async followLogs(id: string, opts: LogOptions, onChunk: (text: string) => void): Promise<void> {
    onChunk(await this.readLogs(id, opts));
  }

  watchExits(onExit: (id: string) => void): () => void {
    this.exitWatchers.add(onExit);
    return () => this.exitWatchers.delete(onExit);
  }

  usage(id: string): ContainerUsage | undefined {
    return this.containers.get(id)?.status.state === 'running' ? this.usageOf(id) : undefined;
  }

  /** The container's process ends with `exitCode` (conmon records it: exit watchers hear of it). */
  exit(id: string, exitCode: number, o: { oomKilled?: boolean } = {}) {
    const c = this.containers.get(id);
    if (!c) throw new Error(`no container ${id}`);
    c.status = { ...c.status, state: 'exited', exitCode, finishedAt: now(), pid: undefined, ...(o.oomKilled && { oomKilled: true }) };
    for (const w of this.exitWatchers) w(id);
  }

  /** Leaves a container as a crash in the middle of its start would: created, never started. */
  leaveCreated(spec: ContainerSpec) {
    this.containers.set(spec.id, { spec, status: { id: spec.id, state: 'created' } });
  }

  /** Ids of the containers in state `state`. */
  inState(state: ContainerStatus['state']): string[] {
    return [...this.containers.values()].filter((c) => c.status.state === state).map((c) => c.status.id);
  }

  private fail(kind: 'start' | 'list') {
    const n = this.failing.get(kind) ?? 0;
    if (n <= 0) return;
    this.failing.set(kind, n - 1);
    throw new BerthError(Codes.RuntimeError, `the runtime failed to ${kind}`, 500);
  }
}

export class FakeNetworks implements Networks {
  readonly sandboxes = new Map<string, { sandbox: Sandbox; ports: PublishedPort[]; segment?: string; tag?: number }>();
  readonly actions: string[] = [];
  /** Ports the host keeps for itself. */
  hostPorts: PublishedPort[] = [];
  private n = 0;

  async list(): Promise<string[]> {
    return [...this.sandboxes.keys()];
  }

  async get(id: string): Promise<Sandbox | undefined> {
    return this.sandboxes.get(id)?.sandbox;
  }

  setupStaged(id: string, ports: PublishedPort[], segment?: string, tag?: number) {
    // as the real one: never over a port the host keeps
    const held = ports.find((p) => this.hostPorts.some((h) => h.port === p.port && h.protocol === p.protocol));
    if (held) {
      const refused = Promise.reject(new BerthError(Codes.PortAlreadyInUse, `The port ${held.port}/${held.protocol} is already in use on this host.`, 409));
      refused.catch(() => undefined);
      return { sandbox: refused, published: refused };
    }
    let s = this.sandboxes.get(id);
    if (!s) {
      this.actions.push(`setup ${id}`);
      s = { sandbox: { id, netnsPath: `/run/netns/berth-${id}`, ip: `10.0.0.${++this.n}` }, ports, segment, tag };
      this.sandboxes.set(id, s);
    }
    const done = Promise.resolve(s.sandbox);
    return { sandbox: done, published: done };
  }

  async unavailablePorts(ports: PublishedPort[]): Promise<PublishedPort[]> {
    return ports.filter((p) => this.hostPorts.some((h) => h.port === p.port && h.protocol === p.protocol));
  }

  async heldPorts(): Promise<PublishedPort[]> {
    return [...this.hostPorts].sort((a, b) => a.port - b.port);
  }

  async teardown(id: string): Promise<void> {
    this.actions.push(`teardown ${id}`);
    this.sandboxes.delete(id);
  }
}

export class FakeImages implements Images {
  readonly pulled = new Map<string, PulledImage>();
  readonly pulls: string[] = [];
  /** Pulls of these references fail with InaccessibleImage. */
  readonly missing = new Set<string>();
  /** Pulls of these references never finish (a registry that stalls) until they are aborted. */
  readonly stalled = new Set<string>();

  async get(ref: string): Promise<PulledImage | undefined> {
    return this.pulled.get(ref);
  }

  async pull(ref: string, opts: PullOptions = {}): Promise<PulledImage> {
    this.pulls.push(ref);
    if (this.missing.has(ref)) throw new BerthError(Codes.InaccessibleImage, `The image '${ref}' cannot be pulled: not found.`, 400);
    if (this.stalled.has(ref))
      await new Promise((_, reject) => opts.signal?.addEventListener('abort', () => reject(opts.signal!.reason), { once: true }));
    const img: PulledImage = {
      reference: ref, digest: `sha256:${'0'.repeat(64)}`, size: 1 << 20, layerDirs: [`/layers/${ref}`],
      config: { entrypoint: [], cmd: ['sh'], env: [], workingDir: '/', user: '', exposedPorts: [] },
    };
    this.pulled.set(ref, img);
    return img;
  }

  async list(): Promise<PulledImage[]> {
    return [...this.pulled.values()];
  }
}

export class FakeStorage implements Storage {
  readonly claimed = new Set<string>();
  readonly volumes = new Map<string, VolumeSpec[]>();
  /** Generations whose disk is full. */
  readonly fullOnes = new Set<string>();

  async claim(id: string): Promise<void> {
    this.claimed.add(id);
  }

  scratchDir(id: string, container: string): string {
    return `/disks/${id}/containers/${container}`;
  }

  volumeDir(id: string, volume: string): string {
    return `/disks/${id}/volumes/${volume}`;
  }

  async prepareVolumes(id: string, volumes: VolumeSpec[]): Promise<void> {
    this.volumes.set(id, volumes);
  }

  async ids(): Promise<string[]> {
    return [...this.claimed];
  }

  async remove(id: string): Promise<void> {
    this.claimed.delete(id);
    this.volumes.delete(id);
  }

  full(id: string) {
    return this.fullOnes.has(id) ? { limitBytes: 1 << 30 } : undefined;
  }
}

/** A whole fake host runtime; `probeAnswer` decides httpGet probes. */
export function fakeRuntime() {
  const containers = new FakeContainers();
  const network = new FakeNetworks();
  const images = new FakeImages();
  const storage = new FakeStorage();
  const probes = { answer: (): ProbeResult => ({ ok: true, message: 'HTTP 200' }) };
  const runtime: HostRuntime = { containers, network, images, storage, httpProbe: async () => probes.answer() };
  return { runtime, containers, network, images, storage, probes };
}

export type FakeRuntime = ReturnType<typeof fakeRuntime>;

export { waitFor } from '../lib/wait.js';

/** A container of a test's host spec. */
export const testContainer = (name: string, o: Partial<HostContainer> = {}): HostContainer => ({
  name, image: 'registry.test/app:1', command: [], env: [], cpu: 0.5, memoryBytes: 256 << 20, volumeMounts: [], ...o,
});

/** A placed host spec for tests: one container `main` unless told otherwise. */
export function placedSpec(uid: string, generation = 1, o: Partial<HostSpec> = {}): PlacedHostSpec {
  return {
    uid, generation,
    spec: {
      hostname: `group-${uid}`, state: 'Running', restartPolicy: 'Always', initContainers: [], containers: [testContainer('main')], volumes: [],
      ports: [], network: {}, registryCredentials: [], provisioningTimeoutSeconds: 60, ...o,
    },
  };
}
