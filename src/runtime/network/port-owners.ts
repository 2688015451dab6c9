// Who holds each host port: a manager's sandboxes (known from their state, taken before publishing) and the host itself.
import { BerthError, Codes } from '../../lib/errors.js';
import type { PublishedPort } from '../types.js';
import { portsHeldAt, portsListenedOn } from './listeners.js';

export interface PortOwnersOptions {
  /** The host address ports are published on ('0.0.0.0': every local address). */
  address: string;
  /** Ports the host keeps for itself (berth's API and DNS): never published, whatever listens. */
  reserved?: () => PublishedPort[];
  /** The sandboxes that exist and the ports they publish, read once. */
  load: () => Promise<[string, PublishedPort[]][]>;
}

const key = (p: PublishedPort) => `${p.protocol}/${p.port}`;

export class PortOwners {
  /** "TCP/80" -> sandbox id. */
  private index?: Promise<Map<string, string>>;

  constructor(private readonly o: PortOwnersOptions) {}

  private owners(): Promise<Map<string, string>> {
    this.index ??= (async () => {
      const index = new Map<string, string>();
      for (const [id, ports] of await this.o.load()) for (const p of ports) index.set(key(p), id);
      return index;
    })();
    return this.index;
  }

  /**
   * Takes `ports` for sandbox `id`; returns what gives them back. Two sandboxes cannot publish the
   * same host port: the later DNAT would silently shadow.
   */
  async take(id: string, ports: PublishedPort[]): Promise<() => void> {
    if (ports.length === 0) return () => undefined;
    const index = await this.owners();
    for (const p of ports) {
      const owner = index.get(key(p));
      if (owner && owner !== id) throw portInUse(p);
    }
    // taken synchronously after the check: concurrent setups of other ids cannot slip in between
    for (const p of ports) index.set(key(p), id);
    return () => {
      for (const p of ports) if (index.get(key(p)) === id) index.delete(key(p));
    };
  }

  /** Refuses (PortAlreadyInUse) the first port of `ports` the host keeps (unavailable()). */
  async checkHost(ports: PublishedPort[]): Promise<void> {
    const [taken] = await this.unavailable(ports);
    if (taken) throw portInUse(taken);
  }

  /** Gives back every port of sandbox `id`. */
  async release(id: string): Promise<void> {
    const index = await this.owners();
    for (const [k, owner] of index) if (owner === id) index.delete(k);
  }

  /** How many ports the sandboxes hold. */
  async count(): Promise<number> {
    return (await this.owners()).size;
  }

  /**
   * The ports of `ports` the host keeps at the address they would be published on: reserved for
   * berth itself, or held by a socket of the host there (or on a wildcard), whose traffic a DNAT
   * would silently take.
   */
  async unavailable(ports: PublishedPort[]): Promise<PublishedPort[]> {
    const reserved = this.o.reserved?.() ?? [];
    const isReserved = (p: PublishedPort) => reserved.some((r) => r.port === p.port && r.protocol === p.protocol);
    const listened = await portsListenedOn(this.o.address, ports.filter((p) => !isReserved(p)));
    return ports.filter((p) => isReserved(p) || listened.includes(p));
  }

  /** Every port the host keeps at the address ports are published on (what unavailable() would refuse of any). */
  async held(): Promise<PublishedPort[]> {
    const all = new Map<string, PublishedPort>();
    for (const p of [...(this.o.reserved?.() ?? []), ...(await portsHeldAt(this.o.address))]) all.set(key(p), { protocol: p.protocol, port: p.port });
    return [...all.values()].sort((a, b) => a.port - b.port || (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0));
  }
}

export const portInUse = (p: PublishedPort) => new BerthError(Codes.PortAlreadyInUse, `The port ${p.port}/${p.protocol} is already in use on this host.`, 409);

export function samePorts(a: PublishedPort[], b: PublishedPort[]): boolean {
  const keys = (ps: PublishedPort[]) => ps.map(key).sort().join(',');
  return keys(a) === keys(b);
}
