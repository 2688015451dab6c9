// The host agent: keeps the groups placed on this host on the shared work queue (one reconcile per group at a time), watches their exits, and serves their data plane.
import { BerthError, Codes, isBerthError } from '../lib/errors.js';
import { Semaphore } from '../lib/semaphore.js';
import { span, traceSince } from '../lib/trace.js';
import { WorkQueue } from '../lib/workqueue.js';
import type { ExecHandle, ExecOptions, LogOptions, PublishedPort } from '../runtime/types.js';
import { newTrackedGroup, type AgentSettings, type ReconcileContext, type TrackedGroup } from './group.js';
import type { HostRuntime } from './host-runtime.js';
import { containerId, parseId } from './ids.js';
import type { HostDataPlane } from './link.js';
import { GroupProbes } from './probes.js';
import { GroupReconciler } from './reconcile.js';
import type { PlacedHostSpec } from './spec.js';
import type { GroupStatus, GroupUsage } from './types.js';
import { UsageHistory, type RunningGroup } from './usage.js';
import { addEvent } from './views.js';

export interface AgentOptions extends Partial<AgentSettings> {
  runtime: HostRuntime;
  /**
   * Exits are noticed from conmon's exit files as they are written (one inotify watch); this backstop re-checks
   * every running group at this interval for what leaves no exit file (a killed conmon). Default 10 s.
   */
  pollMs?: number;
  /** Groups provisioned (network + container starts) at once; the rest queue, so a burst pipelines instead of thrashing. Default 6. */
  maxConcurrentStarts?: number;
  /** How often the running groups' usage (their cgroups' counters) is read for their metrics. Default 5 s; 0: never. */
  usageIntervalMs?: number;
  /** Retry delay of a reconcile that failed, doubled per further failure up to maxRetryMs. Defaults 400 ms and 30 s. */
  retryMs?: number;
  maxRetryMs?: number;
}

/**
 * Reconciles run side by side up to this many groups: a run mostly waits (a stop's grace, a pull, a start slot),
 * and the heavy part of it is bounded by the start slots.
 */
const MAX_CONCURRENT_RECONCILES = 1000;

export class Agent implements HostDataPlane {
  private groups = new Map<string, TrackedGroup>();
  private queue: WorkQueue;
  private reconciler: GroupReconciler;
  private probes: GroupProbes;
  private settings: AgentSettings;
  private statusFns: ((s: GroupStatus) => void)[] = [];
  private removedFns: ((uid: string) => void)[] = [];
  /** When each group waiting in the queue was added (for the trace of how long it queued). */
  private queuedAt = new Map<string, number>();
  private pollTimer?: NodeJS.Timeout;
  private readonly usageHistory: UsageHistory;
  private unwatchExits?: () => void;
  private closed = false;

  constructor(private readonly o: AgentOptions) {
    this.settings = { stopGraceSeconds: 5, backoffMs: 1000, maxBackoffMs: 60_000, backoffResetMs: 60_000 };
    for (const k of Object.keys(this.settings) as (keyof AgentSettings)[]) if (o[k] !== undefined) this.settings[k] = o[k];
    const ctx: ReconcileContext = {
      rt: o.runtime,
      settings: this.settings,
      startSlots: new Semaphore(Math.max(1, o.maxConcurrentStarts ?? 6)),
      emit: (s) => this.emit(s),
    };
    this.probes = new GroupProbes({
      rt: o.runtime, stopGraceSeconds: this.settings.stopGraceSeconds, group: (uid) => this.groups.get(uid), emit: ctx.emit, reconcile: (uid) => this.schedule(uid),
    });
    this.reconciler = new GroupReconciler(ctx, this.probes);
    this.usageHistory = new UsageHistory(o.runtime.containers, () => this.running(), o.usageIntervalMs ?? 5000);
    this.queue = new WorkQueue((uid) => this.reconcile(uid), {
      concurrency: MAX_CONCURRENT_RECONCILES,
      baseBackoffMs: o.retryMs ?? 400,
      maxBackoffMs: o.maxRetryMs ?? 30_000,
      // Level-triggered: say so, back off, and try again from whatever state the host is in then.
      onError: (uid, e) => {
        console.error(`agent: reconcile ${uid}: ${(e as Error).message}`);
        this.reportRetry(uid, e);
      },
    });
  }

