// Hosts' liveness in the store: `/hostleases/{host}` lives on a lease this replica keeps alive while the host's heartbeats arrive.
//
// Any replica may receive a host's heartbeat (an agent fails over between replicas). The one that does
// holds a lease for the host and puts the key on it (again whenever the key is not on its lease: another
// replica's put moved it); a lease whose host has not beaten within its TTL is revoked, and the key's delete
// event says NotReady. A replica that dies takes its leases along after their TTL, as etcd expires them; the
// host's next heartbeat to another replica puts the key back first.
//
// The TTL may be fractional (failover within seconds): the store's lease only has to outlive the replica, so it is
// whole seconds, rounded up; NotReady is this replica's own sweep finding a host without a beat for the TTL.
import type { Lease, Store } from '../../store/store.js';
import { hostLeaseKey } from '../keys.js';

/** How often leases are looked at: NotReady lands within this after the TTL ran out. */
export const sweepMs = (ttlSeconds: number) => Math.min(250, (ttlSeconds * 1000) / 8);

/** How often a host beats for a lease of `ttlSeconds`: a silence of the TTL less two beats (one each side of it) still keeps the host Ready. */
export const heartbeatMs = (ttlSeconds: number) => (ttlSeconds * 1000) / 16;

/**
 * How long a beat trusts the last look at the host's key: beats come many times a second, and the key leaves this
 * replica's lease only when the host beats to another replica (whose lease then lasts the TTL, far longer).
 */
const RECHECK_MS = 1000;

interface Held {
  lease: Lease;
  lastBeat: number;
  /** When the key was last seen (or put) on this lease. */
  checkedAt: number;
}

export class HostLeases {
  private held = new Map<string, Held>();
  /** A host's beat being handled: one lease per host even when beats overlap. */
  private pending = new Map<string, Promise<void>>();
  private sweeper: NodeJS.Timeout;

  constructor(
    private store: Store,
    readonly ttlSeconds: number,
    /** Who holds the leases (a replica's id), recorded in the key for people reading the store. */
    private holder: string,
  ) {
    this.sweeper = setInterval(() => this.sweep(), sweepMs(ttlSeconds));
    this.sweeper.unref();
  }

  /** The host is alive now: Ready for the next TTL. */
  beat(host: string): Promise<void> {
    const before = this.pending.get(host) ?? Promise.resolve();
    const run = before.catch(() => undefined).then(() => this.renew(host));
    const tracked = run.finally(() => this.pending.get(host) === tracked && this.pending.delete(host));
    this.pending.set(host, tracked);
    return run;
  }

  private async renew(host: string) {
    let h = this.held.get(host);
    if (!h || h.lease.signal.aborted) {
      h = { lease: await this.store.grantLease(Math.ceil(this.ttlSeconds)), lastBeat: Date.now(), checkedAt: 0 };
      this.held.set(host, h);
    }
    const now = Date.now();
    h.lastBeat = now;
    if (now - h.checkedAt < RECHECK_MS) return;
    const key = hostLeaseKey(host);
    if ((await this.store.get(key))?.lease !== h.lease.id)
      await this.store.put(key, { host, holder: this.holder, at: new Date().toISOString() }, { lease: h.lease.id });
    h.checkedAt = now;
  }

  private sweep() {
    const late = Date.now() - this.ttlSeconds * 1000;
    for (const [host, h] of this.held)
      if (h.lastBeat < late || h.lease.signal.aborted) {
        this.held.delete(host);
        void h.lease.revoke().catch(() => undefined);
      }
  }

  /** Stops looking after the leases; they are not revoked (the store's close ends their keep-alive, and they run out). */
  close() {
    clearInterval(this.sweeper);
    this.held.clear();
  }
}
