// Admission in the group's own transaction: quota counters per subscription and location, and host-port keys per host, read and then compared and written with the group, so no two writers admit a conflict.
import { BerthError, Codes } from '../lib/errors.js';
import { KeyedLock } from '../lib/keyed-lock.js';
import type { Compare, Op, Store } from '../store/store.js';
import type { GroupSpec } from './group-spec.js';
import { hostPortKey, usageKey } from './keys.js';
import { locationKey, type GroupRecord } from './records.js';

export interface Quotas {
  containerGroups: number;
  /** Sum of CPU requests of a subscription's groups in one location. */
  standardCores: number;
}

/** A subscription's groups in one location, as its quotas count them (deleting ones too, until they are gone). */
export interface Usage {
  containerGroups: number;
  cores: number;
}

/** Who publishes a port on a host. */
export interface PortHolder {
  uid: string;
  groupKey: string;
  subscriptionId: string;
  name: string;
}

/** A port refused at admission; the group holding it is named only to its own subscription. */
export const portInUse = (p: { port: number; protocol: string }, heldBy?: string) =>
  new BerthError(Codes.PortAlreadyInUse, heldBy
    ? `The port ${p.port}/${p.protocol} is already published by container group '${heldBy}' on this host.`
    : `The port ${p.port}/${p.protocol} is already in use on this host.`, 409, 'properties.ipAddress.ports');

/** The ports `spec` publishes that `old` did not. */
export const newlyPublished = (spec: GroupSpec, old: GroupSpec | undefined) =>
  publishedPorts(spec).filter((p) => !(old ? publishedPorts(old) : []).some((q) => q.port === p.port && q.protocol === p.protocol));

/** What admission adds to the group's transaction. */
export interface Admitted {
  compares: Compare[];
  ops: Op[];
}

const coresOf = (spec: GroupSpec) => spec.containers.reduce((n, c) => n + c.requests.cpu, 0);
/** Sums of decimals (0.1 + 0.2) are kept as the API shows them. */
const roundCores = (n: number) => Math.round(n * 1e6) / 1e6;
/** The ports a group publishes on its host (a Public address's; none for a Private one). */
export const publishedPorts = (spec: GroupSpec) => (spec.ipAddress?.type === 'Public' ? spec.ipAddress.ports : []);
const usageKeyOf = (r: GroupRecord) => usageKey(r.subscriptionId, locationKey(r.location));
const holderOf = (rec: GroupRecord, key: string): PortHolder => ({ uid: rec.uid, groupKey: key, subscriptionId: rec.subscriptionId, name: rec.name });

/**
 * The host ports of a group just placed on its host (`rec.host`), for the placement's transaction: each must be
 * free there (no read: a port held makes the transaction fail, and the placement decides again).
 */
export function placementPortClaims(rec: GroupRecord, key: string): Admitted {
  const portKeys = publishedPorts(rec.spec).map((p) => hostPortKey(rec.host, p.protocol, p.port));
  return { compares: portKeys.map((k) => ({ key: k, modRevision: 0 })), ops: portKeys.map((k) => ({ put: k, value: holderOf(rec, key) })) };
}

export class Admission {
  /**
   * Writers of one usage counter in this process take turns, so a burst of creates does not spend itself on
   * compare failures; other processes' writes are caught by the compares.
   */
  private turns = new KeyedLock();

  constructor(
    private readonly store: Store,
    readonly quotas: Quotas,
  ) {}

  /** Runs `fn` (an admission and the transaction it belongs to) in turn with this process's others on `rec`'s counter. */
  inTurn<T>(rec: GroupRecord, fn: () => Promise<T>): Promise<T> {
    return this.turns.run(usageKeyOf(rec), fn);
  }

  /**
   * Admits `rec` (replacing `old`, if any) against the quotas and the host's ports; throws ACI's error for what
   * does not fit. `key` is the record's store key.
   */
  async admit(rec: GroupRecord, old: GroupRecord | undefined, key: string): Promise<Admitted> {
    const ports = await this.claimPorts(rec, old, key);
    const quota = await this.count(rec, old);
    return { compares: [...quota.compares, ...ports.compares], ops: [...quota.ops, ...ports.ops] };
  }

