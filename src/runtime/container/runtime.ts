// Runs containers with runc under conmon; all state lives on disk so containers outlive this process.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError, Codes } from '../../lib/errors.js';
import { KeyedLock } from '../../lib/keyed-lock.js';
import { isMountpoint, unmount } from '../../lib/mounts.js';
import { runCommand, spawnWithSyncPipe } from '../../lib/spawner.js';
import { span, traceSince } from '../../lib/trace.js';
import type { ContainerSpec, ContainerStatus, ContainerUsage, ExecOptions, LogOptions } from '../types.js';
import { ExecProcess } from './exec.js';
import { followLogFile, readLogFile } from './logs.js';
import { commandProblem } from './lookpath.js';
import { buildOciSpec, hostsFileContent, processArgs, resolvConfContent } from './spec.js';
import { readContainerUsage } from './usage.js';

/** Where scripts/build-helpers.sh puts berth-exec: dist/libexec, next to dist/src. */
const EXEC_HELPER = fileURLToPath(new URL('../../../libexec/berth-exec', import.meta.url));

/** Debian's static tini (package tini): Docker's `--init`. */
export const DEFAULT_INIT = '/usr/bin/tini-static';

/** Where Debian installs the OCI runtimes. */
const OCI_RUNTIMES = { runc: '/usr/sbin/runc', crun: '/usr/bin/crun' };

/**
 * The OCI runtime to run containers with: crun starts a container in about half of runc's time,
 * but in cgroup-v1 hybrid mode it refuses to run until the v1 hugetlb hierarchy is mounted. 'auto'
 * takes crun when it is installed and the host allows it, else runc; `passedOver` hears why an
 * installed crun was not taken.
 */
export function chooseOciRuntime(pref: 'runc' | 'crun' | 'auto' = 'runc', paths = OCI_RUNTIMES, passedOver?: (why: string) => void): string {
  if (pref === 'runc') return paths.runc;
  if (pref === 'crun') return paths.crun;
  if (!existsSync(paths.crun)) return paths.runc;
  try {
    // hybrid mode: crun wants every controller listed here to have a v1 hierarchy too
    if (readFileSync('/sys/fs/cgroup/unified/cgroup.controllers', 'utf8').trim() === '') return paths.crun;
    passedOver?.('crun is installed but this cgroup-v1 hybrid host has no v1 hugetlb hierarchy, which crun needs: using runc (mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb to let berth use crun)');
    return paths.runc;
  } catch {
    return paths.crun; // pure cgroup v2 or plain v1
  }
}

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

/** What we keep next to the bundle; everything else is read back from runc and conmon's files. */
interface ContainerMeta {
  id: string;
  startedAt?: string;
  /** The container's init PID and its start time in clock ticks (guards against PID reuse). */
  pid?: number;
  pidStartTicks?: string;
  lowerdir?: string;
  /** Where the writable layer (upper and work dirs) lives when not in the container's own dir. */
  scratch?: string;
  restarts: number;
}

interface RuncState {
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  pid: number;
}

const ID_RE = /^[a-z0-9][a-z0-9_.-]*$/;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True while the process runs; a zombie counts as gone (init may reap orphans lazily). */
function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * A container's own small files (meta, OCI config, etc files) are written and read synchronously:
 * a round trip through libuv's thread pool costs more than the write, and under load it queues.
 */
/** The recorded init PID while that very process (same start time) is alive. */
function livePidOf(meta: ContainerMeta): number | undefined {
  return meta.pid && meta.pidStartTicks && processStartTicks(meta.pid) === meta.pidStartTicks ? meta.pid : undefined;
}

async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/**
 * A container's own dir is root's alone: its bundle's config.json holds the container's secure
 * environment values. What the container itself reads through a bind mount (the /etc files) keeps
 * its own mode; the dirs above it are never traversed from inside the container.
 */
const PRIVATE_DIR = 0o700;

export class ContainerRuntime {
  /** The runtime new containers are created with. */
  private readonly runc: string;
  private readonly binaries: { runc: string; crun: string };
  private readonly conmon: string;
  private readonly init: string | undefined;
  private readonly locks = new KeyedLock();

