// Which host ports the host's own sockets hold, read from /proc/net/{tcp,tcp6,udp,udp6} of this network namespace.
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import type { PublishedPort } from '../types.js';

/** TCP_LISTEN in /proc/net/tcp's `st` column; TCP_CLOSE (07) is what an unconnected UDP socket shows. */
const TCP_LISTEN = '0A';

interface HostSocket {
  /** Dotted IPv4, or IPv6 as 32 lower-case hex digits in network order. */
  address: string;
  port: number;
}

function decodeAddress(hex: string): string {
  // the kernel prints each 32-bit word in host byte order
  const word = (w: string) => (endianness() === 'LE' ? w.match(/../g)!.reverse().join('') : w);
  if (hex.length === 8) return word(hex).match(/../g)!.map((b) => parseInt(b, 16)).join('.');
  return hex.match(/.{8}/g)!.map(word).join('').toLowerCase();
}

/**
 * Sockets that would receive new traffic to a port: TCP listeners, and UDP sockets bound but not
 * connected (a connected one only gets its peer's replies, which conntrack never sends through DNAT).
 */
function hostSockets(protocol: 'TCP' | 'UDP', procNet: string): HostSocket[] {
  const out: HostSocket[] = [];
  for (const file of protocol === 'TCP' ? ['tcp', 'tcp6'] : ['udp', 'udp6']) {
    let text: string;
    try {
      text = readFileSync(`${procNet}/${file}`, 'latin1');
    } catch {
      continue; // no IPv6 in this kernel
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const [local, remote, state] = [cols[1], cols[2], cols[3]];
      if (protocol === 'TCP' ? state !== TCP_LISTEN : !/^0+:0000$/.test(remote)) continue;
      const [addr, port] = local.split(':');
      out.push({ address: decodeAddress(addr), port: parseInt(port, 16) });
    }
  }
  return out;
}

const V6_ANY = '0'.repeat(32);
const V4_MAPPED_PREFIX = '00000000000000000000ffff';
const v4Mapped = (ipv4: string) => V4_MAPPED_PREFIX + ipv4.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join('');

/**
 * Whether traffic to `address` (IPv4; '0.0.0.0' = every address of the host) would reach a socket
 * bound to `bound`: the same address, a wildcard, or (for a dual-stack IPv6 socket) its mapped form.
 */
function reaches(address: string, bound: string): boolean {
  if (bound === '0.0.0.0' || bound === V6_ANY) return true;
  if (address === '0.0.0.0') return !bound.includes('.') ? bound.startsWith(V4_MAPPED_PREFIX) : true;
  return bound === address || bound === v4Mapped(address);
}

/**
 * The ports of `ports` that a socket of the host listens on at `address` (or at a wildcard): a
 * DNAT for them would silently take the traffic away from that socket.
 */
export function portsListenedOn(address: string, ports: PublishedPort[], procNet = '/proc/net'): PublishedPort[] {
  const taken: PublishedPort[] = [];
  for (const protocol of ['TCP', 'UDP'] as const) {
    const wanted = ports.filter((p) => p.protocol === protocol);
    if (wanted.length === 0) continue;
    const sockets = hostSockets(protocol, procNet);
    for (const p of wanted) if (sockets.some((s) => s.port === p.port && reaches(address, s.address))) taken.push(p);
  }
  return taken;
}
