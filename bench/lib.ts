// Benchmark plumbing shared by the scenarios: percentiles, TCP readiness probes, PSS, host-state snapshots.
import { execFile, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { splitRule } from '../src/runtime/network/hostports.js';
import { childProcesses } from '../test/helpers/berth.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function run(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

/**
 * Runs a command with stdio on /dev/null and resolves with its exit code: `runc run -d` hands its
 * stdio to the container, so pipes would keep execFile waiting for as long as the container lives.
 */
export function runDetached(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'ignore', env: env ?? process.env });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? -1));
  });
}

/** One TCP connect attempt; true when the peer accepted. */
function tryConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Polls until host:port accepts a connection; a refused connect costs well under a millisecond, so poll tightly. */
export async function waitTcp(host: string, port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await tryConnect(host, port))) {
    if (Date.now() > deadline) throw new Error(`${host}:${port} did not accept connections within ${timeoutMs} ms`);
    await sleep(1);
  }
}

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
}

/** Nearest-rank percentiles in milliseconds. */
export function summarize(xs: number[]): Summary | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const pick = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  const r = (x: number) => Math.round(x * 10) / 10;
  return { n: s.length, p50: r(pick(50)), p95: r(pick(95)), p99: r(pick(99)), min: r(s[0]), max: r(s[s.length - 1]) };
}

/** PSS in KiB of one process, from smaps_rollup; 0 when it is gone. */
export function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Live (non-zombie) processes whose comm starts with `comm` and whose command line contains `marker`. */
export function findProcesses(comm: string, marker: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (!name.startsWith(comm) || state === 'Z') continue;
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(marker)) out.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** The fields of /proc/PID/stat after the command name (index 11 is utime, 12 stime, 13 cutime, 14 cstime, in ticks). */
export function procStat(pid: number | string): { comm: string; fields: number[] } {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return { comm: st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')), fields: st.slice(st.lastIndexOf(')') + 2).split(' ').map(Number) };
}

/** Child processes of `pid` whose name is `comm`. */
export function childrenNamed(pid: number, comm: string): number[] {
  return childProcesses(pid).filter((c) => {
    try {
      return readFileSync(`/proc/${c}/comm`, 'utf8').trim() === comm;
    } catch {
      return false; // gone meanwhile
    }
  });
}

/** Mean PSS (MiB) of the given processes. */
export function meanPssMiB(pids: number[]): number {
  if (pids.length === 0) return 0;
  return pids.reduce((a, p) => a + pssKiB(p), 0) / pids.length / 1024;
}

/** iptables rules and user chains, per table, as iptables-save prints them. */
export interface IptablesSnapshot {
  [table: string]: { chains: Set<string>; rules: string[] };
}

export async function iptablesSnapshot(): Promise<IptablesSnapshot> {
  const out: IptablesSnapshot = {};
  let table = '';
  for (const line of (await run('iptables-save', [])).split('\n')) {
    if (line.startsWith('*')) out[(table = line.slice(1))] = { chains: new Set(), rules: [] };
    else if (line.startsWith(':')) out[table].chains.add(line.slice(1).split(' ')[0]);
    else if (line.startsWith('-A ')) out[table].rules.push(line);
  }
  return out;
}


/**
 * Removes what docker and podman added to iptables since `before` (rules, then their chains), so
 * the host ends the run with the ruleset it began with; `owned` singles out their rules and chains,
 * since berth changes the same tables meanwhile. Returns how many rules and chains went.
 */
export async function restoreIptables(before: IptablesSnapshot, owned: RegExp): Promise<{ rules: number; chains: number }> {
  const now = await iptablesSnapshot();
  let rules = 0;
  let chains = 0;
  for (const [table, cur] of Object.entries(now)) {
    const was = before[table] ?? { chains: new Set<string>(), rules: [] };
    const kept = new Map<string, number>();
    for (const r of was.rules) kept.set(r, (kept.get(r) ?? 0) + 1);
    for (const r of cur.rules) {
      const k = kept.get(r) ?? 0;
      if (k > 0 || !owned.test(r)) {
        kept.set(r, k - 1);
        continue;
      }
      const argv = splitRule(r.slice(3));
      await run('iptables', ['-t', table, '-D', ...argv]).then(() => rules++, () => undefined);
    }
    const added = [...cur.chains].filter((c) => !was.chains.has(c) && owned.test(c));
    for (const c of added) await run('iptables', ['-t', table, '-F', c]).catch(() => undefined);
    for (const c of added) await run('iptables', ['-t', table, '-X', c]).then(() => chains++, () => undefined);
  }
  return { rules, chains };
}

export function linkExists(name: string): boolean {
  try {
    readFileSync(`/sys/class/net/${name}/ifindex`);
    return true;
  } catch {
    return false;
  }
}

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export function mountsUnder(dir: string): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((m) => m === dir || m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

export async function unmountAll(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) await run('umount', ['-l', m]).catch(() => undefined);
}

export function version(cmd: string, args = ['--version']): Promise<string> {
  return run(cmd, args).then((s) => s.split('\n')[0].trim(), () => 'not installed');
}

/** The machine's CPU time so far (every core, user and system, from /proc/stat), in ms: a difference is what all processes used meanwhile. */
export function machineCpuMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  // cpu  user nice system idle iowait irq softirq steal …: USER_HZ ticks (100 a second)
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq) * 10;
}

/**
 * The CPU time of a process and of its descendants that live now (ms), counting the children each of them has
 * reaped (a server's helper counts the commands it ran): a difference is what that tree used meanwhile.
 */
export function treeCpuMs(pid: number): number {
  let ticks = 0;
  const seen = new Set<number>();
  const visit = (p: number) => {
    if (seen.has(p)) return;
    seen.add(p);
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // after "(comm) ": state ppid … utime(14) stime(15) cutime(16) cstime(17), counted from the state as field 3
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      return; // gone meanwhile
    }
    for (const c of childProcesses(p)) visit(c);
  };
  visit(pid);
  return ticks * 10;
}
