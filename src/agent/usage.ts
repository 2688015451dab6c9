// What the host's running groups have used, read from their containers' cgroups at an interval and kept for an hour: the host's share of their metrics, asked for through its data plane.
import { containerId } from './ids.js';
import type { Containers } from './host-runtime.js';
import type { PlacedHostSpec } from './spec.js';
import type { GroupUsage } from './types.js';

/** How long readings are kept (Azure Monitor's metrics of a group are asked for over an hour at most, here). */
const RETENTION_MS = 3_600_000;

/** A group the host runs, as far as reading its usage goes: its placed spec, while its current generation runs. */
export type RunningGroup = { uid: string; placed: PlacedHostSpec };

/** The readings of one group now: per container, its cgroup's counters (containers with no cgroup, not running, left out). */
export function readUsage(containers: Containers, g: RunningGroup, at: number): GroupUsage | undefined {
  const usage: GroupUsage = { uid: g.uid, at, containers: {} };
  for (const c of g.placed.spec.containers) {
    const u = containers.usage(containerId(g.uid, g.placed.generation, c.name));
    if (!u) continue;
    usage.containers[c.name] = { cpuNanos: u.cpuNanos, memoryBytes: u.memoryBytes };
    // the containers share the group's network namespace: any one's counters are the group's
    if (u.rxBytes !== undefined) Object.assign(usage, { rxBytes: u.rxBytes, txBytes: u.txBytes });
  }
  return Object.keys(usage.containers).length > 0 ? usage : undefined;
}

export class UsageHistory {
  private readonly readings = new Map<string, GroupUsage[]>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly containers: Containers,
    /** The groups running now. */
    private readonly running: () => RunningGroup[],
    private readonly intervalMs: number,
  ) {}

  /** Reads every running group now and then at each interval (0: never). */
  start() {
    if (this.timer || this.intervalMs <= 0) return;
    this.read();
    this.timer = setInterval(() => this.read(), this.intervalMs);
    this.timer.unref();
  }

  stop() {
    clearInterval(this.timer);
  }

  /** A group's readings taken at or after `since` (ms since the epoch), oldest first. */
  since(uid: string, since: number): GroupUsage[] {
    return (this.readings.get(uid) ?? []).filter((r) => r.at >= since);
  }

  /** The group is gone from the host. */
  forget(uid: string) {
    this.readings.delete(uid);
  }

  read(now = Date.now()) {
    for (const g of this.running()) {
      const r = readUsage(this.containers, g, now);
      if (!r) continue;
      const list = this.readings.get(g.uid) ?? [];
      list.push(r);
      this.readings.set(g.uid, list);
    }
    for (const [uid, list] of this.readings) {
      const keep = list.findIndex((r) => r.at >= now - RETENTION_MS);
      if (keep < 0) this.readings.delete(uid);
      else if (keep > 0) list.splice(0, keep);
    }
  }
}
