// The OCI runtime's command line (runc or crun) for the containers kept under one state root: which binary drives a container, and its state, start, kill and delete.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';
import { runCommand } from '../../lib/spawner.js';

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

export interface RuncState {
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  pid: number;
}

export class OciRuntimeCli {
  /** The runtime new containers are created with. */
  readonly path: string;
  private readonly binaries: { runc: string; crun: string };

  /** `stateRoot` is `runc --root`, e.g. /run/berth/runc (crun keeps its state there the same way). */
  constructor(readonly stateRoot: string, runtimePath?: string) {
    this.path = runtimePath ?? OCI_RUNTIMES.runc;
    const base = basename(this.path);
    this.binaries = { runc: base === 'runc' ? this.path : OCI_RUNTIMES.runc, crun: base === 'crun' ? this.path : OCI_RUNTIMES.crun };
  }

  /**
   * The runtime that created `id`, told by its state dir (runc keeps state.json, crun status): a
   * container keeps being driven by its own runtime after the configured one changes.
   */
  binFor(id: string): string {
    const dir = join(this.stateRoot, id);
    if (existsSync(join(dir, 'state.json'))) return this.binaries.runc;
    if (existsSync(join(dir, 'status'))) return this.binaries.crun;
    return this.path;
  }

  args(...args: string[]): string[] {
    return ['--root', this.stateRoot, ...args];
  }

  async state(id: string): Promise<RuncState | undefined> {
    // runc keeps one state dir per container; without it `runc state` can only fail.
    if (!existsSync(join(this.stateRoot, id))) return undefined;
    try {
      const { stdout } = await runCommand(this.binFor(id), this.args('state', id));
      return JSON.parse(stdout) as RuncState;
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      if (/does not exist|not found/i.test(msg)) return undefined;
      throw new BerthError(Codes.RuntimeError, `runc state ${id}: ${msg.trim()}`);
    }
  }

  async start(id: string): Promise<void> {
    try {
      await runCommand(this.binFor(id), this.args('start', id));
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e).trim();
      // a concurrent start (another process) may have won; that is fine if it now runs
      const st = await this.state(id);
      if (st && (st.status === 'running' || st.status === 'stopped')) return;
      throw new BerthError(Codes.RuntimeError, `runc start ${id}: ${msg}`);
    }
  }

  async delete(id: string): Promise<void> {
    try {
      await runCommand(this.binFor(id), this.args('delete', '--force', id));
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      if (!/does not exist|not found/i.test(msg)) {
        throw new BerthError(Codes.RuntimeError, `runc delete ${id}: ${msg.trim()}`);
      }
    }
  }

  async kill(id: string, signal: string): Promise<void> {
    try {
      await runCommand(this.binFor(id), this.args('kill', id, signal));
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      // an ended container has nothing left to signal
      if (/not running|does not exist|process already finished|container not running/i.test(msg)) return;
      throw new BerthError(Codes.RuntimeError, `runc kill ${id} ${signal}: ${msg.trim()}`);
    }
  }
}