  constructor(private readonly opts: ContainerRuntimeOptions) {
    this.runc = opts.runcPath ?? OCI_RUNTIMES.runc;
    const base = basename(this.runc);
    this.binaries = { runc: base === 'runc' ? this.runc : OCI_RUNTIMES.runc, crun: base === 'crun' ? this.runc : OCI_RUNTIMES.crun };
    this.conmon = opts.conmonPath ?? '/usr/bin/conmon';
    this.init = opts.init === null ? undefined : opts.init ?? DEFAULT_INIT;
  }

  private dir(id: string, ...rest: string[]): string {
    return join(this.opts.root, id, ...rest);
  }

  logPath(id: string): string {
    return this.dir(id, 'ctr.log');
  }

  private previousLogPath(id: string): string {
    return this.dir(id, 'ctr.previous.log');
  }

  /** On a restart, the log of the run that ended becomes the previous log; the new run starts a fresh one. */
  private async rotateLog(id: string): Promise<void> {
    try {
      await rename(this.logPath(id), this.previousLogPath(id));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await writeFile(this.previousLogPath(id), ''); // that run wrote nothing
    }
  }

  private checkId(id: string): void {
    if (!ID_RE.test(id) || id.length > 128) {
      throw new BerthError(Codes.RuntimeError, `invalid container id "${id}"`);
    }
  }

