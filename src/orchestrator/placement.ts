// Where an NGroup's members go: spread evenly over its zones and, within each zone, over its fault domains;
// which members go first when it shrinks.
//
// On one host zones and fault domains are labels (the member's tags). On a berth cluster a zone is the
// hosts' zone and a fault domain a set of hosts, reached through the placement extension of the
// cluster issue (`properties.placement`): that part waits for the cluster.
import type { Member } from './members.js';

export interface Slot {
  /** undefined: the NGroup has no zones. */
  zone?: string;
  faultDomain: number;
}

export interface Layout {
  zones: string[];
  faultDomainCount: number;
}

const slotKey = (s: Slot) => `${s.zone ?? ''}\0${s.faultDomain}`;

/** Counts per zone and per (zone, fault domain) of the members; a member placed outside the layout counts nowhere. */
function census(layout: Layout, members: Pick<Member, 'zone' | 'faultDomain'>[]) {
  const zones = layout.zones.length > 0 ? layout.zones : [undefined];
  const perZone = new Map<string | undefined, number>(zones.map((z) => [z, 0]));
  const perSlot = new Map<string, number>();
  for (const m of members) {
    const zone = layout.zones.length > 0 ? m.zone : undefined;
    if (!perZone.has(zone)) continue;
    perZone.set(zone, perZone.get(zone)! + 1);
    const fd = m.faultDomain ?? 0;
    if (fd < 0 || fd >= layout.faultDomainCount) continue;
    const key = slotKey({ zone, faultDomain: fd });
    perSlot.set(key, (perSlot.get(key) ?? 0) + 1);
  }
  return { zones, perZone, perSlot };
}

/**
 * Slots for `count` new members: each goes to the zone with the fewest members (the first such, in
 * the NGroup's order), and there to the fault domain with the fewest. `prefer` puts them in one zone
 * when it is among the least filled (a rolling update's batch stays within a zone).
 */
export function placeNew(layout: Layout, members: Pick<Member, 'zone' | 'faultDomain'>[], count: number, prefer?: string): Slot[] {
  const placed = [...members];
  const out: Slot[] = [];
  for (let i = 0; i < count; i++) {
    const { zones, perZone, perSlot } = census(layout, placed);
    const fewest = Math.min(...zones.map((z) => perZone.get(z)!));
    const zone = prefer !== undefined && perZone.get(prefer) === fewest ? prefer : zones.find((z) => perZone.get(z) === fewest);
    let faultDomain = 0;
    for (let fd = 1; fd < layout.faultDomainCount; fd++)
      if ((perSlot.get(slotKey({ zone, faultDomain: fd })) ?? 0) < (perSlot.get(slotKey({ zone, faultDomain })) ?? 0)) faultDomain = fd;
    const slot = { ...(zone !== undefined && { zone }), faultDomain };
    out.push(slot);
    placed.push(slot);
  }
  return out;
}

/** How bad a member is to keep: failed, then pending, then stopped, then healthy. */
const keepRank: Record<Member['health'], number> = { failed: 0, pending: 1, stopped: 2, healthy: 3, deleting: 4 };

/**
 * `count` of `candidates` to remove, leaving `members` (the candidates among them) as evenly spread as
 * it can: the least healthy first, then from the fullest zone and, there, the fullest fault domain,
 * then the newest (by name, which carries no age: the order is only stable).
 */
export function chooseVictims(layout: Layout, members: Member[], candidates: Member[], count: number): Member[] {
  const left = [...members];
  const pool = [...candidates];
  const out: Member[] = [];
  for (let i = 0; i < count && pool.length > 0; i++) {
    const { perZone, perSlot } = census(layout, left);
    const zoneLoad = (m: Member) => perZone.get(layout.zones.length > 0 ? m.zone : undefined) ?? Infinity;
    const slotLoad = (m: Member) => perSlot.get(slotKey({ zone: layout.zones.length > 0 ? m.zone : undefined, faultDomain: m.faultDomain ?? 0 })) ?? Infinity;
    pool.sort((a, b) => keepRank[a.health] - keepRank[b.health] || zoneLoad(b) - zoneLoad(a) || slotLoad(b) - slotLoad(a) || b.name.localeCompare(a.name));
    const victim = pool.shift()!;
    out.push(victim);
    left.splice(left.indexOf(victim), 1);
  }
  return out;
}

/** The zone holding most of `members` (a rolling update's next batch is taken there). */
export function fullestZone(layout: Layout, members: Pick<Member, 'zone' | 'faultDomain'>[]): string | undefined {
  if (layout.zones.length === 0) return undefined;
  const { perZone } = census(layout, members);
  return layout.zones.reduce((best, z) => (perZone.get(z)! > perZone.get(best)! ? z : best), layout.zones[0]);
}
