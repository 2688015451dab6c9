// The control plane's view of the cluster's hosts: their registrations, which are Ready (their lease key is there), and the ports each keeps for its own sockets.
import { Mirror } from '../../store/mirror.js';
import type { Store } from '../../store/store.js';
import type { HeldPorts, HostRecord } from './gateway.js';
import { HELD_PORTS_PREFIX, heldPortsKey, HOST_LEASES_PREFIX, hostKey, hostLeaseKey, HOSTS_PREFIX } from '../keys.js';

const NONE: readonly string[] = Object.freeze([]);

export class HostsView {
  private hosts: Mirror<HostRecord>;
  private leases: Mirror<unknown>;
  private held: Mirror<HeldPorts>;

  /** `onChange` after any host registers, changes, turns Ready or NotReady, or reports other held ports. */
  constructor(store: Store, onChange: () => void = () => {}) {
    this.hosts = new Mirror<HostRecord>(store, HOSTS_PREFIX, { onReset: onChange, onChange });
    this.leases = new Mirror(store, HOST_LEASES_PREFIX, { onReset: onChange, onChange });
    this.held = new Mirror<HeldPorts>(store, HELD_PORTS_PREFIX, { onReset: onChange, onChange });
  }

  ready(): Promise<unknown> {
    return Promise.all([this.hosts.ready, this.leases.ready, this.held.ready]);
  }

  /** The ports the host last said its own sockets keep ("TCP/22"): the same array until it reports others. */
  heldPorts(name: string): readonly string[] {
    return this.held.get(heldPortsKey(name))?.ports ?? NONE;
  }

  get(name: string): HostRecord | undefined {
    return this.hosts.get(hostKey(name));
  }

  isReady(name: string): boolean {
    return this.leases.entries.has(hostLeaseKey(name));
  }

  /** Every registered host, Ready or not. */
  all(): HostRecord[] {
    return [...this.hosts.entries.values()];
  }

  /** Ready hosts, by name. */
  readyHosts(): HostRecord[] {
    return [...this.hosts.entries.values()].filter((h) => this.isReady(h.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  stop() {
    this.hosts.stop();
    this.leases.stop();
    this.held.stop();
  }
}
