// The reconcile of one group: make the host match its placed generation (provision, keep running, restart by policy), or tear it down.
import { Codes, errorToWire, isBerthError } from '../lib/errors.js';
import { span } from '../lib/trace.js';
import { againAfter, done, type ReconcileResult } from '../lib/workqueue.js';
import type { ContainerStatus, PulledImage, Sandbox } from '../runtime/types.js';
import { runSpec, Wake, type ReconcileContext, type TrackedGroup } from './group.js';
import { containerId, parseId, sandboxId } from './ids.js';
import { runInitContainers } from './init-containers.js';
import { currentStatus, observeExit } from './observe.js';
import type { GroupProbes } from './probes.js';
import { localImage, pullImages } from './pulls.js';
import type { PlacedHostSpec } from './spec.js';
import type { GroupStatus } from './types.js';
import { addEvent, announceStart, fmtBytes, freshStatus, groupState, provisioningTimeout, runningState, viewOf } from './views.js';

/** A woken reconcile runs a little after the moment it waited for, never just before it. */
const WAKE_SLACK_MS = 5;

const shouldRestart = (policy: string, exitCode: number) => policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);

export class GroupReconciler {
  constructor(
    private readonly ctx: ReconcileContext,
    private readonly probes: GroupProbes,
  ) {}

  /** One pass over the group: 'removed' once nothing of a group taken off the host is left. */
  async reconcile(uid: string, t: TrackedGroup): Promise<ReconcileResult | 'removed'> {
    if (t.removing || !t.placed) {
      await this.teardown(uid, t, undefined);
      return 'removed';
    }
    const p = t.placed;
    // A different generation (update, start, restart) replaces everything that belongs to an older one.
    if (!t.status || t.status.generation !== p.generation) {
      // a new group (first generation, never reported) has nothing older on the host to remove
      if (t.status || p.generation > 1) await this.teardown(uid, t, p.generation);
      t.restarts.clear();
      t.diskFull = undefined;
      t.provisioning = undefined;
      t.status = freshStatus(p, t.status?.events ?? []);
      this.ctx.emit(t.status);
    }
    if (p.spec.state === 'Stopped') return done;
    const s = t.status;
    if (s.provisioning === 'Failed') return done;
    // Provisioning runs against its deadline (from the first attempt of this generation); past it, its work is aborted.
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const abort = new AbortController();
    if (s.provisioning === 'Creating') {
      t.provisioning ??= { deadline: Date.now() + p.spec.provisioningTimeoutSeconds * 1000 };
      t.provisioning.abort = abort;
      timer = setTimeout(() => {
        timedOut = true;
        abort.abort();
      }, Math.max(0, t.provisioning.deadline - Date.now()));
    }
    const wake = new Wake();
    // what this pass changes is reported, also what ensureRunning did without telling (a container started again)
    const before = JSON.stringify(s);
    try {
      await this.ensureRunning(p, s, t, abort.signal, wake);
    } catch (e) {
      if (s.provisioning !== 'Creating') throw e;
      // Superseded (removed, or a newer generation): the next pass deals with it.
      if (abort.signal.aborted && !timedOut) return done;
      // Provisioning failed: leave nothing half-made, and say why.
      const { code, message } = timedOut ? provisioningTimeout(p, s) : isBerthError(e) ? errorToWire(e) : { code: Codes.RuntimeError, message: (e as Error).message };
      await this.teardown(uid, t, undefined).catch((te) => console.error(`agent: teardown ${uid}: ${(te as Error).message}`));
      s.provisioning = 'Failed';
      s.state = 'Failed';
      s.error = { code, message };
      addEvent(s.events, 'Failed', message, 'Warning');
      this.ctx.emit(s);
      return done;
    } finally {
      clearTimeout(timer);
      if (t.provisioning?.abort === abort) t.provisioning.abort = undefined;
    }
    s.state = groupState(p, s);
    if (s.provisioning === 'Creating') s.provisioning = 'Succeeded';
    this.noteDiskFull(p, s, t);
    if (JSON.stringify(s) !== before) this.ctx.emit(s);
    return wake.afterMs === undefined ? done : againAfter(wake.afterMs + WAKE_SLACK_MS);
  }

  /**
   * Tells the group when its disk is full (looked at on every reconcile: after each exit, and by the backstop
   * poll; one statfs), once each time it fills: writes fail there until files go.
   */
  private noteDiskFull(p: PlacedHostSpec, s: GroupStatus, t: TrackedGroup) {
    const full = this.ctx.rt.storage.full(sandboxId(p.uid, p.generation));
    if (full && !t.diskFull) {
      const message = `The container group's disk is full: its containers' writable layers and volumes share a limit of ${fmtBytes(full.limitBytes)} (the server's diskLimitGB), and writes fail with "No space left on device" until files are removed`;
      addEvent(s.events, 'DiskFull', message, 'Warning');
      for (const v of Object.values(s.containers)) addEvent(v.events, 'DiskFull', message, 'Warning');
    }
    t.diskFull = !!full;
  }

