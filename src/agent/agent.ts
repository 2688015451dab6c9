// The host agent: a level-triggered reconcile loop that makes the runtime match the desired groups.
import { join } from 'node:path';
import { BerthError, Codes, isBerthError } from '../lib/errors.js';
import { span, traceSince } from '../lib/trace.js';
import { GroupDisks } from '../runtime/disk/disks.js';
import type { ImageStore } from '../runtime/image/store.js';
import type { ContainerRuntime } from '../runtime/container/runtime.js';
import type { NetworkManager } from '../runtime/network/network.js';
import { execProbe, httpProbe, type ProbeResult } from '../runtime/probe.js';
import type { ContainerSpec, ContainerStatus, ExecHandle, ExecOptions, PulledImage, Sandbox } from '../runtime/types.js';
import { Prober, type ProbeReport } from './prober.js';
import { GroupStorage } from './storage.js';
import type {
  AgentHandle, ContainerDef, ContainerState, ContainerView, DesiredGroup, Event, GroupState, GroupStatus, LogOptions, ProbeDef, Protocol,
} from './types.js';

export interface AgentOptions {
  name?: string;
  dataDir: string;
  images: ImageStore;
  containers: ContainerRuntime;
  network: NetworkManager;
  /**
   * Exits are noticed from conmon's exit files as they are written (one inotify watch); this
   * backstop re-checks every running group at this interval for what leaves no exit file (a killed
   * conmon). Default 10 s.
   */
  pollMs?: number;
  /** Groups provisioned (network + container starts) at once; the rest queue, so a burst pipelines instead of thrashing. Default 6. */
  maxConcurrentStarts?: number;
  /** First restart delay; doubles per consecutive restart up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** A container that ran this long has its backoff reset. */
  backoffResetMs?: number;
  stopGraceSeconds?: number;
  /**
   * Size-limited disks for the groups' writable layers and volumes. Default: none made (writable
   * layers and volumes unbounded), those made before still adopted and released, under DATA_DIR/disks.
   */
  disks?: GroupDisks;
}

interface Tracked {
  desired?: DesiredGroup;
  status?: GroupStatus;
  /** Set by remove(): tear everything down, then forget the group. */
  removing: boolean;
  /** Per container: earliest time of the next restart, and consecutive restarts for backoff. */
  restart: Map<string, { notBefore: number; streak: number }>;
  /** While the current generation provisions: when it must be done by, and how to stop its work. */
  provisioning?: { deadline: number; abort?: AbortController };
  /** The generation's disk was full when last looked at (its event is added once per time it fills). */
  diskFull?: boolean;
}

/** ACI's default provisioningTimeoutInSeconds. */
const DEFAULT_PROVISIONING_TIMEOUT_S = 1800;

const GiB = 1024 ** 3;
const now = () => new Date().toISOString();

/** runc ids carry the group's uid and generation, so what is on the host can be matched to what is desired. */
export const containerId = (uid: string, gen: number, name: string) => `${uid}-g${gen}-${name}`;
export const sandboxId = (uid: string, gen: number) => `${uid}-g${gen}`;
const parseId = (id: string) => {
  const m = /^([0-9a-f]{12})-g(\d+)(?:-(.+))?$/.exec(id);
  return m ? { uid: m[1], gen: Number(m[2]), name: m[3] } : undefined;
};

export class Agent implements AgentHandle {
  readonly name: string;
  private groups = new Map<string, Tracked>();
  private queue = new Map<string, { running: boolean; again: boolean }>();
  private statusFns: ((s: GroupStatus) => void)[] = [];
  private removedFns: ((uid: string) => void)[] = [];
  private timer?: NodeJS.Timeout;
  private unwatchExits?: () => void;
  /** Restarts waiting out their backoff: uid -> timer. */
  private backoffTimers = new Map<string, NodeJS.Timeout>();
  private startSlots: Semaphore;
  private closed = false;
  private o: Required<Omit<AgentOptions, 'name'>>;
  private prober = new Prober((r) => this.onProbe(r));
  private storage: GroupStorage;

  constructor(opts: AgentOptions) {
    this.name = opts.name ?? 'local';
    this.o = {
      pollMs: 10_000, maxConcurrentStarts: 6, backoffMs: 1000, maxBackoffMs: 60_000, backoffResetMs: 60_000, stopGraceSeconds: 5, ...opts,
    } as Required<Omit<AgentOptions, 'name'>>;
    this.startSlots = new Semaphore(Math.max(1, this.o.maxConcurrentStarts));
    this.storage = new GroupStorage(opts.dataDir, opts.disks ?? new GroupDisks({ root: join(opts.dataDir, 'disks'), sizeBytes: 0 }));
  }