  /** Every status change of a group, as a copy. */
  onStatus(fn: (s: GroupStatus) => void) {
    this.statusFns.push(fn);
  }

  /** A group taken off the host is gone: nothing of it is left. */
  onRemoved(fn: (uid: string) => void) {
    this.removedFns.push(fn);
  }

  /**
   * The whole set placed on this host, once, before anything else: what runs and is placed is adopted (its
   * reconcile continues from `lastStatuses`), whatever else the host has of this agent's (a crash between steps,
   * a group taken off meanwhile) is removed. Then exits are followed.
   */
  async adopt(placed: PlacedHostSpec[], lastStatuses: Map<string, GroupStatus> = new Map()) {
    const wanted = new Map(placed.map((p) => [p.uid, p]));
    const keep = (id: string) => {
      const parsed = parseId(id);
      const p = parsed && wanted.get(parsed.uid);
      return !!p && p.generation === parsed.gen && p.spec.state === 'Running';
    };
    const { containers, network, storage } = this.o.runtime;
    for (const id of await containers.list()) if (!keep(id)) await containers.remove(id);
    for (const id of await network.list()) if (!keep(id)) await network.teardown(id);
    // after the containers: a disk's last users are their rootfs mounts
    for (const id of await storage.ids()) if (!keep(id)) await storage.remove(id);
    for (const p of placed) this.apply(p, lastStatuses.get(p.uid));
    this.followExits();
  }

  /** Level-triggered: the whole spec of one group (a newer generation supersedes what is being provisioned). */
  apply(p: PlacedHostSpec, lastStatus?: GroupStatus) {
    const t = this.track(p.uid);
    if (t.placed && t.placed.generation > p.generation) return;
    if (t.placed && t.placed.generation !== p.generation) t.provisioning?.abort?.abort();
    t.placed = p;
    t.removing = false;
    if (lastStatus && !t.status && lastStatus.uid === p.uid) t.status = structuredClone(lastStatus);
    this.schedule(p.uid);
  }

  /** Tears the group down completely; `onRemoved` tells when nothing of it is left. */
  remove(uid: string) {
    const t = this.track(uid);
    t.removing = true;
    t.provisioning?.abort?.abort();
    this.schedule(uid);
  }

