// Places container groups on hosts: filter the hosts a group can run on, score them, take the best. The state it
// decides from is a cache kept current by its caller (from the store's watches), never a query per decision.
//
// In the spirit of kube-scheduler's filter and score plugins and Nomad's constraints and spread (their designs,
// not their code): filters are ready, zones, host labels, resources (CPU, memory, the addresses of the host's subnet), host ports, required affinity and
// anti-affinity to other groups of the same subscription; scores are bin-packing or spreading by resources plus
// preferred (anti-)affinity. Like kube-scheduler it stops looking once it has found enough feasible hosts in a
// large cluster (starting where the last search stopped, so every host gets its turn), which keeps a decision
// cheap at thousands of hosts.
import type { AffinityTerm, Decision, GroupDemand, HostInfo } from './types.js';

export type Strategy = 'BinPack' | 'Spread';

export interface SchedulerOptions {
  /** The cluster's default strategy; a group's `placement.strategy` overrides it. Default Spread. */
  strategy?: Strategy;
  /** Feasible hosts to find before scoring, as a share of the cluster (adaptive, like kube-scheduler's, when unset). */
  percentageOfHostsToScore?: number;
}

/** Why a host was passed over, in the order filters run (the first that fails is counted). */
const FILTERS = ['not ready', 'not in the requested zones', 'missing the requested host labels', 'insufficient cpu', 'insufficient memory', 'no free address',
  'host port already in use', "didn't match the group's affinity rules", "didn't match the group's anti-affinity rules"] as const;
type Filter = (typeof FILTERS)[number];

const MIN_HOSTS_TO_FIND = 100;
const NONE: AffinityTerm[] = [];
const NO_MATCHES: { t: AffinityTerm; m: TermMatch }[] = [];
const NO_PREFERENCES: { t: AffinityTerm; m: TermMatch; sign: number }[] = [];

interface Placed {
  host: number;
  demand: GroupDemand;
}

/** The hosts and zones where some group matching a term runs, and whether any does. */
interface TermMatch {
  hosts: Set<number>;
  zones: Set<number>;
  any: boolean;
}

export class Scheduler {
  private readonly strategy: Strategy;
  private readonly percentage?: number;
  // hosts, by index (a host that leaves keeps its slot, marked gone, so indexes stay valid)
  private names: string[] = [];
  private labels: Record<string, string>[] = [];
  private ports: (Set<string> | undefined)[] = [];
  /** Ports a host keeps for its own sockets (as it reported them, and the array they came in, to skip a repeat). */
  private held: ({ from: readonly string[]; set: Set<string> } | undefined)[] = [];
  // the numbers every decision reads for every host it looks at, in typed arrays (grown by doubling)
  private zoneOf = new Int32Array(64);
  private allocCpu = new Float64Array(64);
  private allocMem = new Float64Array(64);
  private usedCpu = new Float64Array(64);
  private usedMem = new Float64Array(64);
  /** Addresses a host's subnet has for groups (Infinity: it did not say), and how many its groups hold (one each). */
  private allocAddr = new Float64Array(64);
  private usedAddr = new Float64Array(64);
  private ready = new Uint8Array(64);
  private gone = new Uint8Array(64);
  private hostIndex = new Map<string, number>();
  private zones: string[] = [];
  private zoneIndex = new Map<string, number>();
  private placed = new Map<string, Placed>();
  /** `sub\0key=value` -> groups carrying that tag; `sub\0\0name` -> groups of that name. */
  private index = new Map<string, Set<string>>();
  private nextStart = 0;

  constructor(o: SchedulerOptions = {}) {
    this.strategy = o.strategy ?? 'Spread';
    this.percentage = o.percentageOfHostsToScore;
  }

  // --- the cache ---

  /** A host joins or changes (capacity, labels, zone, readiness). */
  setHost(h: HostInfo): void {
    let i = this.hostIndex.get(h.name);
    if (i === undefined) {
      i = this.names.length;
      if (i === this.ready.length) this.grow();
      this.hostIndex.set(h.name, i);
      this.names.push(h.name);
      this.ports.push(undefined);
      this.held.push(undefined);
      this.labels.push({});
    }
    this.zoneOf[i] = h.zone === undefined ? -1 : this.zoneId(h.zone);
    this.labels[i] = h.labels;
    this.allocCpu[i] = h.allocatable.cpu;
    this.allocMem[i] = h.allocatable.memoryGB;
    this.allocAddr[i] = h.allocatable.addresses ?? Infinity;
    this.ready[i] = h.ready ? 1 : 0;
    this.gone[i] = 0;
  }