  onStatus(fn: (s: GroupStatus) => void) {
    this.statusFns.push(fn);
  }

  onRemoved(fn: (uid: string) => void) {
    this.removedFns.push(fn);
  }

  apply(desired: DesiredGroup, lastStatus?: GroupStatus) {
    const t = this.track(desired.uid);
    // A newer generation supersedes one still provisioning (a pull from a stalled registry, say).
    if (t.desired && t.desired.generation !== desired.generation) t.provisioning?.abort?.abort();
    t.desired = desired;
    t.removing = false;
    if (lastStatus && !t.status) t.status = structuredClone(lastStatus);
    this.schedule(desired.uid);
  }

  remove(uid: string) {
    const t = this.track(uid);
    t.removing = true;
    t.provisioning?.abort?.abort();
    this.schedule(uid);
  }

  async sync(all: { desired: DesiredGroup; lastStatus?: GroupStatus }[]) {
    const wanted = new Map(all.map((a) => [a.desired.uid, a.desired]));
    const keep = (id: string) => {
      const p = parseId(id);
      const d = p && wanted.get(p.uid);
      return !!d && d.generation === p.gen && d.state === 'Running';
    };
    // Whatever is on the host but not desired (a crash between steps, a deleted group): remove it.
    for (const id of await this.o.containers.list()) if (!keep(id)) await this.o.containers.remove(id);
    for (const id of await this.o.network.list()) if (!keep(id)) await this.o.network.teardown(id);
    // after the containers: a disk's last users are their rootfs mounts
    for (const id of await this.storage.ids()) if (!keep(id)) await this.storage.remove(id);
    for (const a of all) this.apply(a.desired, a.lastStatus);
    this.startPolling();
  }

  startPolling() {
    if (this.timer || this.closed) return;
    this.unwatchExits = this.o.containers.watchExits((id) => {
      const uid = parseId(id)?.uid;
      // also while the group is still being provisioned: a container that exits at once must not
      // be missed (a reconcile in flight runs once more)
      if (uid && this.groups.get(uid)?.desired?.state === 'Running') this.schedule(uid);
    });
    this.timer = setInterval(() => {
      // spread over the interval: hundreds of groups checked at once would stall creates in flight
      const uids = [...this.groups.keys()].filter((uid) => this.watched(uid));
      uids.forEach((uid, i) => setTimeout(() => this.watched(uid) && this.schedule(uid), (i * this.o.pollMs) / uids.length).unref());
    }, this.o.pollMs);
    this.timer.unref();
  }

  private watched(uid: string) {
    const t = this.groups.get(uid);
    return t?.desired?.state === 'Running' && t.status?.provisioning === 'Succeeded';
  }

  async close() {
    this.closed = true;
    clearInterval(this.timer);
    this.prober.close();
    this.unwatchExits?.();
    for (const t of this.backoffTimers.values()) clearTimeout(t);
    // Let in-flight reconciles finish so nothing is left half-done by us (a crash is handled by sync()).
    while ([...this.queue.values()].some((q) => q.running)) await new Promise((r) => setTimeout(r, 20));
  }

  async logs(uid: string, container: string, opts: LogOptions): Promise<string> {
    return this.o.containers.readLogs(this.currentContainerId(uid, container), opts);
  }

  async followLogs(uid: string, container: string, opts: LogOptions, onChunk: (s: string) => void, signal: AbortSignal) {
    return this.o.containers.followLogs(this.currentContainerId(uid, container), opts, onChunk, signal);
  }

  async exec(uid: string, container: string, argv: string[], opts: ExecOptions = {}): Promise<ExecHandle> {
    const id = this.currentContainerId(uid, container);
    if (this.groups.get(uid)?.status?.containers[container]?.currentState.state !== 'Running')
      throw new BerthError(Codes.ContainerGroupNotRunning, `The container '${container}' is not running.`, 409);
    return this.o.containers.exec(id, argv, opts);
  }

  async cachedImages(): Promise<string[]> {
    return (await this.o.images.list()).map((i) => i.reference);
  }

  async unavailablePorts(ports: { port: number; protocol: Protocol }[]): Promise<{ port: number; protocol: Protocol }[]> {
    return this.o.network.unavailablePorts(ports);
  }

  // --- reconcile machinery ---

  private track(uid: string): Tracked {
    let t = this.groups.get(uid);
    if (!t) this.groups.set(uid, (t = { removing: false, restart: new Map() }));
    return t;
  }

