// The control plane's side of a host's link, over the store: what a host may read (the specs placed on it, from a revision) and write (its registration, liveness, statuses and removals of its own groups), and nothing else.
import type { HostRegistration, HostResume, PlacedSpec, SpecEvent } from '../../agent/link.js';
import type { GroupStatus } from '../../agent/types.js';
import { Codes, type BerthError } from '../../lib/errors.js';
import type { Lease, Store } from '../../store/store.js';
import { hostKey, hostLeaseKey, hostSpecKey, hostSpecPrefix, removingPrefix, statusKey } from '../keys.js';

/** A host as the store records it. */
export interface HostRecord extends HostRegistration {
  registeredAt: string;
  updatedAt: string;
}

/** A status as the store records it: which host reported it. */
export type StoredStatus = GroupStatus & { host: string };

export interface HostGatewayOptions {
  /** A host has torn down a group that is no longer placed on it: the control plane finishes its deletion. */
  onRemoved: (host: string, uid: string) => Promise<void>;
  /** A host is NotReady this long after its lease was last kept alive. Default 10 s. */
  leaseTtlSeconds?: number;
}

/**
 * Statuses per transaction: each is a compare and a put, within etcd's 128 of each; and their JSON within
 * what one etcd request may carry (1.5 MiB), with room for the keys.
 */
export const STATUS_BATCH = { count: 60, bytes: 1 << 20 };

/** Splits `statuses` into batches within STATUS_BATCH (one too big alone is a batch alone). */
export function statusBatches(statuses: GroupStatus[]): GroupStatus[][] {
  const batches: GroupStatus[][] = [];
  let batch: GroupStatus[] = [];
  let bytes = 0;
  for (const s of statuses) {
    const size = JSON.stringify(s).length;
    if (batch.length > 0 && (batch.length >= STATUS_BATCH.count || bytes + size > STATUS_BATCH.bytes)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(s);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

export class HostGateway {
  private leases = new Map<string, Lease>();
  private readonly leaseTtlSeconds: number;

  constructor(
    private readonly store: Store,
    private readonly o: HostGatewayOptions,
  ) {
    this.leaseTtlSeconds = o.leaseTtlSeconds ?? 10;
  }

  /** Records the host (address, capacity, how to reach it) and counts as a heartbeat. */
  async register(host: string, reg: HostRegistration): Promise<{ leaseTtlMs: number }> {
    const now = new Date().toISOString();
    const old = await this.store.get<HostRecord>(hostKey(host));
    await this.store.put(hostKey(host), { ...reg, name: host, registeredAt: old?.value.registeredAt ?? now, updatedAt: now } satisfies HostRecord);
    await this.heartbeat(host);
    return { leaseTtlMs: this.leaseTtlSeconds * 1000 };
  }

  /**
   * The host is alive: `/hostleases/{host}` is on a lease this process keeps alive (so it goes when this process
   * does, as the in-process agent does). A remote host's lease must also end when its heartbeats stop: the
   * agent API revokes it then.
   */
  async heartbeat(host: string): Promise<void> {
    let lease = this.leases.get(host);
    if (!lease || lease.signal.aborted) {
      lease = await this.store.grantLease(this.leaseTtlSeconds);
      this.leases.set(host, lease);
    }
    if ((await this.store.get(hostLeaseKey(host)))?.lease !== lease.id)
      await this.store.put(hostLeaseKey(host), { host, at: new Date().toISOString() }, { lease: lease.id });
  }

  /** The host's last statuses for the groups placed on it, and the groups taken off it whose removal is awaited. */
  async resume(host: string): Promise<HostResume> {
    const placed = await this.store.list<PlacedSpec>(hostSpecPrefix(host));
    const statuses: GroupStatus[] = [];
    for (const kv of placed) {
      const s = (await this.store.get<StoredStatus>(statusKey(kv.value.uid)))?.value;
      if (s && s.host === host) {
        const { host: _, ...status } = s;
        statuses.push(status);
      }
    }
    const removing = (await this.store.list(removingPrefix(host))).map((kv) => kv.key.slice(removingPrefix(host).length));
    return { statuses, removing };
  }

  /**
   * The specs placed on `host`: a reset (the whole set) when `fromRevision` is 0 or compacted away, then each
   * change after it, in order, each once. Returns a function that stops; `onError` is told of an end it cannot
   * recover from by itself.
   */
  watchSpecs(host: string, fromRevision: number, onEvent: (e: SpecEvent) => void, onError: (e: BerthError) => void): () => void {
    const prefix = hostSpecPrefix(host);
    let stopped = false;
    let stopWatch = () => {};
    const follow = async (after: number) => {
      if (after === 0) {
        let listing;
        try {
          listing = await this.store.list<PlacedSpec>(prefix);
        } catch (e) {
          if (!stopped) onError(e as BerthError);
          return;
        }
        if (stopped) return;
        onEvent({ type: 'reset', revision: listing.revision, specs: listing.map((kv) => kv.value) });
        after = listing.revision;
      }
      stopWatch = this.store.watch(prefix, (e) => {
        if (stopped) return;
        if (e.type === 'put') onEvent({ type: 'put', revision: e.modRevision, placed: e.value as PlacedSpec });
        else onEvent({ type: 'delete', revision: e.modRevision, uid: e.key.slice(prefix.length) });
      }, {
        afterRevision: after,
        onError: (err) => {
          if (stopped) return;
          if (err.code === Codes.Compacted) void follow(0);
          else onError(err);
        },
      });
    };
    void follow(fromRevision);
    return () => {
      stopped = true;
      stopWatch();
    };
  }

  /**
   * Writes the statuses of groups placed on `host`; those of groups that are not (any more: deleted, or placed
   * elsewhere) are refused and returned, so a host's late word never overwrites another's.
   */
  async reportStatuses(host: string, statuses: GroupStatus[]): Promise<{ refused: string[] }> {
    const refused: string[] = [];
    const write = (batch: GroupStatus[]) => this.store.txn({
      if: batch.map((s) => ({ key: hostSpecKey(host, s.uid), exists: true })),
      then: batch.map((s) => ({ put: statusKey(s.uid), value: { ...s, host } satisfies StoredStatus })),
    });
    for (const batch of statusBatches(statuses)) {
      if ((await write(batch)).succeeded) continue;
      // some group in it is not placed here: the others one by one
      for (const s of batch) if (batch.length === 1 || !(await write([s])).succeeded) refused.push(s.uid);
    }
    return { refused };
  }

  /** The host has torn a group down; ignored while the group is still placed on it (it runs again). */
  async reportRemoved(host: string, uid: string): Promise<void> {
    if (await this.store.get(hostSpecKey(host, uid))) return;
    await this.o.onRemoved(host, uid);
  }

  /** Stops keeping host leases alive (they expire after their TTL, as after a crash). */
  close() {
    this.leases.clear();
  }
}
