// Which host ports the host's own sockets hold in this network namespace (berth-spawnd's @listening: the kernel's sock_diag).
import { BerthError, Codes } from '../../lib/errors.js';
import { execCommand } from '../../lib/spawner.js';
import type { PublishedPort } from '../types.js';

interface HostSocket {
  protocol: 'TCP' | 'UDP';
  /** As inet_ntop writes it: "127.0.0.1", "::", "::ffff:127.0.0.1". */
  address: string;
  port: number;
}

/** TCP listeners and unconnected UDP sockets: what would receive new traffic to their port. */
async function hostSockets(): Promise<HostSocket[]> {
  const r = await execCommand('@listening', [], { timeoutMs: 10_000 });
  if (r.code !== 0 || r.error) throw new BerthError(Codes.NetworkError, `listing the host's sockets: ${r.stderr.trim() || r.error || `exit ${r.code}`}`, 500);
  return r.stdout.split('\n').filter(Boolean).map((line) => {
    const [protocol, address, port] = line.split(' ');
    return { protocol: protocol === 'udp' ? 'UDP' : 'TCP', address, port: Number(port) };
  });
}

/**
 * Whether traffic to `address` (IPv4; '0.0.0.0' = every address of the host) would reach a socket
 * bound to `bound`: the same address, a wildcard (an IPv6 one may be dual-stack), or its IPv4-mapped form.
 */
function reaches(address: string, bound: string): boolean {
  if (bound === '0.0.0.0' || bound === '::') return true;
  if (address === '0.0.0.0') return !bound.includes(':') || bound.startsWith('::ffff:');
  return bound === address || bound === `::ffff:${address}`;
}

/**
 * The ports of `ports` that a socket of the host listens on at `address` (or at a wildcard): a
 * DNAT for them would silently take the traffic away from that socket.
 */
export async function portsListenedOn(address: string, ports: PublishedPort[]): Promise<PublishedPort[]> {
  if (ports.length === 0) return [];
  const sockets = await hostSockets();
  return ports.filter((p) => sockets.some((s) => s.protocol === p.protocol && s.port === p.port && reaches(address, s.address)));
}

/** Every port a socket of the host listens on at `address` (or at a wildcard); a port may repeat. */
export async function portsHeldAt(address: string): Promise<PublishedPort[]> {
  return (await hostSockets()).filter((s) => reaches(address, s.address)).map((s) => ({ protocol: s.protocol, port: s.port }));
}