  private currentContainerId(uid: string, container: string) {
    const t = this.groups.get(uid);
    const known = (x: { name: string }) => x.name === container;
    if (!t?.desired || !(t.desired.spec.containers.some(known) || t.desired.spec.initContainers?.some(known)))
      throw new BerthError(Codes.ContainerNotFound, `The container '${container}' was not found in the container group.`, 404, 'containerName');
    return containerId(uid, t.desired.generation, container);
  }

  /** Serialises work per group; a change that arrives mid-run makes the loop run once more. */
  private schedule(uid: string) {
    if (this.closed) return;
    let q = this.queue.get(uid);
    if (!q) this.queue.set(uid, (q = { running: false, again: false }));
    const queuedAt = performance.now();
    if (q.running) {
      q.again = true;
      return;
    }
    q.running = true;
    void (async () => {
      let failures = 0;
      do {
        q.again = false;
        traceSince(uid, 'agent.queued', queuedAt);
        try {
          await span(uid, 'agent.reconcile', () => this.reconcile(uid));
          failures = 0;
        } catch (e) {
          // Level-triggered: log, back off, and try again from whatever state we are in now.
          failures++;
          console.error(`agent: reconcile ${uid}: ${(e as Error).message}`);
          this.reportRetry(uid, e);
          await new Promise((r) => setTimeout(r, Math.min(30_000, 200 * 2 ** failures)));
          q.again = !this.closed;
        }
      } while (q.again && !this.closed);
      q.running = false;
      if (!this.groups.has(uid)) this.queue.delete(uid);
    })();
  }

  /** A group whose reconcile keeps failing says so in its events (it is retried with backoff meanwhile). */
  private reportRetry(uid: string, e: unknown) {
    const s = this.groups.get(uid)?.status;
    if (!s) return;
    const why = isBerthError(e) ? `${e.code}: ${e.message}` : (e as Error).message;
    addEvent(s.events, 'FailedSync', `Reconciling the group failed, retrying with backoff: ${why}`, 'Warning');
    this.emit(s);
  }

  private emit(s: GroupStatus) {
    const copy = structuredClone(s);
    for (const fn of this.statusFns) fn(copy);
  }

  private async reconcile(uid: string) {
    const t = this.groups.get(uid);
    if (!t) return;
    if (t.removing || !t.desired) {
      await this.teardown(uid, t, undefined);
      this.groups.delete(uid);
      for (const fn of this.removedFns) fn(uid);
      return;
    }
    const d = t.desired;
    // A different generation (update, start, restart) replaces everything that belongs to an older one.
    if (!t.status || t.status.generation !== d.generation) {
      // a new group (first generation, never reported) has nothing older on the host to remove
      if (t.status || d.generation > 1) await this.teardown(uid, t, d.generation);
      t.restart.clear();
      t.diskFull = undefined;
      t.provisioning = undefined;
      t.status = {
        uid, generation: d.generation, provisioning: 'Creating', state: d.state === 'Stopped' ? 'Stopped' : 'Pending',
        containers: Object.fromEntries(d.spec.containers.map((c) => [c.name, waitingView()])),
        ...(d.spec.initContainers?.length && { initContainers: Object.fromEntries(d.spec.initContainers.map((c) => [c.name, waitingView()])) }),
        events: t.status?.events ?? [],
      };
      if (d.state === 'Stopped') {
        t.status.provisioning = 'Succeeded';
        for (const v of Object.values(t.status.containers)) v.currentState = { state: 'Terminated', detailStatus: 'Stopped' };
        this.emit(t.status);
        return;
      }
      this.emit(t.status);
    }
    if (d.state === 'Stopped') return;
    const s = t.status;
    if (s.provisioning === 'Failed') return;
    // Provisioning runs against its deadline (from the first attempt of this generation); past it, its work is aborted.
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const abort = new AbortController();
    if (s.provisioning === 'Creating') {
      t.provisioning ??= { deadline: Date.now() + (d.spec.provisioningTimeoutInSeconds ?? DEFAULT_PROVISIONING_TIMEOUT_S) * 1000 };
      t.provisioning.abort = abort;
      timer = setTimeout(() => {
        timedOut = true;
        abort.abort();
      }, Math.max(0, t.provisioning.deadline - Date.now()));
    }
    try {
      await this.ensureRunning(d, s, t, abort.signal);
    } catch (e) {
      if (s.provisioning !== 'Creating') throw e;
      // Superseded (removed, or a newer generation): the next pass of the loop deals with it.
      if (abort.signal.aborted && !timedOut) return;
      // Provisioning failed: leave nothing half-made, and say why.
      const err = timedOut ? provisioningTimeout(d, s)
        : isBerthError(e) ? { code: e.code, message: e.message } : { code: Codes.RuntimeError, message: (e as Error).message };
      await this.teardown(uid, t, undefined).catch((te) => console.error(`agent: teardown ${uid}: ${(te as Error).message}`));
      s.provisioning = 'Failed';
      s.state = 'Failed';
      s.error = err;
      addEvent(s.events, 'Failed', err.message, 'Warning');
      this.emit(s);
      return;
    } finally {
      clearTimeout(timer);
      if (t.provisioning?.abort === abort) t.provisioning.abort = undefined;
    }
    const before = JSON.stringify(s);
    s.state = groupState(d, s);
    if (s.provisioning === 'Creating') s.provisioning = 'Succeeded';
    this.noteDiskFull(d, s, t);
    if (JSON.stringify(s) !== before) this.emit(s);
  }

