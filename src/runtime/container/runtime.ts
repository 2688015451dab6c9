// Runs containers with runc under conmon; all state lives on disk so containers outlive this process.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';
import { KeyedLock } from '../../lib/keyed-lock.js';
import { isMountpoint, unmount } from '../../lib/mounts.js';
import { span, traceSince } from '../../lib/trace.js';
import type { ContainerSpec, ContainerStatus, ContainerUsage, ExecOptions, LogOptions } from '../types.js';
import { mountRootfs, writeBundle } from './bundle.js';
import { spawnConmon } from './conmon.js';
import { checkContainerId, ContainerDirs, livePidOf, pidAlive, processStartTicks, type ContainerMeta } from './container-dir.js';
import { type ExecProcess, startExec } from './exec.js';
import { followLogFile, readLogFile } from './logs.js';
import { OciRuntimeCli } from './oci-runtime.js';
import { readContainerUsage } from './usage.js';

/** Debian's static tini (package tini): Docker's `--init`. */
export const DEFAULT_INIT = '/usr/bin/tini-static';

export interface ContainerRuntimeOptions {
  /** Per-container directories live in `<root>/<id>/`. */
  root: string;
  /** `runc --root`, e.g. /run/berth/runc (crun keeps its state there the same way). */
  runcRoot: string;
  /** The OCI runtime binary: runc, or crun (see chooseOciRuntime). */
  runcPath?: string;
  conmonPath?: string;
  /** cgroup parent; containers land in `<cgroupParent>/<id>`. Default /berth. */
  cgroupParent?: string;
  /** Host resolv.conf to derive the containers' from. */
  hostResolvConf?: string;
  /**
   * A static init run as every container's PID 1, with the command as its child, so orphans are
   * reaped (a PID 1 that never waits, as most images' commands, keeps them as zombies until they
   * fill the pids limit). Default DEFAULT_INIT; null runs the command itself as PID 1.
   */
  init?: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ContainerRuntime {
  private readonly oci: OciRuntimeCli;
  private readonly dirs: ContainerDirs;
  private readonly conmon: string;
  private readonly init: string | undefined;
  private readonly locks = new KeyedLock();

  constructor(private readonly opts: ContainerRuntimeOptions) {
    this.oci = new OciRuntimeCli(opts.runcRoot, opts.runcPath);
    this.dirs = new ContainerDirs(opts.root);
    this.conmon = opts.conmonPath ?? '/usr/bin/conmon';
    this.init = opts.init === null ? undefined : opts.init ?? DEFAULT_INIT;
  }

  logPath(id: string): string {
    return this.dirs.logPath(id);
  }

  /** Serialises operations on one id within this process. */
  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }

  /**
   * Calls `onExit(id)` whenever conmon records a container's exit, so a caller learns of exits
   * without polling every container (see ContainerDirs.watchExits).
   */
  watchExits(onExit: (id: string) => void): () => void {
    return this.dirs.watchExits(onExit);
  }

  /** What the container has used (its cgroup's counters), or undefined when it has no cgroup (not running). */
  usage(id: string): ContainerUsage | undefined {
    return readContainerUsage(this.opts.cgroupParent ?? '/berth', id);
  }

  private oomKilled(id: string): boolean {
    if (existsSync(this.dirs.dir(id, 'persist', 'oom'))) return true;
    // conmon may miss the event; the cgroup's counter survives until `runc delete`.
    const parent = (this.opts.cgroupParent ?? '/berth').replace(/^\/+|\/+$/g, '');
    try {
      const text = readFileSync(join('/sys/fs/cgroup/memory', parent, id, 'memory.oom_control'), 'utf8');
      const m = /oom_kill (\d+)/.exec(text);
      return !!m && Number(m[1]) > 0;
    } catch {
      return false;
    }
  }