  /** Idempotently brings a group of the placed generation up, and applies its restart policy to exited containers. */
  private async ensureRunning(p: PlacedHostSpec, s: GroupStatus, t: TrackedGroup, signal: AbortSignal, wake: Wake) {
    const { ctx } = this;
    const gen = p.generation;
    const { spec } = p;
    let images: Map<string, PulledImage> | undefined;
    const statuses = new Map<string, ContainerStatus | undefined>();
    await span(p.uid, 'agent.statuses', async () => {
      for (const c of spec.containers) statuses.set(c.name, await currentStatus(ctx, p, s, c.name));
    });
    const missing = spec.containers.filter((c) => !statuses.get(c.name));
    // Init containers run before the first start of the group's containers, never again for this generation.
    const initPhase = spec.initContainers.length > 0 && missing.length === spec.containers.length;
    if (missing.length > 0) {
      // Every image first (init containers' too): a pull failure fails provisioning before anything runs.
      images = await span(p.uid, 'agent.images', () => pullImages(ctx, p, s, [...(initPhase ? spec.initContainers : []), ...missing], signal));
    }
    signal.throwIfAborted();
    const release = missing.length > 0 ? await span(p.uid, 'agent.startSlot', () => ctx.startSlots.acquire()) : undefined;
    let sandbox: Sandbox;
    try {
      // superseded or deleted while it queued for a slot: nothing to make
      signal.throwIfAborted();
      // the group's disk and the rootfs mounts on it do not need the network: they go on while the sandbox is
      // claimed (with init containers to run first, the group's own containers are mounted when they start)
      const sid = sandboxId(p.uid, gen);
      const prepared = span(p.uid, 'agent.storage', () => ctx.rt.storage.claim(sid)).then(
        () => Promise.allSettled((initPhase ? [] : missing).map((c) => span(p.uid, 'agent.prepare', () =>
          ctx.rt.containers.prepare(containerId(p.uid, gen, c.name), images!.get(c.image)!.layerDirs, ctx.rt.storage.scratchDir(sid, c.name))))),
        (e): PromiseSettledResult<void>[] => [{ status: 'rejected', reason: e }]);
      // host ports are published while the containers start (both finish before Running is reported)
      let published: Promise<unknown> = Promise.resolve();
      try {
        // also for a sandbox that exists (idempotent, no command run): one made before segments gets its segment
        const staged = ctx.rt.network.setupStaged(sid, spec.ports, spec.network.key, spec.network.tag);
        published = staged.published;
        published.catch(() => undefined);
        sandbox = await span(p.uid, 'agent.network.setup', () => staged.sandbox);
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
        ctx.emit(s);
      }
      signal.throwIfAborted();
      if (missing.length > 0) await span(p.uid, 'agent.volumes', () => ctx.rt.storage.prepareVolumes(sid, spec.volumes, sandbox.netnsPath));
      if (initPhase && !(await runInitContainers(ctx, p, s, t, images!, sandbox, wake))) {
        await published;
        return;
      }
      // Start the missing ones together: a group's containers come up side by side.
      await Promise.all(missing.map(async (c) => {
        const st = await span(p.uid, 'agent.containers.start', () => ctx.rt.containers.start(runSpec(ctx, p, c, images!.get(c.image)!, sandbox)));
        announceStart(s.containers[c.name], c, st);
        statuses.set(c.name, st);
      })).finally(() => published.catch(() => undefined));
      await published;
    } finally {
      release?.();
    }
    const probing = new Set<string>();
    for (const c of spec.containers) {
      const st = statuses.get(c.name)!;
      const v = s.containers[c.name];
      if (st.state === 'running') {
        if (v.currentState.state !== 'Running') v.currentState = runningState(c, st.startedAt);
        this.probes.ensure(p, c, v, st, sandbox, probing);
        continue;
      }
      if (st.state !== 'exited') continue;
      observeExit(ctx, s, c.name, v, st);
      if (!shouldRestart(spec.restartPolicy, st.exitCode ?? 0)) continue;
      const waitMs = t.restarts.remainingMs(c.name, st, v);
      if (waitMs > 0) {
        wake.at(waitMs);
        continue;
      }
      // Restart in place: same bundle and writable layer; the ended run's log becomes the previous log.
      const image = (await localImage(ctx.rt.images, c.image)) ?? (await ctx.rt.images.pull(c.image, { credentials: spec.registryCredentials }));
      const again = await ctx.rt.containers.start(runSpec(ctx, p, c, image, sandbox));
      t.restarts.restarted(c.name, v, runningState(c, again.startedAt));
      ctx.emit(s);
    }
    this.probes.retain(p.uid, probing);
  }

  /** Removes everything of the group on this host, except what belongs to generation `keep`. */
  async teardown(uid: string, t: TrackedGroup, keep: number | undefined) {
    const { ctx } = this;
    const mine = (id: string) => {
      const parsed = parseId(id);
      return parsed?.uid === uid && parsed.gen !== keep;
    };
    const ids = (await ctx.rt.containers.list()).filter(mine);
    // the stop grace is waited out by all at once; removal (runtime, mounts, network: process runs) takes a
    // start slot, so a burst of deletes pipelines like a burst of creates
    await Promise.all(ids.map(async (id) => {
      const name = parseId(id)!.name!;
      const st = await ctx.rt.containers.status(id);
      if (st?.state === 'running') {
        const v = t.status && viewOf(t.status, name);
        if (v) addEvent(v.events, 'Killing', `Killing container ${name}`);
        await ctx.rt.containers.stop(id, ctx.settings.stopGraceSeconds);
      }
    }));
    const sandboxes = (await ctx.rt.network.list()).filter(mine);
    if (ids.length > 0 || sandboxes.length > 0) {
      const release = await ctx.startSlots.acquire();
      try {
        await Promise.all(ids.map((id) => ctx.rt.containers.remove(id)));
        for (const id of sandboxes) await ctx.rt.network.teardown(id);
      } finally {
        release();
      }
    }
    for (const id of (await ctx.rt.storage.ids()).filter(mine)) await ctx.rt.storage.remove(id);
  }
}