  /** Serialises operations on one id within this process. */
  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }

  /**
   * The runtime that created `id`, told by its state dir (runc keeps state.json, crun status): a
   * container keeps being driven by its own runtime after the configured one changes.
   */
  private binFor(id: string): string {
    const dir = join(this.opts.runcRoot, id);
    if (existsSync(join(dir, 'state.json'))) return this.binaries.runc;
    if (existsSync(join(dir, 'status'))) return this.binaries.crun;
    return this.runc;
  }

  private runcArgs(...args: string[]): string[] {
    return ['--root', this.opts.runcRoot, ...args];
  }

  private async runcState(id: string): Promise<RuncState | undefined> {
    // runc keeps one state dir per container; without it `runc state` can only fail.
    if (!existsSync(join(this.opts.runcRoot, id))) return undefined;
    try {
      const { stdout } = await runCommand(this.binFor(id), this.runcArgs('state', id));
      return JSON.parse(stdout) as RuncState;
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      if (/does not exist|not found/i.test(msg)) return undefined;
      throw new BerthError(Codes.RuntimeError, `runc state ${id}: ${msg.trim()}`);
    }
  }

  private async readMeta(id: string): Promise<ContainerMeta | undefined> {
    try {
      return JSON.parse(readFileSync(this.dir(id, 'meta.json'), 'utf8')) as ContainerMeta;
    } catch {
      return undefined;
    }
  }

  /** One exit dir for every container conmon monitors: a single inotify watch sees every exit. */
  private exitsDir(): string {
    return join(this.opts.root, '.exits');
  }

  private readExit(id: string): { code: number; at: string } | undefined {
    // containers started before the shared dir existed keep their exit file beside their bundle
    for (const p of [join(this.exitsDir(), id), this.dir(id, 'exits', id)]) {
      try {
        const text = readFileSync(p, 'utf8').trim();
        if (text === '') continue;
        return { code: Number(text), at: statSync(p).mtime.toISOString() };
      } catch {
        /* not there */
      }
    }
    return undefined;
  }

  /**
   * Calls `onExit(id)` whenever conmon records a container's exit (it writes `<exit dir>/<id>`),
   * so a caller learns of exits without polling every container. Events may repeat or name
   * conmon's temporary files (`<id>.XXXXXX`): treat them as hints to look again.
   */
  watchExits(onExit: (id: string) => void): () => void {
    mkdirSync(this.exitsDir(), { recursive: true });
    const w = watch(this.exitsDir(), (_event, name) => {
      if (typeof name === 'string' && name !== '') onExit(name.replace(/\.[A-Za-z0-9]{6}$/, ''));
    });
    w.on('error', (e) => console.error(`runtime: watching exits: ${e.message}`));
    return () => w.close();
  }

  private conmonPid(id: string): number | undefined {
    try {
      const pid = Number(readFileSync(this.dir(id, 'conmon.pid'), 'utf8').trim());
      if (!(pid > 0) || !pidAlive(pid)) return undefined;
      // guard against PID reuse: the live process must be conmon for this id
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes('conmon') && cmdline.includes(this.dir(id)) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** What the container has used (its cgroup's counters), or undefined when it has no cgroup (not running). */
  usage(id: string): ContainerUsage | undefined {
    return readContainerUsage(this.opts.cgroupParent ?? '/berth', id);
  }

  private oomKilled(id: string): boolean {
    if (existsSync(this.dir(id, 'persist', 'oom'))) return true;
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
    this.checkId(id);
    const meta = await this.readMeta(id);
    let exit = this.readExit(id);
    // Fast path, taken by every poll of a running container: no exit recorded and the very process
    // we started still alive means running, without spawning `runc state`.
    const pid = !exit && meta?.startedAt ? livePidOf(meta) : undefined;
    if (pid) return { id, state: 'running', pid, startedAt: meta!.startedAt };
    // an exit on record means it ended: the runtime has nothing to add (one process run less per stop and delete)
    const state = meta && exit ? undefined : await this.runcState(id);
    // it may have ended (and conmon written its exit) while the runtime was asked
    exit ??= this.readExit(id);
    // unknown, or only prepared (rootfs mounted, never started): nothing to report, start() will run it
    if (!state && (!meta || (meta.restarts < 0 && !meta.startedAt && !exit))) return undefined;
    const base: ContainerStatus = { id, state: 'unknown', ...(meta?.startedAt ? { startedAt: meta.startedAt } : {}) };

    if (!exit && state?.status === 'stopped') {
      // conmon writes the exit file moments after runc sees the process gone
      for (let i = 0; i < 50 && !exit && this.conmonPid(id); i++) {
        await sleep(10);
        exit = this.readExit(id);
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

  async list(): Promise<string[]> {
    try {
      const entries = await readdir(this.opts.root, { withFileTypes: true });
      return entries.filter((e) => e.isDirectory() && ID_RE.test(e.name)).map((e) => e.name).sort();
    } catch {
      return [];
    }
  }

  start(spec: ContainerSpec): Promise<ContainerStatus> {
    this.checkId(spec.id);
    return this.locked(spec.id, () => this.startLocked(spec));
  }

  private async startLocked(spec: ContainerSpec): Promise<ContainerStatus> {
    const id = spec.id;
    const current = await span(id, 'rt.status', () => this.status(id));
    if (current?.state === 'running') return current;
    if (current?.state === 'created') {
      const startedAt = new Date().toISOString();
      await this.runcStart(id);
      await this.markStarted(id, startedAt, current.pid ?? 0);
      return (await this.status(id)) ?? { id, state: 'unknown' };
    }

    const meta: ContainerMeta = (await this.readMeta(id)) ?? { id, restarts: -1 };
    if (await this.runcState(id)) {
      // an exited run: clear runc's record (and its cgroup) so the bundle can be created again
      await this.runcDelete(id);
    }
    const conmonPid = this.conmonPid(id);
    if (conmonPid) {
      await this.waitGone(conmonPid, 2000);
    }

    if (this.init && !existsSync(this.init)) throw new BerthError(Codes.RuntimeError, `the containers' init ${this.init} is missing: install Debian's tini (scripts/install-deps.sh does)`);
    const bundle = this.dir(id, 'bundle');
    const rootfs = join(bundle, 'rootfs');
    // upper, work and the rootfs dir are made by mountRootfs
    this.makeOwnDir(id);
    for (const d of ['persist', 'sock', 'etc']) mkdirSync(this.dir(id, d), { recursive: true });
    mkdirSync(this.exitsDir(), { recursive: true });
    for (const f of [join(this.exitsDir(), id), this.dir(id, 'exits', id), this.dir(id, 'persist', 'oom'), this.dir(id, 'persist', 'exit'), this.dir(id, 'ctr.pid')]) rmSync(f, { force: true });

    let t0 = performance.now();
    await this.mountRootfs(id, meta, spec.image.layerDirs, spec.scratchDir);
    traceSince(id, 'rt.mount', t0);
    t0 = performance.now();

    const etc = {
      hosts: this.dir(id, 'etc', 'hosts'),
      hostname: this.dir(id, 'etc', 'hostname'),
      resolvConf: undefined as string | undefined,
    };
    let hostResolv = '';
    try {
      hostResolv = readFileSync(this.opts.hostResolvConf ?? '/etc/resolv.conf', 'utf8');
    } catch {
      /* no host resolver config: keep the image's */
    }
    const resolv = resolvConfContent(hostResolv);
    writeFileSync(etc.hosts, hostsFileContent(spec.hostname, spec.ip));
    writeFileSync(etc.hostname, `${spec.hostname}\n`);
    if (resolv) {
      etc.resolvConf = this.dir(id, 'etc', 'resolv.conf');
      writeFileSync(etc.resolvConf, resolv);
    }
    const oci = buildOciSpec(spec, { rootfs, etcFiles: etc, cgroupParent: this.opts.cgroupParent, init: this.init });
    const problem = commandProblem(rootfs, processArgs(spec)[0], oci.process.env, oci.process.cwd, oci.mounts.map((m) => m.destination));
    if (problem) throw new BerthError(Codes.RuntimeError, `creating container ${id}: ${problem}`);
    // it holds the secure environment values: root's alone, also when it was written before with a wider mode
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(oci), { mode: 0o600 });
    chmodSync(join(bundle, 'config.json'), 0o600);

    if (meta.restarts >= 0) await this.rotateLog(id);
    meta.restarts += 1;
    delete meta.startedAt;
    await writeFileAtomic(this.dir(id, 'meta.json'), JSON.stringify(meta));

    traceSince(id, 'rt.bundle', t0);
    const pid = await span(id, 'rt.conmon+create', () => this.spawnConmon(id, bundle));
    const startedAt = new Date().toISOString();
    await span(id, 'rt.start', () => this.runcStart(id));
    await span(id, 'rt.markStarted', () => this.markStarted(id, startedAt, pid));
    // a fresh start is known to be running; asking runc again would add a process spawn
    return { id, state: 'running', pid, startedAt };
  }

  /** The container's own dir, private to root (see PRIVATE_DIR), also when an older berth made it wider. */
  private makeOwnDir(id: string): void {
    mkdirSync(this.opts.root, { recursive: true, mode: PRIVATE_DIR });
    mkdirSync(this.dir(id), { recursive: true, mode: PRIVATE_DIR });
    chmodSync(this.dir(id), PRIVATE_DIR);
  }

  /**
   * Mounts the overlay rootfs (upper layer kept across restarts) unless it is mounted with these
   * layers already. The writable layer lives in `scratch` when given (a group's size-limited disk),
   * else in the container's own dir; a container keeps the one it started with.
   */
  private async mountRootfs(id: string, meta: ContainerMeta, layerDirs: string[], scratch?: string): Promise<void> {
    const rootfs = this.dir(id, 'bundle', 'rootfs');
    const lowerdir = [...layerDirs].reverse().join(':');
    if (layerDirs.length === 0) throw new BerthError(Codes.RuntimeError, `container ${id}: image has no layers`);
    if (isMountpoint(rootfs) && meta.lowerdir !== lowerdir) await unmount(rootfs);
    // mounted before (lowerdir on record) without a scratch dir: its layer stays in its own dir
    if (meta.lowerdir === undefined) meta.scratch ??= scratch;
    const layer = meta.scratch ?? this.dir(id);
    if (!isMountpoint(rootfs)) {
      this.makeOwnDir(id);
      mkdirSync(rootfs, { recursive: true });
      // the upper dir's mode is the container's / (0755 as in any image); work is overlay's own
      mkdirSync(join(layer, 'upper'), { recursive: true, mode: 0o755 });
      mkdirSync(join(layer, 'work'), { recursive: true, mode: 0o700 });
      const data = `lowerdir=${lowerdir},upperdir=${join(layer, 'upper')},workdir=${join(layer, 'work')}`;
      try {
        // mount(2) from berth-spawnd: mount(8) reads every mount of the host first (15 ms with hundreds)
        await runCommand('@mount', ['overlay', rootfs, 'overlay', '0', data]);
      } catch (e) {
        throw new BerthError(Codes.RuntimeError, `mounting rootfs of ${id}: ${String((e as { stderr?: string }).stderr ?? e).trim()}`);
      }
    }
    meta.lowerdir = lowerdir;
  }

  /**
   * Mounts a new container's rootfs ahead of start(), so a caller can do it while the group's
   * network is being set up; start() then finds it mounted. Does nothing for a known container.
   */
  prepare(id: string, layerDirs: string[], scratchDir?: string): Promise<void> {
    this.checkId(id);
    return this.locked(id, async () => {
      if (await this.readMeta(id)) return;
      const meta: ContainerMeta = { id, restarts: -1 };
      await this.mountRootfs(id, meta, layerDirs, scratchDir);
      await writeFileAtomic(this.dir(id, 'meta.json'), JSON.stringify(meta));
    });
  }

  private async markStarted(id: string, startedAt: string, pid: number): Promise<void> {
    const meta = (await this.readMeta(id)) ?? { id, restarts: 0 };
    meta.startedAt = startedAt;
    if (pid > 0) {
      meta.pid = pid;
      meta.pidStartTicks = processStartTicks(pid);
    }
    await writeFileAtomic(this.dir(id, 'meta.json'), JSON.stringify(meta));
  }

  /**
   * Starts conmon fully detached (own session, no stdio tied to us) so it and the container survive
   * this process; conmon reports the container PID (or runc's error) on the sync pipe once
   * `runc create` is done.
   */
  private spawnConmon(id: string, bundle: string): Promise<number> {
    const args = [
      '--api-version', '1',
      '-c', id,
      '-u', id,
      '-n', id,
      '-r', this.runc,
      '--runtime-arg', '--root',
      '--runtime-arg', this.opts.runcRoot,
      '-b', bundle,
      '-p', this.dir(id, 'ctr.pid'),
      '--exit-dir', this.exitsDir(),
      '-0', this.dir(id, 'persist'),
      '-l', `k8s-file:${this.logPath(id)}`,
      '--conmon-pidfile', this.dir(id, 'conmon.pid'),
      '--socket-dir-path', this.dir(id, 'sock'),
      '--log-level', 'error',
      '--no-sync-log',
    ];
    const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3' };
    return spawnWithSyncPipe(this.conmon, args, { env, cwd: this.dir(id) }).then(({ line, error }) => {
      if (error) throw new BerthError(Codes.RuntimeError, `spawning conmon for ${id}: ${error}`);
      if (!line) throw new BerthError(Codes.RuntimeError, `conmon for ${id} exited before reporting the container PID`);
      let msg: { data: number; message?: string };
      try {
        msg = JSON.parse(line);
      } catch {
        throw new BerthError(Codes.RuntimeError, `conmon for ${id}: unparsable report ${JSON.stringify(line.slice(0, 200))}`);
      }
      if (msg.data > 0) return msg.data;
      throw new BerthError(Codes.RuntimeError, `creating container ${id}: ${(msg.message ?? 'runc create failed').trim()}`);
    });
  }

  private async runcStart(id: string): Promise<void> {
    try {
      await runCommand(this.binFor(id), this.runcArgs('start', id));
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e).trim();
      // a concurrent start (another process) may have won; that is fine if it now runs
      const st = await this.runcState(id);
      if (st && (st.status === 'running' || st.status === 'stopped')) return;
      throw new BerthError(Codes.RuntimeError, `runc start ${id}: ${msg}`);
    }
  }

  private async runcDelete(id: string): Promise<void> {
    try {
      await runCommand(this.binFor(id), this.runcArgs('delete', '--force', id));
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      if (!/does not exist|not found/i.test(msg)) {
        throw new BerthError(Codes.RuntimeError, `runc delete ${id}: ${msg.trim()}`);
      }
    }
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
    const meta = await this.readMeta(id);
    return meta && !this.readExit(id) ? livePidOf(meta) : undefined;
  }

  async kill(id: string, signal: string = 'SIGTERM'): Promise<void> {
    this.checkId(id);
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
    try {
      await runCommand(this.binFor(id), this.runcArgs('kill', id, signal));
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      // an ended container has nothing left to signal
      if (/not running|does not exist|process already finished|container not running/i.test(msg)) return;
      throw new BerthError(Codes.RuntimeError, `runc kill ${id} ${signal}: ${msg.trim()}`);
    }
  }

  /** Resolves once conmon has recorded the exit, or false after timeoutMs. */
  private async waitExit(id: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    // quick first looks (a handled SIGTERM ends in milliseconds), then gentler: hundreds of
    // containers stopping at once must not turn this into a busy loop
    for (let delay = 10; ; delay = Math.min(100, delay * 2)) {
      if (this.readExit(id)) return true;
      if (!this.conmonPid(id)) {
        const st = await this.runcState(id);
        if (!st || st.status === 'stopped') return true;
      }
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    }
  }

  async stop(id: string, graceSeconds: number): Promise<ContainerStatus> {
    this.checkId(id);
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
    this.checkId(id);
    return this.locked(id, async () => {
      const conmonPid = this.conmonPid(id);
      // an exit on record means stopped: no need to ask the runtime (one process run less per delete)
      const st = this.readExit(id) ? { status: 'stopped' as const } : await this.runcState(id);
      if (st && st.status !== 'stopped') {
        // SIGKILL and watching for conmon's exit file beats `delete --force`, which polls in 100 ms steps
        await this.kill(id, 'SIGKILL');
        await this.waitExit(id, 5000);
      }
      await this.runcDelete(id);
      if (conmonPid && !(await this.waitGone(conmonPid, 2000))) {
        try {
          process.kill(conmonPid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      const rootfs = this.dir(id, 'bundle', 'rootfs');
      if (isMountpoint(rootfs)) await unmount(rootfs);
      await rm(this.dir(id), { recursive: true, force: true });
      await rm(join(this.exitsDir(), id), { force: true });
    });
  }

  async readLogs(id: string, opts: LogOptions = {}): Promise<string> {
    this.checkId(id);
    const path = opts.previous ? this.previousLogPath(id) : this.logPath(id);
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
    this.checkId(id);
    return followLogFile(this.logPath(id), opts, onChunk, signal, () => this.conmonPid(id) !== undefined);
  }

  /**
   * Runs a process in a running container, with the container's process settings (user, env,
   * capabilities, …) and, when asked, a pseudo-terminal. It runs in its own session; berth-exec
   * reaps it, and kill() (or the end of this process) kills the whole session.
   */
  async exec(id: string, argv: string[], opts: ExecOptions = {}): Promise<ExecProcess> {
    this.checkId(id);
    if (argv.length === 0) throw new BerthError(Codes.RuntimeError, 'exec needs a command');
    const helper = EXEC_HELPER;
    if (!existsSync(helper)) throw new BerthError(Codes.RuntimeError, `exec helper ${helper} is missing: run scripts/build-helpers.sh`);
    let base: Record<string, unknown> & { env?: string[] };
    try {
      base = JSON.parse(await readFile(this.dir(id, 'bundle', 'config.json'), 'utf8')).process;
    } catch {
      throw new BerthError(Codes.ContainerNotFound, `container ${id} not found`, 404);
    }
    const tty = opts.tty;
    const proc: Record<string, unknown> = {
      ...base,
      args: argv,
      terminal: !!tty,
      env: [...(base.env ?? []), ...(opts.env ?? [])],
      ...(opts.cwd && { cwd: opts.cwd }),
    };
    delete proc.consoleSize;
    // The size is set before the process runs, so its first look at the terminal sees it.
    if (tty && tty.rows > 0 && tty.cols > 0) proc.consoleSize = { height: tty.rows, width: tty.cols };
    // A short private path: the console socket's must fit in sun_path.
    const dir = await mkdtemp(join(tmpdir(), 'berth-exec-'));
    const paths = { process: join(dir, 'process.json'), pid: join(dir, 'pid'), console: join(dir, 'console.sock') };
    await writeFile(paths.process, JSON.stringify(proc), { mode: 0o600 });
    const runtimeArgs = this.runcArgs('exec', '--detach', '--pid-file', paths.pid,
      ...(tty ? ['--console-socket', paths.console] : []), '--process', paths.process, id);
    // berth-exec removes the spec (it holds the container's secrets) as soon as the runtime has read it, even if berth dies.
    return new ExecProcess(helper, [...(tty ? ['--console-socket', paths.console] : []), '--pid-file', paths.pid, '--cleanup', paths.process, '--', this.binFor(id), ...runtimeArgs],
      !!tty, () => rm(dir, { recursive: true, force: true }));
  }
}

/** Start time of a process (field 22 of /proc/PID/stat), or undefined when it is gone or a zombie. */
function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}