  /**
   * Tells the group when its disk is full (looked at on every reconcile: after each exit, and by
   * the backstop poll; one statfs), once each time it fills: writes fail there until files go.
   */
  private noteDiskFull(d: DesiredGroup, s: GroupStatus, t: Tracked) {
    const full = this.storage.full(sandboxId(d.uid, d.generation));
    if (full && !t.diskFull) {
      const message = `The container group's disk is full: its containers' writable layers and volumes share a limit of ${fmtBytes(full.limitBytes)} (the server's diskLimitGB), and writes fail with "No space left on device" until files are removed`;
      addEvent(s.events, 'DiskFull', message, 'Warning');
      for (const v of Object.values(s.containers)) addEvent(v.events, 'DiskFull', message, 'Warning');
    }
    t.diskFull = !!full;
  }

  /** Idempotently brings a group of the current generation up, and applies restart policy to exited containers. */
  private async ensureRunning(d: DesiredGroup, s: GroupStatus, t: Tracked, signal: AbortSignal) {
    const gen = d.generation;
    const inits = d.spec.initContainers ?? [];
    let images: Map<string, PulledImage> | undefined;
    const statuses = new Map<string, ContainerStatus | undefined>();
    await span(d.uid, 'agent.statuses', async () => {
      for (const c of d.spec.containers) statuses.set(c.name, await this.currentStatus(d, s, c.name));
    });
    const missing = d.spec.containers.filter((c) => !statuses.get(c.name));
    // Init containers run before the first start of the group's containers, never again for this generation.
    const initPhase = inits.length > 0 && missing.length === d.spec.containers.length;
    if (missing.length > 0) {
      // Every image first (init containers' too): a pull failure fails provisioning before anything runs.
      images = await span(d.uid, 'agent.images', () => this.pullAll(d, s, [...(initPhase ? inits : []), ...missing], signal));
    }
    signal.throwIfAborted();
    const release = missing.length > 0 ? await span(d.uid, 'agent.startSlot', () => this.startSlots.acquire()) : undefined;
    let sandbox: Sandbox;
    try {
      // superseded or deleted while it queued for a slot: nothing to make
      signal.throwIfAborted();
      // the group's disk and the rootfs mounts on it do not need the network: they go on while the
      // sandbox is claimed (with init containers to run first, the group's own containers are
      // mounted when they start)
      const sid = sandboxId(d.uid, gen);
      const prepared = span(d.uid, 'agent.storage', () => this.storage.claim(sid)).then(
        () => Promise.allSettled((initPhase ? [] : missing).map((c) => span(d.uid, 'agent.prepare', () =>
          this.o.containers.prepare(containerId(d.uid, gen, c.name), images!.get(c.image)!.layerDirs, this.storage.scratchDir(sid, c.name))))),
        (e): PromiseSettledResult<void>[] => [{ status: 'rejected', reason: e }]);
      // host ports are published while the containers start (both finish before Running is reported)
      let published: Promise<unknown> = Promise.resolve();
      try {
        // also for a sandbox that exists (idempotent, no command run): one made before segments gets its segment
        const staged = this.o.network.setupStaged(sandboxId(d.uid, gen), d.spec.ipAddress?.type === 'Public' ? d.spec.ipAddress.ports : [], d.segment);
        published = staged.published;
        published.catch(() => undefined);
        sandbox = await span(d.uid, 'agent.network.setup', () => staged.sandbox);
      } finally {
        // settled before any teardown looks for what this group has on the host
        const failed = (await prepared).find((r) => r.status === 'rejected');
        if (failed) {
          await published.catch(() => undefined);
          throw failed.reason;
        }
      }
      if (s.ip !== sandbox.ip) {
        s.ip = sandbox.ip;
        this.emit(s);
      }
      signal.throwIfAborted();
      if (missing.length > 0) await span(d.uid, 'agent.volumes', () => this.storage.prepareVolumes(sid, d.spec.volumes, sandbox.netnsPath));
      if (initPhase && !(await this.runInitContainers(d, s, t, images!, sandbox))) {
        await published;
        return;
      }
      // Start the missing ones together: a group's containers come up side by side.
      await Promise.all(missing.map(async (c) => {
        const st = await span(d.uid, 'agent.containers.start', () => this.o.containers.start(this.containerSpec(d, c, images!.get(c.image)!, sandbox)));
        announceStart(s.containers[c.name], c, st);
        statuses.set(c.name, st);
      })).finally(() => published.catch(() => undefined));
      await published;
    } finally {
      release?.();
    }
    const probing = new Set<string>();
    for (const c of d.spec.containers) {
      const st = statuses.get(c.name)!;
      const v = s.containers[c.name];
      if (st.state === 'running') {
        if (v.currentState.state !== 'Running') v.currentState = runningState(c, st.startedAt);
        this.startProbes(d, c, v, st, sandbox, probing);
        continue;
      }
      if (st.state !== 'exited') continue;
      this.observeExit(s, c.name, v, st);
      if (!shouldRestart(d.spec.restartPolicy, st.exitCode ?? 0)) continue;
      if (!this.backoffOver(d.uid, t, c.name, st, v)) continue;
      // Restart in place: same bundle and writable layer; the ended run's log becomes the previous log.
      const image = (await this.localImage(c.image)) ?? (await this.o.images.pull(c.image, { credentials: d.spec.imageRegistryCredentials }));
      const again = await this.o.containers.start(this.containerSpec(d, c, image, sandbox));
      this.restarted(t, c.name, v, runningState(c, again.startedAt));
      this.emit(s);
    }
    this.prober.retain(`${d.uid}-`, probing);
  }

