// Placement throughput: berth's scheduler placing 100,000 groups on 5,000 simulated hosts under resource, zone and
// anti-affinity constraints (kube-scheduler's side of the comparison: bench/kube-scheduler.ts).
// Usage: node dist/bench/placement.js [--hosts N] [--groups N] [--zones N] [--seed N] [--kube-pods N (0: berth only)] [--json FILE]
import { writeFileSync } from 'node:fs';
import { Scheduler } from '../src/instances/placement/scheduler.js';
import type { GroupDemand, HostInfo } from '../src/instances/placement/types.js';
import { kubeSchedulerRate } from './kube-scheduler.js';

export interface Workload {
  hosts: HostInfo[];
  groups: GroupDemand[];
}

/** A deterministic pseudo-random source (mulberry32), so both schedulers get the same workload. */
export function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Hosts of 16 cores and 64 GB in `zones` zones; groups of 0.25 to 1 core and 0.5 to 2 GB (about 75% of the
 * cluster when all are placed): 70% with no rules, 10% pinned to one zone (ACI's `zones`), 20% in services of 5
 * replicas that must run on different hosts (required anti-affinity on the service's tag).
 */
export function workload(o: { hosts: number; groups: number; zones: number; seed: number }): Workload {
  const rnd = random(o.seed);
  const hosts: HostInfo[] = Array.from({ length: o.hosts }, (_, i) => ({
    name: `host-${i}`, zone: `zone-${i % o.zones}`, labels: { 'berth.io/zone': `zone-${i % o.zones}` }, allocatable: { cpu: 16, memoryGB: 64 }, ready: true,
  }));
  const groups: GroupDemand[] = [];
  for (let i = 0; i < o.groups; i++) {
    const kind = rnd();
    const cpu = [0.25, 0.5, 0.75, 1][Math.floor(rnd() * 4)];
    const base = { uid: `g${i}`, subscriptionId: `sub-${i % 10}`, name: `g${i}`, tags: {} as Record<string, string>, cpu, memoryGB: cpu * 2, ports: [] as string[], zones: [] as string[] };
    if (kind < 0.7) groups.push(base);
    else if (kind < 0.8) groups.push({ ...base, zones: [`zone-${Math.floor(rnd() * o.zones)}`] });
    else {
      const service = `svc-${Math.floor(i / 5)}`;
      groups.push({ ...base, tags: { app: service }, rules: { antiAffinity: [{ selector: { tags: { app: service } }, scope: 'Host', required: true }] } });
    }
  }
  return { hosts, groups };
}

export function placeAll(w: Workload): { placed: number; unschedulable: number; ms: number; perSecond: number } {
  const s = new Scheduler();
  for (const h of w.hosts) s.setHost(h);
  let placed = 0;
  let unschedulable = 0;
  const t0 = performance.now();
  for (const g of w.groups) {
    const d = s.decide(g);
    if ('host' in d) {
      s.setPlaced(d.host, g);
      placed++;
    } else unschedulable++;
  }
  const ms = performance.now() - t0;
  return { placed, unschedulable, ms, perSecond: Math.round((w.groups.length / ms) * 1000) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const o = { hosts: arg('hosts', 5000), groups: arg('groups', 100_000), zones: arg('zones', 5), seed: arg('seed', 1) };
  const w = workload(o);
  const runs = [placeAll(w), placeAll(w), placeAll(w)];
  const best = runs.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
  const berth = { runs: runs.map((r) => r.perSecond), placementsPerSecond: runs.map((r) => r.perSecond).sort((a, b) => a - b)[1], placed: best.placed, unschedulable: best.unschedulable };
  console.log(`berth: ${JSON.stringify(berth)}`);
  // the same hosts, and the workload's first --kube-pods groups as pods (kube-scheduler takes minutes for 10,000)
  const kubePods = arg('kube-pods', 10_000);
  const kube = kubePods > 0 ? await kubeSchedulerRate({ hosts: o.hosts, pods: kubePods, zones: o.zones, seed: o.seed }) : undefined;
  if (kube) console.log(`kube-scheduler: ${JSON.stringify(kube)}`);
  const result = {
    ...o, berth, kubeScheduler: kube,
    ...(kube && { ratioToKubeSchedulerBound: Math.round(berth.placementsPerSecond / kube.podsPerSecond), ratioToKubeSchedulerAlgorithm: Math.round(berth.placementsPerSecond / kube.algorithmDecisionsPerSecond) }),
  };
  console.log(JSON.stringify(result));
  const j = process.argv.indexOf('--json');
  if (j > 0) writeFileSync(process.argv[j + 1], JSON.stringify(result, null, 2));
}