  private grow(): void {
    const twice = <T extends Int32Array | Float64Array | Uint8Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(a.length * 2);
      b.set(a);
      return b;
    };
    this.zoneOf = twice(this.zoneOf);
    this.allocCpu = twice(this.allocCpu);
    this.allocMem = twice(this.allocMem);
    this.usedCpu = twice(this.usedCpu);
    this.usedMem = twice(this.usedMem);
    this.allocAddr = twice(this.allocAddr);
    this.usedAddr = twice(this.usedAddr);
    this.ready = twice(this.ready);
    this.gone = twice(this.gone);
  }

  /** A host left the cluster: it takes nothing new (what it ran is the caller's to move). */
  removeHost(name: string): void {
    const i = this.hostIndex.get(name);
    if (i !== undefined) {
      this.gone[i] = 1;
      this.ready[i] = 0;
    }
  }

  /** The ports `host` keeps for its own sockets ("TCP/22"): no group that publishes one goes there. */
  setHeldPorts(host: string, ports: readonly string[]): void {
    const i = this.hostIndex.get(host);
    if (i === undefined || this.held[i]?.from === ports) return;
    this.held[i] = ports.length === 0 ? undefined : { from: ports, set: new Set(ports) };
  }

  /** A group placed on `host` (told by the store, or assumed right after a decision). */
  setPlaced(host: string, d: GroupDemand): void {
    this.forget(d.uid);
    let i = this.hostIndex.get(host);
    if (i === undefined) {
      this.setHost({ name: host, labels: {}, allocatable: { cpu: 0, memoryGB: 0 }, ready: false });
      i = this.hostIndex.get(host)!;
    }
    this.placed.set(d.uid, { host: i, demand: d });
    this.usedCpu[i] += d.cpu;
    this.usedMem[i] += d.memoryGB;
    this.usedAddr[i] += 1;
    if (d.ports.length > 0) {
      const set = (this.ports[i] ??= new Set());
      for (const p of d.ports) set.add(p);
    }
    for (const k of this.keysOf(d)) {
      let s = this.index.get(k);
      if (!s) this.index.set(k, (s = new Set()));
      s.add(d.uid);
    }
  }

  /** A group is gone (deleted, or a decision whose write failed). */
  forget(uid: string): void {
    const p = this.placed.get(uid);
    if (!p) return;
    this.placed.delete(uid);
    this.usedCpu[p.host] -= p.demand.cpu;
    this.usedMem[p.host] -= p.demand.memoryGB;
    this.usedAddr[p.host] -= 1;
    for (const port of p.demand.ports) this.ports[p.host]?.delete(port);
    for (const k of this.keysOf(p.demand)) {
      const s = this.index.get(k);
      s?.delete(uid);
      if (s?.size === 0) this.index.delete(k);
    }
  }

  hostOf(uid: string): string | undefined {
    const p = this.placed.get(uid);
    return p && this.names[p.host];
  }

  /** Groups placed on a host (what failover moves when it is lost). */
  groupsOn(host: string): string[] {
    const i = this.hostIndex.get(host);
    return i === undefined ? [] : [...this.placed].filter(([, p]) => p.host === i).map(([uid]) => uid);
  }

  get hostCount(): number {
    return this.names.length;
  }

  // --- decisions ---

  /**
   * Where `d` should run, or why it cannot run anywhere now (as Kubernetes' FailedScheduling says it: how
   * many hosts, and what ruled them out). Does not change the cache: call setPlaced to assume the decision.
   */
  decide(d: GroupDemand): Decision {
    const n = this.names.length;
    const rules = d.rules ?? {};
    const allowedZones = d.zones.length > 0 ? new Set(d.zones.map((z) => this.zoneIndex.get(z) ?? -2)) : undefined;
    const affinity = rules.affinity ?? NONE;
    const antiAffinity = rules.antiAffinity ?? NONE;
    const required = affinity.length === 0 ? NO_MATCHES : affinity.filter((t) => t.required).map((t) => ({ t, m: this.match(d, t) }))
      // a group that is itself what its required affinity asks for may go anywhere while none exists yet
      // (the first of a set that must run together), as Kubernetes allows
      .filter(({ t, m }) => m.any || !selects(t, d));
    const forbidden = antiAffinity.length === 0 ? NO_MATCHES : antiAffinity.filter((t) => t.required).map((t) => ({ t, m: this.match(d, t) }));
    const preferred = affinity.length + antiAffinity.length === 0 ? NO_PREFERENCES
      : [...affinity.filter((t) => !t.required).map((t) => ({ t, m: this.match(d, t), sign: 1 })),
        ...antiAffinity.filter((t) => !t.required).map((t) => ({ t, m: this.match(d, t), sign: -1 }))];
    const hostLabels = rules.hostLabels ? Object.entries(rules.hostLabels) : [];
    const strategy = rules.strategy ?? this.strategy;

    // Required host affinity narrows the search to the hosts that have the groups it asks for.
    const narrowed = required.find(({ t }) => t.scope === 'Host');
    const candidates = narrowed ? [...narrowed.m.hosts].sort((a, b) => a - b) : undefined;
    const total = candidates ? candidates.length : n;
    const toFind = this.hostsToFind(total);
    const start = candidates ? 0 : this.nextStart % Math.max(1, n);
    const reasons = new Map<Filter, number>();
    let found = 0;
    let best = -1;
    let bestScore = -Infinity;
    let examined = 0;
    for (let k = 0; k < total && found < toFind; k++) {
      const i = candidates ? candidates[k] : (start + k) % n;
      examined = k + 1;
      const why = this.rejects(i, d, allowedZones, hostLabels, required, forbidden);
      if (why) {
        if (!this.gone[i]) reasons.set(why, (reasons.get(why) ?? 0) + 1);
        continue;
      }
      found++;
      const score = preferred.length === 0 ? this.resourceScore(i, d, strategy) : this.score(i, d, strategy, preferred);
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    if (!candidates && n > 0) this.nextStart = (start + examined) % n;
    if (best < 0) {
      const hosts = this.names.length - this.gone.subarray(0, this.names.length).reduce((a, g) => a + g, 0);
      const detail = [...reasons].sort((a, b) => b[1] - a[1]).map(([why, count]) => `${count} ${why}`).join(', ');
      return { unschedulable: `0/${hosts} hosts are available${detail ? `: ${detail}` : ''}.` };
    }
    const zone = this.zoneOf[best] >= 0 ? this.zones[this.zoneOf[best]] : undefined;
    return { host: this.names[best], ...(zone !== undefined && { zone }) };
  }

  private hostsToFind(total: number): number {
    if (total <= MIN_HOSTS_TO_FIND) return total;
    // kube-scheduler's adaptive share: 50% of a small cluster down to 5% of a very large one
    const pct = this.percentage ?? Math.max(5, 50 - total / 125);
    return Math.min(total, Math.max(MIN_HOSTS_TO_FIND, Math.floor((total * pct) / 100)));
  }

  private rejects(i: number, d: GroupDemand, zones: Set<number> | undefined, hostLabels: [string, string][],
    required: { t: AffinityTerm; m: TermMatch }[], forbidden: { t: AffinityTerm; m: TermMatch }[]): Filter | undefined {
    if (!this.ready[i]) return 'not ready';
    if (zones && !zones.has(this.zoneOf[i])) return 'not in the requested zones';
    for (let k = 0; k < hostLabels.length; k++) if (this.labels[i][hostLabels[k][0]] !== hostLabels[k][1]) return 'missing the requested host labels';
    if (this.allocCpu[i] - this.usedCpu[i] < d.cpu - 1e-9) return 'insufficient cpu';
    if (this.allocMem[i] - this.usedMem[i] < d.memoryGB - 1e-9) return 'insufficient memory';
    if (this.usedAddr[i] >= this.allocAddr[i]) return 'no free address';
    if (d.ports.length > 0) {
      const taken = this.ports[i];
      const held = this.held[i]?.set;
      for (let k = 0; k < d.ports.length; k++) if (taken?.has(d.ports[k]) || held?.has(d.ports[k])) return 'host port already in use';
    }
    for (let k = 0; k < required.length; k++) {
      const { t, m } = required[k];
      if (!(t.scope === 'Host' ? m.hosts.has(i) : m.zones.has(this.zoneOf[i]))) return "didn't match the group's affinity rules";
    }
    for (let k = 0; k < forbidden.length; k++) {
      const { t, m } = forbidden[k];
      if (t.scope === 'Host' ? m.hosts.has(i) : this.zoneOf[i] >= 0 && m.zones.has(this.zoneOf[i])) return "didn't match the group's anti-affinity rules";
    }
    return undefined;
  }

  /** 0..100 by resources once `d` is on host `i`: bin-pack, fuller is better; spread, emptier is. */
  private resourceScore(i: number, d: GroupDemand, strategy: Strategy): number {
    const cpu = this.allocCpu[i] > 0 ? (this.usedCpu[i] + d.cpu) / this.allocCpu[i] : 1;
    const mem = this.allocMem[i] > 0 ? (this.usedMem[i] + d.memoryGB) / this.allocMem[i] : 1;
    const fullness = (cpu + mem) * 50;
    return strategy === 'BinPack' ? fullness : 100 - fullness;
  }

  /** The resource score plus up to ±100 from preferred (anti-)affinity. */
  private score(i: number, d: GroupDemand, strategy: Strategy, preferred: { t: AffinityTerm; m: TermMatch; sign: number }[]): number {
    let score = this.resourceScore(i, d, strategy);
    {
      let sum = 0;
      let weights = 0;
      for (const { t, m, sign } of preferred) {
        const w = Math.min(100, Math.max(1, t.weight ?? 1));
        weights += w;
        if (t.scope === 'Host' ? m.hosts.has(i) : this.zoneOf[i] >= 0 && m.zones.has(this.zoneOf[i])) sum += sign * w;
      }
      score += (sum / weights) * 100;
    }
    return score;
  }

  /** Where the groups a term selects run: only groups of the same subscription count, never another tenant's. */
  private match(d: GroupDemand, t: AffinityTerm): TermMatch {
    const hosts = new Set<number>();
    const zones = new Set<number>();
    let uids: Iterable<string> | undefined;
    const tags = Object.entries(t.selector.tags ?? {});
    const names = t.selector.names ?? [];
    if (names.length > 0) {
      uids = names.flatMap((name) => [...(this.index.get(`${d.subscriptionId}\0\0${name}`) ?? [])]);
    } else if (tags.length > 0) {
      // start from the smallest of the tags' indexes, then check the rest of the tags group by group
      let smallest: Set<string> | undefined;
      for (const [k, v] of tags) {
        const s = this.index.get(`${d.subscriptionId}\0${k}=${v}`);
        if (!s) return { hosts, zones, any: false };
        if (!smallest || s.size < smallest.size) smallest = s;
      }
      uids = smallest;
    }
    for (const uid of uids ?? []) {
      if (uid === d.uid) continue;
      const p = this.placed.get(uid);
      if (!p || p.demand.subscriptionId !== d.subscriptionId) continue;
      if (tags.some(([k, v]) => p.demand.tags[k] !== v)) continue;
      hosts.add(p.host);
      if (this.zoneOf[p.host] >= 0) zones.add(this.zoneOf[p.host]);
    }
    return { hosts, zones, any: hosts.size > 0 };
  }

  private keysOf(d: GroupDemand): string[] {
    return [`${d.subscriptionId}\0\0${d.name}`, ...Object.entries(d.tags).map(([k, v]) => `${d.subscriptionId}\0${k}=${v}`)];
  }

  private zoneId(zone: string): number {
    let z = this.zoneIndex.get(zone);
    if (z === undefined) {
      z = this.zones.length;
      this.zones.push(zone);
      this.zoneIndex.set(zone, z);
    }
    return z;
  }
}

/** Whether a term's selector picks group `d` itself. */
function selects(t: AffinityTerm, d: GroupDemand): boolean {
  if (t.selector.names?.length) return t.selector.names.includes(d.name);
  const tags = Object.entries(t.selector.tags ?? {});
  return tags.length > 0 && tags.every(([k, v]) => d.tags[k] === v);
}
