// The overlay's firewall: VXLAN accepted from peers only, the host's own services out of the overlay's reach, sandbox traffic through the overlay never NATed.
import { execCommand } from '../../lib/spawner.js';
import { execText, ownComment, restore } from './hostports.js';
import { nft } from './isolation.js';

export interface OverlayFirewallShape {
  device: string;
  bridge: string;
  underlayAddress: string;
  port: number;
}

/** The overlay's nftables table (isolation.ts's are `berth-<bridge>`). */
export const overlayTable = (device: string) => `berth-ov-${device}`;
const comment = (device: string) => `berth-overlay:${device}`;

/**
 * Makes the overlay's table again with `peers` (their underlay addresses) in one atomic `nft -f`: nothing
 * is ever added twice, and no packet sees a half-made table.
 */
export function applyOverlayTable(shape: OverlayFirewallShape, peers: string[]): Promise<void> {
  const t = overlayTable(shape.device);
  const dev = JSON.stringify(shape.device);
  return nft([
    `add table inet ${t}`,
    `delete table inet ${t}`,
    `add table inet ${t}`,
    `add set inet ${t} peers { type ipv4_addr; }`,
    ...(peers.length ? [`add element inet ${t} peers { ${peers.join(', ')} }`] : []),
    `add chain inet ${t} input { type filter hook input priority filter; policy accept; }`,
    // VXLAN carries no authentication: whoever reaches the port could put any packet on the overlay, so only
    // the cluster's hosts may (VXLAN on other addresses of the host is not ours)
    `add rule inet ${t} input ip daddr ${shape.underlayAddress} udp dport ${shape.port} ip saddr != @peers drop`,
    // what arrives through the overlay for the host itself (a remote sandbox trying this host's services at its
    // overlay addresses, or at its underlay address, where the sending host routes its sandboxes through the
    // overlay): only replies to the host's own connections; the rest is refused at once, as a closed port is
    `add rule inet ${t} input iifname ${dev} ct state established,related accept`,
    `add rule inet ${t} input iifname ${dev} meta l4proto tcp reject with tcp reset`,
    `add rule inet ${t} input iifname ${dev} reject with icmpx type admin-prohibited`,
    // the overlay leads to the host's sandboxes and nowhere else (never through this host to the world)
    `add chain inet ${t} forward { type filter hook forward priority filter; policy accept; }`,
    `add rule inet ${t} forward iifname ${dev} oifname != ${JSON.stringify(shape.bridge)} drop`,
  ]);
}

/** The peers the overlay's table holds (a restarted process keeps accepting them until it is given its peers); undefined without a table. */
export async function readOverlayTablePeers(device: string): Promise<string[] | undefined> {
  const r = await execCommand('nft', ['-j', 'list', 'set', 'inet', overlayTable(device), 'peers'], { timeoutMs: 30_000 });
  if (r.code !== 0 || r.error) return undefined;
  const objects = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
  return (objects.find((o) => o.set)?.set?.elem ?? []).filter((e): e is string => typeof e === 'string');
}

/**
 * iptables rules the overlay needs of the host, added when missing: sandbox traffic leaving through the
 * overlay is never masqueraded (the receiving group sees the sender's own address; the bridge network's
 * masquerade applies to the rest), and a host whose FORWARD policy is DROP still forwards from the
 * overlay to its sandboxes (isolation.ts and the overlay's table decide what may).
 */
export async function ensureOverlayForwarding(shape: OverlayFirewallShape): Promise<void> {
  const c = comment(shape.device);
  const nat = (await execText('iptables-save', ['-t', 'nat'])).split('\n');
  const filter = (await execText('iptables-save', ['-t', 'filter'])).split('\n');
  const has = (lines: string[], chain: string, frag: string) => lines.some((l) => l.startsWith(`-A ${chain} `) && ownComment(l, c) && l.includes(frag));
  const parts: string[] = [];
  // first in POSTROUTING: before the masquerade of the bridge network (hostports.ts), which appends its jump
  if (!has(nat, 'POSTROUTING', `-o ${shape.device} `)) parts.push('*nat', `-I POSTROUTING 1 -o ${shape.device} -m comment --comment "${c}" -j ACCEPT`, 'COMMIT');
  if (!has(filter, 'FORWARD', `-i ${shape.device} -o ${shape.bridge} `)) parts.push('*filter', `-I FORWARD 1 -i ${shape.device} -o ${shape.bridge} -m comment --comment "${c}" -j ACCEPT`, 'COMMIT');
  if (parts.length) await restore([...parts, ''].join('\n'));
}

/** Removes the overlay's table and iptables rules; idempotent. */
export async function removeOverlayFirewall(device: string): Promise<void> {
  const t = overlayTable(device);
  await nft([`add table inet ${t}`, `delete table inet ${t}`]);
  const c = comment(device);
  const parts: string[] = [];
  for (const table of ['nat', 'filter']) {
    const mine = (await execText('iptables-save', ['-t', table])).split('\n').filter((l) => l.startsWith('-A ') && ownComment(l, c));
    if (mine.length) parts.push(`*${table}`, ...mine.map((l) => `-D${l.slice(2)}`), 'COMMIT');
  }
  if (parts.length) await restore([...parts, ''].join('\n'));
}