  /**
   * Runs the init containers one after another, each to exit 0. True once all have; false while one
   * runs, waits out its restart backoff, or failed for good (restart policy Never).
   */
  private async runInitContainers(d: DesiredGroup, s: GroupStatus, t: Tracked, images: Map<string, PulledImage>, sandbox: Sandbox) {
    const views = (s.initContainers ??= {});
    // Init containers have no resources of their own in ACI: each may use what the group's containers request.
    const requests = {
      cpu: d.spec.containers.reduce((a, c) => a + c.requests.cpu, 0),
      memoryInGB: d.spec.containers.reduce((a, c) => a + c.requests.memoryInGB, 0),
    };
    for (const ic of d.spec.initContainers ?? []) {
      const v = (views[ic.name] ??= waitingView());
      const def: ContainerDef = { ...ic, ports: [], requests };
      const st = await this.currentStatus(d, s, ic.name);
      if (!st) {
        // Gone from the host after it completed (a crash between steps): done is done.
        if (v.currentState.state === 'Terminated' && v.currentState.exitCode === 0) continue;
        announceStart(v, def, await this.o.containers.start(this.containerSpec(d, def, images.get(ic.image)!, sandbox)));
        this.emit(s);
        return false;
      }
      if (st.state === 'running') {
        if (v.currentState.state !== 'Running') {
          v.currentState = runningState(def, st.startedAt);
          this.emit(s);
        }
        return false;
      }
      if (st.state !== 'exited') return false;
      this.observeExit(s, ic.name, v, st);
      if (st.exitCode === 0) continue;
      // A failed init container is retried unless the group never restarts anything (then the group has failed).
      if (d.spec.restartPolicy === 'Never') return false;
      if (!this.backoffOver(d.uid, t, ic.name, st, v)) return false;
      const again = await this.o.containers.start(this.containerSpec(d, def, images.get(ic.image)!, sandbox));
      this.restarted(t, ic.name, v, runningState(def, again.startedAt));
      this.emit(s);
      return false;
    }
    return true;
  }

  /**
   * A container's status as the reconcile acts on it. One found created but never started, or
   * started without a trace of its process or exit, is what a crash of berth in the middle of a
   * start leaves (starts of a group run only inside its reconcile, so none of ours is in flight):
   * it is removed, and counts as missing, so this pass starts it afresh.
   */
  private async currentStatus(d: DesiredGroup, s: GroupStatus, name: string): Promise<ContainerStatus | undefined> {
    const id = containerId(d.uid, d.generation, name);
    const st = await this.o.containers.status(id);
    if (st?.state !== 'created' && st?.state !== 'unknown') return st;
    const v = viewOf(s, name);
    if (v) addEvent(v.events, 'Recovering', `Container ${name} was left ${st.state === 'created' ? 'created but not started' : 'half-started'} by an interrupted start; starting it again`, 'Warning');
    await this.o.containers.remove(id);
    return undefined;
  }

