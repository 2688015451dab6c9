// The control plane's side of a host's link, over the store: what a host may read (the specs placed on it, from a revision) and write (its registration, liveness, statuses and removals of its own groups), and nothing else.
import type { HostRegistration, HostResume, LeaseTerms, OverlayAssignment, PlacedSpec, SpecEvent } from '../../agent/link.js';
import type { GroupStatus } from '../../agent/types.js';
import type { PublishedPort } from '../../agent/spec.js';
import { BerthError, Codes } from '../../lib/errors.js';
import type { Store } from '../../store/store.js';
import { assignmentOf, hostSubnet, type OverlaySettings } from './cluster-overlay.js';
import { heartbeatMs, HostLeases } from './host-leases.js';
import { heldPortsKey, hostKey, hostSpecKey, hostSpecPrefix, removingPrefix, statusKey } from '../keys.js';

/** A host as the store records it. */
export interface HostRecord extends HostRegistration {
  registeredAt: string;
  updatedAt: string;
  /** Its share of the cluster overlay's CIDR (cluster-overlay.ts), from its first registration on. */
  subnet?: string;
}

/** The ports a host keeps for its own sockets, as the store records them: "TCP/22", in order of port. */
export interface HeldPorts {
  ports: string[];
  updatedAt: string;
}

/** A status as the store records it: which host reported it. */
export type StoredStatus = GroupStatus & { host: string };

export interface HostGatewayOptions {
  /** A host has torn down a group that is no longer placed on it: the control plane finishes its deletion. */
  onRemoved: (host: string, uid: string) => Promise<void>;
  /** A host is NotReady this long after its last heartbeat (fractional allowed). Default 4 s. */
  leaseTtlSeconds?: number;
  /** Who keeps the hosts' leases (a replica's name), recorded with them for people reading the store. */
  holder?: string;
  /** The cluster overlay: each host gets a subnet of it at its first registration. Absent: none (the embedded default). */
  overlay?: OverlaySettings;
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

/**
 * A lost host's groups run elsewhere within 5 s of the loss (NotReady after the lease, then placed again), while a
 * network blip of 3 s moves nothing (a lease less two 0.25 s beats is 3.5 s of silence).
 */
export const DEFAULT_HOST_LEASE_SECONDS = 4;

/** Attempts of a registration whose record or subnet another replica wrote meanwhile. */
const REGISTER_ATTEMPTS = 10;

/** How long a heartbeat trusts that its host is registered. */
const REGISTRATION_RECHECK_MS = 1000;

export class HostGateway {
  private readonly leases: HostLeases;
  /** Host -> when its registration was last seen in the store. */
  private readonly registeredAt = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly o: HostGatewayOptions,
  ) {
    this.leases = new HostLeases(store, o.leaseTtlSeconds ?? DEFAULT_HOST_LEASE_SECONDS, o.holder ?? `process ${process.pid}`);
  }

  /** How long a host stays Ready without a heartbeat. */
  get leaseTtlMs() {
    return this.leases.ttlSeconds * 1000;
  }

  /** What hosts are told to keep to: the lease and how often to beat for it. */
  get terms(): LeaseTerms {
    return { leaseTtlMs: this.leaseTtlMs, heartbeatMs: heartbeatMs(this.leases.ttlSeconds) };
  }

  /** Records the host (address, capacity, how to reach it; its subnet of the overlay) and counts as a heartbeat. */
  async register(host: string, reg: HostRegistration): Promise<LeaseTerms> {
    for (let attempt = 0; attempt < REGISTER_ATTEMPTS; attempt++) {
      const now = new Date().toISOString();
      const old = await this.store.get<HostRecord>(hostKey(host));
      const overlay = this.o.overlay && (await hostSubnet(this.store, this.o.overlay, host, old?.value));
      const rec: HostRecord = { ...reg, name: host, registeredAt: old?.value.registeredAt ?? now, updatedAt: now, ...(overlay && { subnet: overlay.subnet }) };
      const written = await this.store.txn({
        if: [{ key: hostKey(host), modRevision: old?.modRevision ?? 0 }, ...(overlay?.compares ?? [])],
        then: [{ put: hostKey(host), value: rec }, ...(overlay?.ops ?? [])],
      });
      if (!written.succeeded) continue; // another replica wrote the record or took the subnet meanwhile
      await this.heartbeat(host);
      return { ...this.terms, ...(overlay && { overlay: assignmentOf(this.o.overlay!, overlay.subnet) }) };
    }
    throw new BerthError(Codes.Conflict, `The registration of host '${host}' raced other writers ${REGISTER_ATTEMPTS} times; try again.`, 409);
  }

  /**
   * The host's share of the overlay (none without one), its subnet claimed now if it has none yet: what an agent
   * asks before it makes its network, ahead of its registration (which keeps the same subnet).
   */
  async overlay(host: string): Promise<OverlayAssignment | undefined> {
    const settings = this.o.overlay;
    if (!settings) return undefined;
    for (let attempt = 0; attempt < REGISTER_ATTEMPTS; attempt++) {
      const old = await this.store.get<HostRecord>(hostKey(host));
      const { subnet, compares, ops } = await hostSubnet(this.store, settings, host, old?.value);
      if (ops.length === 0 || (await this.store.txn({ if: compares, then: ops })).succeeded) return assignmentOf(settings, subnet);
    }
    throw new BerthError(Codes.Conflict, `Claiming a subnet for host '${host}' raced other writers ${REGISTER_ATTEMPTS} times; try again.`, 409);
  }

  /**
   * The host is alive: Ready until `leaseTtlMs` passes without another heartbeat (host-leases.ts), or this process
   * ends. A host whose record is gone (a store started anew) must register again: ResourceNotFound.
   */
  async heartbeat(host: string): Promise<void> {
    // looked up once a second at most: a beat comes every quarter second or so
    const seen = this.registeredAt.get(host);
    if (seen === undefined || Date.now() - seen > REGISTRATION_RECHECK_MS) {
      if (!(await this.store.get(hostKey(host)))) {
        this.registeredAt.delete(host);
        throw new BerthError(Codes.ResourceNotFound, `The host '${host}' is not registered.`, 404);
      }
      this.registeredAt.set(host, Date.now());
    }
    await this.leases.beat(host);
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

  /** What the host keeps of its ports for its own sockets now (all of them; the placement reads them). */
  async reportHeldPorts(host: string, ports: PublishedPort[]): Promise<void> {
    const held: HeldPorts = { ports: ports.map((p) => `${p.protocol}/${p.port}`), updatedAt: new Date().toISOString() };
    await this.store.put(heldPortsKey(host), held);
  }

  /** The host has torn a group down; ignored while the group is still placed on it (it runs again). */
  async reportRemoved(host: string, uid: string): Promise<void> {
    if (await this.store.get(hostSpecKey(host, uid))) return;
    await this.o.onRemoved(host, uid);
  }

  /** Stops keeping host leases alive (they expire after their TTL, as after a crash). */
  close() {
    this.leases.close();
  }
}