  async status(id: string): Promise<ContainerStatus | undefined> {
    checkContainerId(id);
    const meta = await this.dirs.readMeta(id);
    let exit = this.dirs.readExit(id);
    // Fast path, taken by every poll of a running container: no exit recorded and the very process
    // we started still alive means running, without spawning `runc state`.
    const pid = !exit && meta?.startedAt ? livePidOf(meta) : undefined;
    if (pid) return { id, state: 'running', pid, startedAt: meta!.startedAt };
    // an exit on record means it ended: the runtime has nothing to add (one process run less per stop and delete)
    const state = meta && exit ? undefined : await this.oci.state(id);
    // it may have ended (and conmon written its exit) while the runtime was asked
    exit ??= this.dirs.readExit(id);
    // unknown, or only prepared (rootfs mounted, never started): nothing to report, start() will run it
    if (!state && (!meta || (meta.restarts < 0 && !meta.startedAt && !exit))) return undefined;
    const base: ContainerStatus = { id, state: 'unknown', ...(meta?.startedAt ? { startedAt: meta.startedAt } : {}) };

    if (!exit && state?.status === 'stopped') {
      // conmon writes the exit file moments after runc sees the process gone
      for (let i = 0; i < 50 && !exit && this.dirs.conmonPid(id); i++) {
        await sleep(10);
        exit = this.dirs.readExit(id);
      }
    }
    if (exit) {
      return { ...base, state: 'exited', exitCode: exit.code, oomKilled: this.oomKilled(id), finishedAt: exit.at };
    }
    if (!state) return base;
    switch (state.status) {
      case 'running':
      case 'paused':
        return { ...base, state: 'running', pid: state.pid };
      case 'created':
      case 'creating':
        return { ...base, state: 'created', pid: state.pid || undefined };
      case 'stopped':
        // exit code lost (conmon killed): still report that it ended
        return { ...base, state: 'exited', oomKilled: this.oomKilled(id) };
    }
    return base;
  }

  list(): Promise<string[]> {
    return this.dirs.list();
  }

  start(spec: ContainerSpec): Promise<ContainerStatus> {
    checkContainerId(spec.id);
    return this.locked(spec.id, () => this.startLocked(spec));
  }

  private async startLocked(spec: ContainerSpec): Promise<ContainerStatus> {
    const id = spec.id;
    const current = await span(id, 'rt.status', () => this.status(id));
    if (current?.state === 'running') return current;
    if (current?.state === 'created') {
      const startedAt = new Date().toISOString();
      await this.oci.start(id);
      await this.markStarted(id, startedAt, current.pid ?? 0);
      return (await this.status(id)) ?? { id, state: 'unknown' };
    }

    const meta: ContainerMeta = (await this.dirs.readMeta(id)) ?? { id, restarts: -1 };
    if (await this.oci.state(id)) {
      // an exited run: clear runc's record (and its cgroup) so the bundle can be created again
      await this.oci.delete(id);
    }
    const conmonPid = this.dirs.conmonPid(id);
    if (conmonPid) {
      await this.waitGone(conmonPid, 2000);
    }

    if (this.init && !existsSync(this.init)) throw new BerthError(Codes.RuntimeError, `the containers' init ${this.init} is missing: install Debian's tini (scripts/install-deps.sh does)`);
    const exitsDir = this.dirs.exitsDir();
    // upper, work and the rootfs dir are made by mountRootfs
    this.dirs.makeOwnDir(id);
    for (const d of ['persist', 'sock', 'etc']) mkdirSync(this.dirs.dir(id, d), { recursive: true });
    mkdirSync(exitsDir, { recursive: true });
    for (const f of [join(exitsDir, id), this.dirs.dir(id, 'exits', id), this.dirs.dir(id, 'persist', 'oom'), this.dirs.dir(id, 'persist', 'exit'), this.dirs.dir(id, 'ctr.pid')]) rmSync(f, { force: true });

    let t0 = performance.now();
    await mountRootfs(this.dirs, meta, spec.image.layerDirs, spec.scratchDir);
    traceSince(id, 'rt.mount', t0);
    t0 = performance.now();

    const bundle = writeBundle(this.dirs, spec, { cgroupParent: this.opts.cgroupParent, hostResolvConf: this.opts.hostResolvConf, init: this.init });

    if (meta.restarts >= 0) await this.dirs.rotateLog(id);
    meta.restarts += 1;
    delete meta.startedAt;
    await this.dirs.writeMeta(meta);

    traceSince(id, 'rt.bundle', t0);
    const pid = await span(id, 'rt.conmon+create', () => spawnConmon(this.conmon, this.oci, this.dirs, id, bundle));
    const startedAt = new Date().toISOString();
    await span(id, 'rt.start', () => this.oci.start(id));
    await span(id, 'rt.markStarted', () => this.markStarted(id, startedAt, pid));
    // a fresh start is known to be running; asking runc again would add a process spawn
    return { id, state: 'running', pid, startedAt };
  }

  /**
   * Mounts a new container's rootfs ahead of start(), so a caller can do it while the group's
   * network is being set up; start() then finds it mounted. Does nothing for a known container.
   */
  prepare(id: string, layerDirs: string[], scratchDir?: string): Promise<void> {
    checkContainerId(id);
    return this.locked(id, async () => {
      if (await this.dirs.readMeta(id)) return;
      const meta: ContainerMeta = { id, restarts: -1 };
      await mountRootfs(this.dirs, meta, layerDirs, scratchDir);
      await this.dirs.writeMeta(meta);
    });
  }