  /** Records a container's exit in its view once per run (an OOM kill as an event too). */
  private observeExit(s: GroupStatus, name: string, v: ContainerView, st: ContainerStatus) {
    if (v.currentState.state === 'Terminated' && v.currentState.startTime === st.startedAt) return;
    v.currentState = terminated(st);
    if (st.oomKilled) addEvent(v.events, 'OOMKilled', `Container ${name} exceeded its memory limit and was killed`, 'Warning');
    this.emit(s);
  }

  /** Restart backoff: true once the exited container may be started again; until then the group is woken when it may. */
  private backoffOver(uid: string, t: Tracked, name: string, st: ContainerStatus, v: ContainerView) {
    const r = t.restart.get(name) ?? { notBefore: 0, streak: 0 };
    const ranMs = st.startedAt && st.finishedAt ? Date.parse(st.finishedAt) - Date.parse(st.startedAt) : 0;
    if (r.notBefore === 0) {
      if (ranMs >= this.o.backoffResetMs) r.streak = 0;
      r.notBefore = Date.now() + Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** r.streak);
      t.restart.set(name, r);
      if (r.streak > 0) addEvent(v.events, 'BackOff', `Back-off restarting failed container ${name}`, 'Warning');
    }
    if (Date.now() >= r.notBefore) return true;
    this.wakeAt(uid, r.notBefore);
    return false;
  }

  private restarted(t: Tracked, name: string, v: ContainerView, state: ContainerState) {
    const r = t.restart.get(name)!;
    r.streak++;
    r.notBefore = 0;
    v.previousState = v.currentState;
    v.restartCount++;
    v.currentState = state;
    addEvent(v.events, 'Started', `Started container ${name}`);
  }

  // --- health probes ---

  private startProbes(d: DesiredGroup, c: ContainerDef, v: ContainerView, st: ContainerStatus, sandbox: Sandbox, probing: Set<string>) {
    if (!c.livenessProbe && !c.readinessProbe) return;
    const id = containerId(d.uid, d.generation, c.name);
    const started = v.currentState.startTime ?? st.startedAt ?? '';
    const key = `${id}@${started}`;
    probing.add(key);
    const startedMs = Date.parse(started) || Date.now();
    if (c.livenessProbe) this.prober.ensure(key, 'liveness', c.livenessProbe, startedMs, true, (ms) => this.probe(id, c.livenessProbe!, sandbox.ip, ms));
    if (c.readinessProbe)
      this.prober.ensure(key, 'readiness', c.readinessProbe, startedMs, v.currentState.detailStatus === 'Ready', (ms) => this.probe(id, c.readinessProbe!, sandbox.ip, ms));
  }

  private async probe(id: string, p: ProbeDef, ip: string, timeoutMs: number): Promise<ProbeResult> {
    if (p.httpGet)
      return httpProbe({ host: ip, port: p.httpGet.port, path: p.httpGet.path, scheme: p.httpGet.scheme, headers: p.httpGet.httpHeaders, timeoutMs });
    return execProbe(() => this.o.containers.exec(id, p.exec!.command), timeoutMs);
  }

  private onProbe(r: ProbeReport) {
    const m = /^(.*)@(.*)$/.exec(r.key)!;
    const p = parseId(m[1]);
    const t = p && this.groups.get(p.uid);
    const s = t?.status;
    const v = p?.name ? s?.containers[p.name] : undefined;
    // A report about an instance that is no longer current (restarted, replaced) changes nothing.
    if (!t || !s || !v || s.generation !== p!.gen || v.currentState.state !== 'Running' || (v.currentState.startTime ?? '') !== m[2]) return;
    const name = p!.name!;
    if (!r.result.ok) addEvent(v.events, 'Unhealthy', `${r.kind === 'liveness' ? 'Liveness' : 'Readiness'} probe failed: ${r.result.message}`, 'Warning');
    if (r.kind === 'readiness') {
      if (r.changed || !r.result.ok) {
        v.currentState.detailStatus = r.healthy ? 'Ready' : 'NotReady';
        this.emit(s);
      }
      return;
    }
    if (!r.result.ok) this.emit(s);
    if (!r.healthy) {
      // Killed and then restarted (or not) by the restart policy, as Kubernetes does.
      addEvent(v.events, 'Killing', `Container ${name} failed liveness probe, will be restarted`, 'Normal');
      this.emit(s);
      void this.o.containers.stop(m[1], this.o.stopGraceSeconds)
        .catch((e) => console.error(`agent: stop ${m[1]} after failed liveness probe: ${(e as Error).message}`))
        .finally(() => this.schedule(p!.uid));
    }
  }

  /** Reconciles the group again at `when` (a restart's backoff ends), since nothing else would. */
  private wakeAt(uid: string, when: number) {
    if (this.backoffTimers.has(uid) || this.closed) return;
    const timer = setTimeout(() => {
      this.backoffTimers.delete(uid);
      if (this.groups.has(uid)) this.schedule(uid);
    }, Math.max(0, when - Date.now()) + 5);
    timer.unref();
    this.backoffTimers.set(uid, timer);
  }

  private containerSpec(d: DesiredGroup, c: ContainerDef, image: PulledImage, sandbox: Sandbox): ContainerSpec {
    return {
      id: containerId(d.uid, d.generation, c.name),
      image,
      command: c.command.length ? c.command : undefined,
      env: Object.fromEntries(c.environmentVariables.map((e) => [e.name, e.secureValue ?? e.value ?? ''])),
      cpuLimit: c.limits?.cpu ?? c.requests.cpu,
      memoryLimitBytes: Math.round((c.limits?.memoryInGB ?? c.requests.memoryInGB) * GiB),
      netnsPath: sandbox.netnsPath,
      ip: sandbox.ip,
      hostname: d.hostname,
      mounts: c.volumeMounts.map((m) => ({ source: this.storage.volumeDir(sandboxId(d.uid, d.generation), m.name), destination: m.mountPath, readOnly: m.readOnly })),
      scratchDir: this.storage.scratchDir(sandboxId(d.uid, d.generation), c.name),
    };
  }

  private async pullAll(d: DesiredGroup, s: GroupStatus, containers: { name: string; image: string }[], signal: AbortSignal) {
    const images = new Map<string, PulledImage>();
    await Promise.all([...new Set(containers.map((c) => c.image))].map(async (ref) => {
      const views = containers.filter((c) => c.image === ref).map((c) => viewOf(s, c.name)).filter((v) => !!v);
      let img = await this.localImage(ref);
      if (!img) {
        for (const v of views) addEvent(v.events, 'Pulling', `pulling image "${ref}"`);
        this.emit(s);
        let last = 0;
        const t0 = Date.now();
        img = await this.o.images.pull(ref, {
          credentials: d.spec.imageRegistryCredentials,
          signal,
          onEvent: (e) => {
            // Progress shows in the Pulling event's message, throttled.
            if (e.type !== 'layer' || Date.now() - last < 250) return;
            last = Date.now();
            for (const v of views) {
              const ev = v.events.find((x) => x.name === 'Pulling');
              if (ev) ev.message = `pulling image "${ref}": layer ${e.digest.slice(7, 19)} ${fmtBytes(e.doneBytes)}/${fmtBytes(e.totalBytes)}`;
            }
            this.emit(s);
          },
        });
        for (const v of views) addEvent(v.events, 'Pulled', `Successfully pulled image "${ref}" in ${((Date.now() - t0) / 1000).toFixed(2)}s (${fmtBytes(img.size)})`);
      }
      images.set(ref, img);
    }));
    return images;
  }

  /**
   * A local copy only of images anyone could pull: a private image is pulled again (blobs stay
   * cached), so the registry re-checks this group's credentials.
   */
  private localImage(ref: string) {
    return this.o.images.get(ref, { anonymousOnly: true });
  }

  /** Removes everything of the group on this host, except what belongs to generation `keep`. */
  private async teardown(uid: string, t: Tracked, keep: number | undefined) {
    const mine = (id: string) => {
      const p = parseId(id);
      return p?.uid === uid && p.gen !== keep;
    };
    const ids = (await this.o.containers.list()).filter(mine);
    // the stop grace is waited out by all at once; removal (runtime, mounts, network: process
    // runs) takes a start slot, so a burst of deletes pipelines like a burst of creates
    await Promise.all(ids.map(async (id) => {
      const name = parseId(id)!.name!;
      const st = await this.o.containers.status(id);
      if (st?.state === 'running') {
        const v = t.status && viewOf(t.status, name);
        if (v) addEvent(v.events, 'Killing', `Killing container ${name}`);
        await this.o.containers.stop(id, this.o.stopGraceSeconds);
      }
    }));
    const sandboxes = (await this.o.network.list()).filter(mine);
    if (ids.length > 0 || sandboxes.length > 0) {
      const release = await this.startSlots.acquire();
      try {
        await Promise.all(ids.map((id) => this.o.containers.remove(id)));
        for (const id of sandboxes) await this.o.network.teardown(id);
      } finally {
        release();
      }
    }
    for (const id of (await this.storage.ids()).filter(mine)) await this.storage.remove(id);
  }
}

