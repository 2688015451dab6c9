// What the overlay's kernel state must be (device, per-peer routes, neighbours, FDB entries, one rule), read from `ip -j`/`bridge -j`, and the commands that converge it.
import { isIPv4 } from 'node:net';
import { BerthError, Codes } from '../../lib/errors.js';
import { cidrsOverlap, cidrWithin, formatCidr, numberToIp, parseCidr, type Cidr } from '../../lib/ipv4.js';

/** Routes the overlay makes carry this protocol number (`ip route … proto 213`): a restart finds its own, and only its own. */
export const ROUTE_PROTO = 213;

/** A host of the cluster as the overlay needs it. */
export interface OverlayPeer {
  /** For messages only. */
  name: string;
  /** Where its VXLAN packets go (its underlay address). */
  underlayAddress: string;
  /** Its sandboxes' subnet, inside the cluster CIDR. */
  subnet: string;
  /** Its VXLAN device's MAC, as the peer published it (Overlay.setup's `vtepMac`). */
  vtepMac: string;
}

/** What the plan needs of the overlay's options. */
export interface OverlayShape {
  device: string;
  bridge: string;
  underlayAddress: string;
  localSubnet: Cidr;
  clusterCidr: Cidr;
  routeTable: number;
  rulePriority: number;
}

/** The kernel's overlay entries, as `ip -j`/`bridge -j` print them (only those the plan may touch). */
export interface OverlayKernel {
  /** Routes of protocol ROUTE_PROTO in any table. */
  routes: { table: string; type: string; dst: string; gateway?: string; dev?: string; onlink: boolean }[];
  /** Permanent neighbours on the device. */
  neighbours: { dst: string; lladdr: string }[];
  /** VXLAN FDB entries of the device with a remote. */
  fdb: { mac: string; dst: string }[];
  /** Every policy rule. */
  rules: { priority: number; iif?: string; table: string }[];
}

