// The control plane's view of the cluster's hosts: their registrations and which are Ready (their lease key is there).
import { Mirror } from '../../store/mirror.js';
import type { Store } from '../../store/store.js';
import type { HostRecord } from './gateway.js';
import { HOST_LEASES_PREFIX, hostKey, hostLeaseKey, HOSTS_PREFIX } from '../keys.js';

export class HostsView {
  private hosts: Mirror<HostRecord>;
  private leases: Mirror<unknown>;

  /** `onChange` after any host registers, changes or turns Ready or NotReady. */
  constructor(store: Store, onChange: () => void = () => {}) {
    this.hosts = new Mirror<HostRecord>(store, HOSTS_PREFIX, { onReset: onChange, onChange });
    this.leases = new Mirror(store, HOST_LEASES_PREFIX, { onReset: onChange, onChange });
  }

  ready(): Promise<unknown> {
    return Promise.all([this.hosts.ready, this.leases.ready]);
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
  }
}