  private async markStarted(id: string, startedAt: string, pid: number): Promise<void> {
    const meta = (await this.dirs.readMeta(id)) ?? { id, restarts: 0 };
    meta.startedAt = startedAt;
    if (pid > 0) {
      meta.pid = pid;
      meta.pidStartTicks = processStartTicks(pid);
    }
    await this.dirs.writeMeta(meta);
  }

  private async waitGone(pid: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (pidAlive(pid)) {
      if (Date.now() > deadline) return false;
      await sleep(10);
    }
    return true;
  }

  /** The init PID of a container known to run it still (its recorded start time matches), else undefined. */
  private async livePid(id: string): Promise<number | undefined> {
    const meta = await this.dirs.readMeta(id);
    return meta && !this.dirs.readExit(id) ? livePidOf(meta) : undefined;
  }

  async kill(id: string, signal: string = 'SIGTERM'): Promise<void> {
    checkContainerId(id);
    // what `runc kill` does for the init process, without a process run: hundreds of stops at once
    // would otherwise each fork this process (milliseconds of a blocked event loop apiece)
    const pid = await this.livePid(id);
    if (pid) {
      try {
        process.kill(pid, signal as NodeJS.Signals);
        return;
      } catch {
        /* gone meanwhile, or a signal name Node does not know: let the runtime decide */
      }
    }
    await this.oci.kill(id, signal);
  }

  /** Resolves once conmon has recorded the exit, or false after timeoutMs. */
  private async waitExit(id: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    // quick first looks (a handled SIGTERM ends in milliseconds), then gentler: hundreds of
    // containers stopping at once must not turn this into a busy loop
    for (let delay = 10; ; delay = Math.min(100, delay * 2)) {
      if (this.dirs.readExit(id)) return true;
      if (!this.dirs.conmonPid(id)) {
        const st = await this.oci.state(id);
        if (!st || st.status === 'stopped') return true;
      }
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    }
  }

  async stop(id: string, graceSeconds: number): Promise<ContainerStatus> {
    checkContainerId(id);
    return this.locked(id, async () => {
      const st = await this.status(id);
      if (!st) throw new BerthError(Codes.ContainerNotFound, `container ${id} not found`, 404);
      if (st.state === 'exited' || st.state === 'unknown') return st;
      await this.kill(id, 'SIGTERM');
      if (!(await this.waitExit(id, Math.max(0, graceSeconds) * 1000))) {
        await this.kill(id, 'SIGKILL');
        if (!(await this.waitExit(id, 10_000))) {
          throw new BerthError(Codes.RuntimeError, `container ${id} did not exit after SIGKILL`);
        }
      }
      return (await this.status(id)) ?? { id, state: 'exited' };
    });
  }

  async remove(id: string): Promise<void> {
    checkContainerId(id);
    return this.locked(id, async () => {
      const conmonPid = this.dirs.conmonPid(id);
      // an exit on record means stopped: no need to ask the runtime (one process run less per delete)
      const st = this.dirs.readExit(id) ? { status: 'stopped' as const } : await this.oci.state(id);
      if (st && st.status !== 'stopped') {
        // SIGKILL and watching for conmon's exit file beats `delete --force`, which polls in 100 ms steps
        await this.kill(id, 'SIGKILL');
        await this.waitExit(id, 5000);
      }
      await this.oci.delete(id);
      if (conmonPid && !(await this.waitGone(conmonPid, 2000))) {
        try {
          process.kill(conmonPid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      const rootfs = this.dirs.dir(id, 'bundle', 'rootfs');
      if (isMountpoint(rootfs)) await unmount(rootfs);
      await rm(this.dirs.dir(id), { recursive: true, force: true });
      await rm(join(this.dirs.exitsDir(), id), { force: true });
    });
  }

  async readLogs(id: string, opts: LogOptions = {}): Promise<string> {
    checkContainerId(id);
    const path = opts.previous ? this.dirs.previousLogPath(id) : this.dirs.logPath(id);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      if (opts.previous) throw new BerthError(Codes.NotFound, `container ${id} has no previous run`, 404);
      return '';
    }
    return readLogFile(path, size, opts);
  }

  /**
   * Emits the existing log (honouring tail), then new lines as conmon writes them, until the signal
   * aborts or the container's monitor is gone and the file is drained.
   */
  async followLogs(id: string, opts: LogOptions, onChunk: (text: string) => void, signal: AbortSignal): Promise<void> {
    checkContainerId(id);
    return followLogFile(this.dirs.logPath(id), opts, onChunk, signal, () => this.dirs.conmonPid(id) !== undefined);
  }

  /** Runs a process in a running container (see startExec). */
  async exec(id: string, argv: string[], opts: ExecOptions = {}): Promise<ExecProcess> {
    checkContainerId(id);
    return startExec(this.oci, this.dirs.dir(id, 'bundle', 'config.json'), id, argv, opts);
  }
}