/** A fresh start of a container (or init container) in its view. */
function announceStart(v: ContainerView, c: ContainerDef, st: ContainerStatus) {
  addEvent(v.events, 'Created', `Created container ${c.name}`);
  addEvent(v.events, 'Started', `Started container ${c.name}`);
  v.currentState = runningState(c, st.startedAt);
}

/** The view of a container or init container of the group. */
const viewOf = (s: GroupStatus, name: string): ContainerView | undefined => s.containers[name] ?? s.initContainers?.[name];

const waitingView = (): ContainerView => ({ restartCount: 0, currentState: { state: 'Waiting', detailStatus: 'Waiting' }, events: [] });

/** A container that just started: not ready until its readiness probe says so. */
const runningState = (c: ContainerDef, startedAt: string | undefined): ContainerState =>
  ({ state: 'Running', startTime: startedAt ?? now(), detailStatus: c.readinessProbe ? 'NotReady' : '' });

/** ARM's error for provisioning that outran provisioningTimeoutInSeconds, with what it was still doing. */
function provisioningTimeout(d: DesiredGroup, s: GroupStatus) {
  const seconds = d.spec.provisioningTimeoutInSeconds ?? DEFAULT_PROVISIONING_TIMEOUT_S;
  const pulling = [...(d.spec.initContainers ?? []), ...d.spec.containers].filter((c) => {
    const ev = viewOf(s, c.name)?.events ?? [];
    return ev.some((e) => e.name === 'Pulling') && !ev.some((e) => e.name === 'Pulled');
  }).map((c) => c.image);
  const doing = pulling.length > 0 ? `; still pulling image ${[...new Set(pulling)].map((i) => `"${i}"`).join(', ')}` : '';
  return {
    code: Codes.ResourceDeploymentFailure,
    message: `The resource provision operation did not complete within the allowed timeout period: container group '${d.hostname}' was not provisioned within ${seconds} s (provisioningTimeoutInSeconds)${doing}. Everything it had made was removed.`,
  };
}