/** Commands of one convergence: `bridge -batch` lines, then `ip -batch` lines. */
export interface OverlayCommands {
  bridge: string[];
  ip: string[];
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The device's MAC, derived from the host's underlay address (02:be + its four octets): locally administered,
 * unicast, unique on the underlay, and the same each time the device is made again (after a reboot, or a
 * change that needs a new device), so what peers hold for this host stays right without being published again.
 */
export const vtepMacFor = (underlayAddress: string): string =>
  ['02', 'be', ...underlayAddress.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');

/** A host's VTEP address: the first address of its subnet (flannel's choice), held by its device as a /32. */
export const vtepAddressOf = (subnet: Cidr): string => numberToIp(subnet.base);

const invalid = (message: string, target: string) => new BerthError(Codes.NetworkError, message, 400, target);

/** The peers checked and normalised (this host, when listed, left out); throws before anything is changed. */
export function checkPeers(shape: OverlayShape, peers: OverlayPeer[]): (OverlayPeer & { cidr: Cidr })[] {
  const out: (OverlayPeer & { cidr: Cidr })[] = [];
  const seen = { address: new Set<string>(), mac: new Set<string>() };
  peers.forEach((p, i) => {
    const at = (field: string) => `peers[${i}].${field}`;
    if (!p || typeof p.name !== 'string' || !p.name) throw invalid(`peer ${i} has no name`, at('name'));
    if (typeof p.underlayAddress !== 'string' || !isIPv4(p.underlayAddress)) throw invalid(`peer ${p.name}: underlay address "${p.underlayAddress}" is not an IPv4 address`, at('underlayAddress'));
    const cidr = typeof p.subnet === 'string' ? parseCidr(p.subnet) : undefined;
    if (!cidr || formatCidr(cidr) !== p.subnet) throw invalid(`peer ${p.name}: subnet "${p.subnet}" is not a CIDR block`, at('subnet'));
    if (p.underlayAddress === shape.underlayAddress) {
      // this host, as the control plane lists every Ready host: nothing to program, but it must agree
      if (formatCidr(cidr) !== formatCidr(shape.localSubnet)) throw invalid(`peer ${p.name} has this host's underlay address but subnet ${p.subnet}, not ${formatCidr(shape.localSubnet)}`, at('subnet'));
      return;
    }
    if (!cidrWithin(cidr, shape.clusterCidr)) throw invalid(`peer ${p.name}: subnet ${p.subnet} is outside the cluster CIDR ${formatCidr(shape.clusterCidr)}`, at('subnet'));
    if (cidrsOverlap(cidr, shape.localSubnet)) throw invalid(`peer ${p.name}: subnet ${p.subnet} overlaps this host's ${formatCidr(shape.localSubnet)}`, at('subnet'));
    const clash = out.find((q) => cidrsOverlap(q.cidr, cidr));
    if (clash) throw invalid(`peers ${clash.name} and ${p.name} have overlapping subnets (${clash.subnet}, ${p.subnet})`, at('subnet'));
    const mac = typeof p.vtepMac === 'string' ? p.vtepMac.toLowerCase() : '';
    // a multicast (odd first octet) or zero MAC would flood or match nothing
    if (!MAC_RE.test(mac) || parseInt(mac.slice(0, 2), 16) % 2 === 1 || mac === '00:00:00:00:00:00') throw invalid(`peer ${p.name}: VTEP MAC "${p.vtepMac}" is not a unicast MAC address`, at('vtepMac'));
    if (seen.address.has(p.underlayAddress)) throw invalid(`two peers have the underlay address ${p.underlayAddress}`, at('underlayAddress'));
    if (seen.mac.has(mac)) throw invalid(`two peers have the VTEP MAC ${mac}`, at('vtepMac'));
    seen.address.add(p.underlayAddress);
    seen.mac.add(mac);
    out.push({ name: p.name, underlayAddress: p.underlayAddress, subnet: p.subnet, vtepMac: mac, cidr });
  });
  return out;
}

type Route = OverlayKernel['routes'][number];
const routeKey = (r: { table: string; dst: string }) => `${r.table} ${r.dst}`;

/** The routes the overlay wants: per peer, its subnet and (for this host's sandboxes alone) its underlay address, both through its VTEP; the rest of the cluster CIDR unreachable. */
function desiredRoutes(shape: OverlayShape, peers: (OverlayPeer & { cidr: Cidr })[]): Route[] {
  const out: Route[] = [{ table: 'main', type: 'unreachable', dst: formatCidr(shape.clusterCidr), onlink: false }];
  for (const p of peers) {
    const via = { type: 'unicast', gateway: vtepAddressOf(p.cidr), dev: shape.device, onlink: true };
    out.push({ table: 'main', dst: p.subnet, ...via }, { table: String(shape.routeTable), dst: `${p.underlayAddress}/32`, ...via });
  }
  return out;
}

const sameRoute = (a: Route, b: Route) => a.type === b.type && a.gateway === b.gateway && a.dev === b.dev && a.onlink === b.onlink;

function routeCommand(verb: 'replace' | 'del', r: Route): string {
  const type = r.type === 'unicast' ? '' : `${r.type} `;
  const via = verb === 'replace' && r.gateway ? ` via ${r.gateway} dev ${r.dev}${r.onlink ? ' onlink' : ''}` : '';
  return `route ${verb} ${type}${r.dst}${via} table ${r.table} proto ${ROUTE_PROTO}`;
}

/**
 * The commands that take the kernel from `actual` to what `peers` need: what is missing is added, what
 * changed is replaced, what the overlay made and no peer needs any more is removed; nothing else is touched.
 * FDB entries go first (a route never points at a VTEP the device cannot reach yet), then neighbours,
 * routes and the rule.
 */
export function planPeers(shape: OverlayShape, peers: (OverlayPeer & { cidr: Cidr })[], actual: OverlayKernel): OverlayCommands {
  const bridge: string[] = [];
  const ip: string[] = [];
  const dev = shape.device;

  const fdbWanted = new Map(peers.map((p) => [p.vtepMac, p.underlayAddress]));
  const fdbHas = new Map<string, string[]>();
  for (const e of actual.fdb) fdbHas.set(e.mac, [...(fdbHas.get(e.mac) ?? []), e.dst]);
  for (const [mac, dsts] of fdbHas) for (const dst of dsts) if (fdbWanted.get(mac) !== dst) bridge.push(`fdb del ${mac} dev ${dev} dst ${dst} self`);
  // after the deletions: an entry left with no remote is gone, and `replace` makes it again
  for (const [mac, dst] of fdbWanted) if (!fdbHas.get(mac)?.includes(dst)) bridge.push(`fdb replace ${mac} dev ${dev} dst ${dst} self permanent`);

  const neighWanted = new Map(peers.map((p) => [vtepAddressOf(p.cidr), p.vtepMac]));
  const neighHas = new Map(actual.neighbours.map((n) => [n.dst, n.lladdr.toLowerCase()]));
  for (const [dst, mac] of neighWanted) if (neighHas.get(dst) !== mac) ip.push(`neigh replace ${dst} lladdr ${mac} dev ${dev} nud permanent`);

  const routesWanted = new Map(desiredRoutes(shape, peers).map((r) => [routeKey(r), r]));
  const routesHas = new Map(actual.routes.filter((r) => owned(shape, r)).map((r) => [routeKey(r), r]));
  for (const [key, r] of routesWanted) {
    const has = routesHas.get(key);
    if (!has || !sameRoute(has, r)) ip.push(routeCommand('replace', r));
  }
  for (const [key, r] of routesHas) if (!routesWanted.has(key)) ip.push(routeCommand('del', r));
  for (const dst of neighHas.keys()) if (!neighWanted.has(dst)) ip.push(`neigh del ${dst} dev ${dev}`);

  const ours = actual.rules.filter((r) => ownedRule(shape, r));
  const rightRule = ours.find((r) => r.iif === shape.bridge);
  for (const r of ours) if (r !== rightRule) ip.push(ruleDel(r));
  if (!rightRule) ip.push(`rule add iif ${shape.bridge} lookup ${shape.routeTable} pref ${shape.rulePriority}`);
  return { bridge, ip };
}

/** A route of the overlay's protocol that is this overlay's: through its device, in its table, or the cluster CIDR's unreachable route. */
const owned = (shape: OverlayShape, r: Route) => r.dev === shape.device || r.table === String(shape.routeTable) || (r.type === 'unreachable' && r.table === 'main');
const ownedRule = (shape: OverlayShape, r: OverlayKernel['rules'][number]) => r.priority === shape.rulePriority && r.table === String(shape.routeTable);
const ruleDel = (r: OverlayKernel['rules'][number]) => `rule del pref ${r.priority}${r.iif ? ` iif ${r.iif}` : ''} lookup ${r.table}`;

/** What removes the overlay's routes and rule that outlive its device. */
export const teardownCommands = (shape: OverlayShape, left: OverlayKernel): string[] => [
  ...left.routes.filter((r) => owned(shape, r)).map((r) => routeCommand('del', r)),
  ...left.rules.filter((r) => ownedRule(shape, r)).map(ruleDel),
];

/** The `ip -j -d` lines of `route show table all proto …`, `neigh show dev …` and `rule show`, and `bridge -j fdb show dev …`, as the plan reads them. */
export function parseKernel(device: string, routesJson: string, neighJson: string, rulesJson: string, fdbJson: string): OverlayKernel {
  const routes = (JSON.parse(routesJson) as Record<string, unknown>[]).map((r) => ({
    table: String(r.table ?? 'main'),
    type: String(r.type ?? 'unicast'),
    dst: String(r.dst).includes('/') ? String(r.dst) : `${r.dst}/32`,
    ...(typeof r.gateway === 'string' && { gateway: r.gateway }),
    ...(typeof r.dev === 'string' && { dev: r.dev }),
    onlink: Array.isArray(r.flags) && r.flags.includes('onlink'),
  }));
  const neighbours = (JSON.parse(neighJson) as Record<string, unknown>[])
    .filter((n) => Array.isArray(n.state) && n.state.includes('PERMANENT') && typeof n.lladdr === 'string')
    .map((n) => ({ dst: String(n.dst), lladdr: String(n.lladdr) }));
  const rules = (JSON.parse(rulesJson) as Record<string, unknown>[]).map((r) => ({
    priority: Number(r.priority),
    ...(typeof r.iif === 'string' && { iif: r.iif }),
    table: String(r.table),
  }));
  // entries without a remote are the device's own addresses (multicast lists), not the overlay's
  const fdb = (JSON.parse(fdbJson) as Record<string, unknown>[])
    .filter((e) => typeof e.dst === 'string' && (e.ifname === undefined || e.ifname === device))
    .map((e) => ({ mac: String(e.mac).toLowerCase(), dst: String(e.dst) }));
  return { routes, neighbours, fdb, rules };
}