  /** The generation of each group the agent tracks (placed and not yet removed). */
  generations(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [uid, t] of this.groups) if (t.placed && !t.removing) out.set(uid, t.placed.generation);
    return out;
  }

  async close() {
    this.closed = true;
    clearInterval(this.pollTimer);
    this.usageHistory.stop();
    this.probes.close();
    this.unwatchExits?.();
    // In-flight reconciles finish so nothing is left half-done by us (a crash is handled by adopt()).
    await this.queue.shutdown();
  }

  // --- the data plane (HostDataPlane) ---

  async logs(uid: string, container: string, opts: LogOptions): Promise<string> {
    return this.o.runtime.containers.readLogs(this.currentContainerId(uid, container), opts);
  }

  async followLogs(uid: string, container: string, opts: LogOptions, onChunk: (s: string) => void, signal: AbortSignal) {
    return this.o.runtime.containers.followLogs(this.currentContainerId(uid, container), opts, onChunk, signal);
  }

  async exec(uid: string, container: string, argv: string[], opts: ExecOptions = {}): Promise<ExecHandle> {
    const id = this.currentContainerId(uid, container);
    if (this.groups.get(uid)?.status?.containers[container]?.currentState.state !== 'Running')
      throw new BerthError(Codes.ContainerGroupNotRunning, `The container '${container}' is not running.`, 409);
    return this.o.runtime.containers.exec(id, argv, opts);
  }

  async usage(uid: string, since: number): Promise<GroupUsage[]> {
    return this.usageHistory.since(uid, since);
  }

  async cachedImages(): Promise<string[]> {
    return (await this.o.runtime.images.list()).map((i) => i.reference);
  }

  unavailablePorts(ports: PublishedPort[]): Promise<PublishedPort[]> {
    return this.o.runtime.network.unavailablePorts(ports);
  }

  /** Every port this host keeps for its own sockets (and berth's) where groups' ports are published. */
  heldPorts(): Promise<PublishedPort[]> {
    return this.o.runtime.network.heldPorts();
  }

  // --- the reconcile machinery ---

  private track(uid: string): TrackedGroup {
    let t = this.groups.get(uid);
    if (!t) this.groups.set(uid, (t = newTrackedGroup(this.settings)));
    return t;
  }

  private currentContainerId(uid: string, container: string) {
    const p = this.groups.get(uid)?.placed;
    const known = (x: { name: string }) => x.name === container;
    if (!p || !(p.spec.containers.some(known) || p.spec.initContainers.some(known)))
      throw new BerthError(Codes.ContainerNotFound, `The container '${container}' was not found in the container group.`, 404, 'containerName');
    return containerId(uid, p.generation, container);
  }

  private schedule(uid: string) {
    if (this.closed) return;
    if (!this.queuedAt.has(uid)) this.queuedAt.set(uid, performance.now());
    this.queue.add(uid);
  }

  private async reconcile(uid: string) {
    const queuedAt = this.queuedAt.get(uid);
    this.queuedAt.delete(uid);
    if (queuedAt !== undefined) traceSince(uid, 'agent.queued', queuedAt);
    const t = this.groups.get(uid);
    if (!t) return 'done' as const;
    const result = await span(uid, 'agent.reconcile', () => this.reconciler.reconcile(uid, t));
    if (result !== 'removed') return result;
    // A group placed again while it was torn down (same uid) is reconciled afresh: it is not forgotten.
    if (this.groups.get(uid) === t && (t.removing || !t.placed)) {
      this.groups.delete(uid);
      this.usageHistory.forget(uid);
      for (const fn of this.removedFns) fn(uid);
    }
    return 'done' as const;
  }

  /** Runs the reconcile of a running group when one of its containers exits, and as a backstop every pollMs. */
  private followExits() {
    if (this.pollTimer || this.closed) return;
    this.unwatchExits = this.o.runtime.containers.watchExits((id) => {
      const uid = parseId(id)?.uid;
      // also while the group is still being provisioned: a container that exits at once must not be missed (a
      // reconcile in flight runs once more)
      if (uid && this.groups.get(uid)?.placed?.spec.state === 'Running') this.schedule(uid);
    });
    const pollMs = this.o.pollMs ?? 10_000;
    this.pollTimer = setInterval(() => {
      // spread over the interval: hundreds of groups checked at once would stall creates in flight
      const uids = [...this.groups.keys()].filter((uid) => this.watched(uid));
      uids.forEach((uid, i) => setTimeout(() => this.watched(uid) && this.schedule(uid), (i * pollMs) / uids.length).unref());
    }, pollMs);
    this.pollTimer.unref();
    this.usageHistory.start();
  }

  /** The groups whose placed generation runs now (what has usage to read). */
  private running(): RunningGroup[] {
    const out: RunningGroup[] = [];
    for (const [uid, t] of this.groups)
      if (t.placed && !t.removing && t.status?.state === 'Running' && t.status.generation === t.placed.generation) out.push({ uid, placed: t.placed });
    return out;
  }

  private watched(uid: string) {
    const t = this.groups.get(uid);
    return t?.placed?.spec.state === 'Running' && t.status?.provisioning === 'Succeeded';
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
}