  /** What the group's end frees, in the transaction that removes its record: its share of the quota, its ports. */
  async release(rec: GroupRecord): Promise<Admitted> {
    const compares: Compare[] = [];
    const ops: Op[] = [];
    const key = usageKeyOf(rec);
    const kv = await this.store.get<Usage>(key);
    if (kv) {
      const usage = { containerGroups: Math.max(0, kv.value.containerGroups - 1), cores: Math.max(0, roundCores(kv.value.cores - coresOf(rec.spec))) };
      compares.push({ key, modRevision: kv.modRevision });
      ops.push(usage.containerGroups === 0 ? { delete: key } : { put: key, value: usage });
    }
    for (const p of publishedPorts(rec.spec)) {
      const portKey = hostPortKey(rec.host, p.protocol, p.port);
      const held = await this.store.get<PortHolder>(portKey);
      if (held?.value.uid !== rec.uid) continue;
      compares.push({ key: portKey, modRevision: held.modRevision });
      ops.push({ delete: portKey });
    }
    return { compares, ops };
  }

  /** ACI's usage figures of a subscription in a location. */
  async usage(sub: string, location: string) {
    const u = (await this.store.get<Usage>(usageKey(sub, locationKey(location))))?.value ?? { containerGroups: 0, cores: 0 };
    return {
      containerGroups: { current: u.containerGroups, limit: this.quotas.containerGroups },
      standardCores: { current: roundCores(u.cores), limit: this.quotas.standardCores },
    };
  }

  /** ACI's per-subscription, per-location quotas, answered with ACI's codes. */
  private async count(rec: GroupRecord, old: GroupRecord | undefined): Promise<Admitted> {
    const extraCores = roundCores(coresOf(rec.spec) - (old ? coresOf(old.spec) : 0));
    if (old && extraCores === 0) return { compares: [], ops: [] };
    const key = usageKeyOf(rec);
    // compared in the transaction: a stale count fails it
    const kv = await this.store.get<Usage>(key, { serializable: true });
    const u = kv?.value ?? { containerGroups: 0, cores: 0 };
    const { containerGroups: groupLimit, standardCores: coreLimit } = this.quotas;
    if (!old && u.containerGroups + 1 > groupLimit)
      throw new BerthError(Codes.ContainerGroupQuotaReached, `Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'ContainerGroups' exceeded in region '${rec.location}'. Limit: '${groupLimit}', Usage: '${u.containerGroups}' Requested: '1'.`, 409);
    if (extraCores > 0 && roundCores(u.cores + extraCores) > coreLimit)
      throw new BerthError('StandardCoresQuotaReached', `Resource type 'Microsoft.ContainerInstance/containerGroups' cores quota 'StandardCores' exceeded in region '${rec.location}'. Limit: '${coreLimit}', Usage: '${roundCores(u.cores)}' Requested: '${extraCores}'.`, 409);
    const next: Usage = { containerGroups: u.containerGroups + (old ? 0 : 1), cores: roundCores(u.cores + extraCores) };
    return { compares: [{ key, modRevision: kv?.modRevision ?? 0 }], ops: [{ put: key, value: next }] };
  }

  /**
   * Public ports are published on the group's host's address: one group per port (the host's own sockets are
   * asked about apart, by the caller: they are not in the store). A group not placed yet holds none: its
   * placement claims them on the host it chooses (placementPortClaims).
   */
  private async claimPorts(rec: GroupRecord, old: GroupRecord | undefined, key: string): Promise<Admitted> {
    const compares: Compare[] = [];
    const ops: Op[] = [];
    if (!rec.host) return { compares, ops };
    const wanted = publishedPorts(rec.spec);
    for (const p of wanted) {
      const portKey = hostPortKey(rec.host, p.protocol, p.port);
      const held = await this.store.get<PortHolder>(portKey);
      if (held && held.value.uid !== rec.uid)
        throw portInUse(p, held.value.subscriptionId.toLowerCase() === rec.subscriptionId.toLowerCase() ? held.value.name : undefined);
      compares.push({ key: portKey, modRevision: held?.modRevision ?? 0 });
      if (!held) ops.push({ put: portKey, value: holderOf(rec, key) });
    }
    for (const p of old ? publishedPorts(old.spec) : []) {
      if (wanted.some((q) => q.port === p.port && q.protocol === p.protocol)) continue;
      const portKey = hostPortKey(old!.host, p.protocol, p.port);
      const held = await this.store.get<PortHolder>(portKey);
      if (held?.value.uid !== rec.uid) continue;
      compares.push({ key: portKey, modRevision: held.modRevision });
      ops.push({ delete: portKey });
    }
    return { compares, ops };
  }
}