function shouldRestart(policy: string, exitCode: number) {
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}

function terminated(st: ContainerStatus): ContainerState {
  const code = st.exitCode ?? -1;
  return {
    state: 'Terminated', exitCode: code, startTime: st.startedAt, finishTime: st.finishedAt ?? now(),
    detailStatus: st.oomKilled ? 'OOMKilled' : code === 0 ? 'Completed' : 'Error',
  };
}

function groupState(d: DesiredGroup, s: GroupStatus): GroupState {
  if (d.state === 'Stopped') return 'Stopped';
  if (s.provisioning === 'Failed') return 'Failed';
  const inits = Object.values(s.initContainers ?? {});
  const initFailed = inits.some((v) => v.currentState.state === 'Terminated' && v.currentState.exitCode !== 0);
  if (initFailed && d.spec.restartPolicy === 'Never') return 'Failed';
  const views = Object.values(s.containers);
  // Nothing started yet (images, init containers): pending, as a pod that is initializing.
  if (views.every((v) => v.currentState.state === 'Waiting')) return 'Pending';
  if (views.some((v) => v.currentState.state === 'Waiting')) return s.provisioning === 'Creating' ? 'Pending' : 'Running';
  if (views.some((v) => v.currentState.state === 'Running')) return 'Running';
  // All terminated: running still if any will be restarted.
  if (d.spec.restartPolicy === 'Always') return 'Running';
  if (d.spec.restartPolicy === 'OnFailure' && views.some((v) => v.currentState.exitCode !== 0)) return 'Running';
  return views.every((v) => v.currentState.exitCode === 0) ? 'Succeeded' : 'Failed';
}

function addEvent(events: Event[], name: string, message: string, type: Event['type'] = 'Normal') {
  const ts = now();
  // A repeat of an event counts on the first one, as ACI's events do.
  const same = events.find((e) => e.name === name && e.message === message);
  if (same) {
    same.count++;
    same.lastTimestamp = ts;
    return;
  }
  events.push({ count: 1, firstTimestamp: ts, lastTimestamp: ts, name, message, type });
  if (events.length > 50) events.splice(0, events.length - 50);
}

function fmtBytes(n: number) {
  if (n >= 1 << 30) return `${+(n / (1 << 30)).toFixed(2)} GiB`;
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

/** Counting semaphore: acquire() resolves with a release function once a slot is free (FIFO). */
class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}
