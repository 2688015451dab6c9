// What a container has used, read from its cgroup (v1 or v2) and its network namespace: the counters Azure Monitor's
// container metrics are made from (CPU time, memory in use, bytes received and sent).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerUsage } from '../types.js';

const read = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

const field = (text: string | undefined, name: string) => {
  const m = text && new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

/** The usage of the container in cgroup `<parent>/<id>` under `root` (the host's /sys/fs/cgroup); undefined when it has no cgroup. */
export function readContainerUsage(parent: string, id: string, root = '/sys/fs/cgroup'): ContainerUsage | undefined {
  const rel = join(parent.replace(/^\/+/, ''), id);
  // cgroup v2: one hierarchy; v1: the cpuacct and memory controllers' own
  const v2 = read(join(root, rel, 'cpu.stat'));
  let cpuNanos: number | undefined;
  let memoryBytes: number | undefined;
  let procs: string | undefined;
  if (v2 !== undefined) {
    const usec = field(v2, 'usage_usec');
    cpuNanos = usec === undefined ? undefined : usec * 1000;
    const current = Number(read(join(root, rel, 'memory.current')));
    memoryBytes = Math.max(0, current - (field(read(join(root, rel, 'memory.stat')), 'inactive_file') ?? 0));
    procs = read(join(root, rel, 'cgroup.procs'));
  } else {
    const ns = read(join(root, 'cpuacct', rel, 'cpuacct.usage'));
    if (ns === undefined) return undefined;
    cpuNanos = Number(ns);
    const usage = Number(read(join(root, 'memory', rel, 'memory.usage_in_bytes')) ?? 0);
    memoryBytes = Math.max(0, usage - (field(read(join(root, 'memory', rel, 'memory.stat')), 'total_inactive_file') ?? 0));
    procs = read(join(root, 'cpuacct', rel, 'cgroup.procs'));
  }
  if (cpuNanos === undefined || !Number.isFinite(cpuNanos)) return undefined;
  const pid = procs?.split('\n').find(Boolean);
  return { cpuNanos, memoryBytes: Number.isFinite(memoryBytes) ? memoryBytes! : 0, ...(pid && networkOf(pid)) };
}

/** A process's network namespace's received and sent bytes (`/proc/<pid>/net/dev`), loopback aside. */
export function networkOf(pid: string, proc = '/proc'): { rxBytes: number; txBytes: number } | undefined {
  const text = read(join(proc, pid, 'net', 'dev'));
  if (!text) return undefined;
  let rxBytes = 0;
  let txBytes = 0;
  for (const line of text.split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!rest || name.trim() === 'lo') continue;
    const cols = rest.trim().split(/\s+/).map(Number);
    rxBytes += cols[0];
    txBytes += cols[8];
  }
  return { rxBytes, txBytes };
}
