// The control plane's side of the cluster overlay: its settings (the same on every replica), a subnet of the cluster CIDR for each host that registers (claimed in the transaction that writes the host's record), and the overlay's peers as hosts program them.
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { OverlayAssignment, OverlayPeers } from '../../agent/link.js';
import { BerthError, Codes } from '../../lib/errors.js';
import { formatCidr, parseCidr } from '../../lib/ipv4.js';
import type { Compare, Op, Store } from '../../store/store.js';
import { CLUSTER_OVERLAY_KEY, subnetKey, SUBNETS_PREFIX } from '../keys.js';

/** A cluster's overlay: `berth server --cluster-cidr`, `--host-subnet-prefix` (and the VXLAN network's id and port). */
export interface OverlaySettings {
  clusterCidr: string;
  /** The prefix length of each host's subnet. */
  hostPrefix: number;
  vni: number;
  port: number;
}

/**
 * /24 per host out of a /16: 256 hosts of 253 groups each (a host's CPU and memory run out well before), the split
 * flannel and Kubernetes' node CIDRs default to, and one subnet reads as one host in a routing table.
 */
export const DEFAULT_OVERLAY: OverlaySettings = { clusterCidr: '10.252.0.0/16', hostPrefix: 24, vni: 1, port: 4789 };

/** Who a subnet is given to. */
export interface SubnetHolder {
  host: string;
}

/** Subnets looked at for a free one: a /8 cut into /28s is 1 << 20 of them; more is a setting no one means. */
const MAX_SUBNETS = 1 << 20;

const invalid = (message: string, target: string) => new BerthError(Codes.InvalidRequestContent, message, 400, target);

/** Checks the settings (each error names the flag), normalising the CIDR. */
export function checkOverlaySettings(s: OverlaySettings): OverlaySettings {
  const cidr = parseCidr(s.clusterCidr);
  if (!cidr) throw invalid(`--cluster-cidr "${s.clusterCidr}" is not an IPv4 CIDR block`, 'clusterCidr');
  if (!Number.isInteger(s.hostPrefix) || s.hostPrefix < cidr.bits || s.hostPrefix > 28 || s.hostPrefix - cidr.bits > 20)
    throw invalid(`--host-subnet-prefix ${s.hostPrefix} must be ${cidr.bits}..28 (a part of ${formatCidr(cidr)} of at least 16 addresses) and cut it into at most ${MAX_SUBNETS} subnets`, 'hostPrefix');
  if (!Number.isInteger(s.vni) || s.vni < 1 || s.vni > 0xffffff) throw invalid(`VNI ${s.vni} is not in 1..16777215`, 'vni');
  if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw invalid(`VXLAN port ${s.port} is not a UDP port`, 'port');
  return { ...s, clusterCidr: formatCidr(cidr) };
}

/**
 * The cluster's settings: the first replica's are written, every later one must be started with the same (hosts'
 * subnets were cut from them and their VXLAN devices made with them: they cannot change under a running cluster).
 */
export async function ensureOverlaySettings(store: Store, wanted: OverlaySettings): Promise<OverlaySettings> {
  const settings = checkOverlaySettings(wanted);
  await store.txn({ if: [{ key: CLUSTER_OVERLAY_KEY, exists: false }], then: [{ put: CLUSTER_OVERLAY_KEY, value: settings }] });
  const stored = (await store.get<OverlaySettings>(CLUSTER_OVERLAY_KEY))!.value;
  const same = stored.clusterCidr === settings.clusterCidr && stored.hostPrefix === settings.hostPrefix && stored.vni === settings.vni && stored.port === settings.port;
  if (!same) throw invalid(`this cluster's overlay is ${JSON.stringify(stored)}: a replica cannot start with ${JSON.stringify(settings)}`, 'clusterCidr');
  return stored;
}

/** The first subnet of the cluster CIDR that is in `taken` no more. */
function freeSubnet(s: OverlaySettings, taken: Set<string>): string {
  const cidr = parseCidr(s.clusterCidr)!;
  const count = 2 ** (s.hostPrefix - cidr.bits);
  const size = 2 ** (32 - s.hostPrefix);
  for (let i = 0; i < count; i++) {
    const subnet = formatCidr({ base: cidr.base + i * size, bits: s.hostPrefix });
    if (!taken.has(subnet)) return subnet;
  }
  throw new BerthError(Codes.ClusterSubnetsExhausted, `Every /${s.hostPrefix} subnet of the cluster CIDR ${s.clusterCidr} is given to a host (${count}): no host can join until the cluster has a larger CIDR.`, 409);
}

/**
 * What writes a host's record keeps of its subnet: the one the record has, else the one the store gives it (its
 * record was lost), else a free one claimed with the record. `compares` and `ops` go into the record's transaction:
 * two replicas never give one subnet to two hosts.
 */
export async function hostSubnet(store: Store, s: OverlaySettings, host: string, old: { subnet?: string } | undefined): Promise<{ subnet: string; compares: Compare[]; ops: Op[] }> {
  if (old?.subnet) return { subnet: old.subnet, compares: [], ops: [] };
  const held = await store.list<SubnetHolder>(SUBNETS_PREFIX);
  const own = held.find((kv) => kv.value.host === host);
  if (own) return { subnet: own.key.slice(SUBNETS_PREFIX.length), compares: [{ key: own.key, modRevision: own.modRevision }], ops: [] };
  const subnet = freeSubnet(s, new Set(held.map((kv) => kv.key.slice(SUBNETS_PREFIX.length))));
  return { subnet, compares: [{ key: subnetKey(subnet), modRevision: 0 }], ops: [{ put: subnetKey(subnet), value: { host } satisfies SubnetHolder }] };
}

/** What a host is told of the overlay with its registration's answer. */
export const assignmentOf = (s: OverlaySettings, subnet: string): OverlayAssignment => ({ clusterCidr: s.clusterCidr, subnet, vni: s.vni, port: s.port });

/**
 * The overlay's peers: every registered host whose overlay is up, Ready or not. A NotReady host keeps its routes
 * (its subnet stays its own, so they never lead elsewhere): a blip shorter than the lease, or longer, breaks no
 * connection, and a host that is gone for good only has packets for its subnet dropped, as they would be anyway.
 */
export function overlayPeers(hosts: { name: string; address: string; subnet?: string; overlay?: { vtepMac: string } }[]): OverlayPeers {
  const peers = hosts
    .filter((h) => h.subnet && h.overlay?.vtepMac && isIPv4(h.address))
    .map((h) => ({ name: h.name, underlayAddress: h.address, subnet: h.subnet!, vtepMac: h.overlay!.vtepMac }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { version: createHash('sha256').update(JSON.stringify(peers)).digest('hex').slice(0, 16), peers };
}
