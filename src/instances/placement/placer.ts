// The leader's placement reconciler: a group record without a host gets one (the scheduler's decision over a cache of hosts, the ports they keep and the placed groups, kept from the store's watches), with its host spec and host ports, in the record's own transaction, fenced by the leadership it was decided under.
import { span, traceValue } from '../../lib/trace.js';
import { againAfter, done, WorkQueue, type ReconcileResult } from '../../lib/workqueue.js';
import { Mirror } from '../../store/mirror.js';
import type { Compare, Op, Store } from '../../store/store.js';
import { placementPortClaims, publishedPorts } from '../admission.js';
import { firstGroupEvent, recordGroupEvent } from '../group-events.js';
import { GROUPS_PREFIX } from '../keys.js';
import { placeOps } from '../host-specs.js';
import type { HostsView } from '../hosts/hosts-view.js';
import type { GroupRecord } from '../records.js';
import { Scheduler } from './scheduler.js';
import type { GroupDemand } from './types.js';

/** What a group asks of its host, as the scheduler sees it. */
export function demandOf(r: GroupRecord): GroupDemand {
  const cpu = r.spec.containers.reduce((n, c) => n + c.requests.cpu, 0);
  const memoryGB = r.spec.containers.reduce((n, c) => n + c.requests.memoryInGB, 0);
  return { uid: r.uid, subscriptionId: r.subscriptionId, name: r.name, tags: r.tags, cpu, memoryGB, ports: publishedPorts(r.spec).map((p) => `${p.protocol}/${p.port}`), zones: r.spec.zones ?? [], ...(r.spec.placement && { rules: r.spec.placement }) };
}

const scheduledMessage = (host: string, zone: string | undefined) => `Placed on host '${host}'${zone ? ` in zone '${zone}'` : ''}.`;

/** Placements written at once. */
const PLACEMENTS_AT_ONCE = 16;

/**
 * A placement decided for a group while it is being admitted (Placer.placeAtAdmission): the admission's own
 * transaction writes it, with what the placer's would have compared and written; `settle` is told whether it did.
 */
export interface AdmissionPlacement {
  placed: GroupRecord;
  compares: Compare[];
  ops: Op[];
  settle(written: boolean): void;
}

export interface PlacerOptions {
  /** How often groups that fit nowhere are tried again (also whenever a host changes). Default 5 s. */
  retryMs?: number;
  log?: (message: string) => void;
}

export class Placer {
  private readonly queue: WorkQueue;
  private groups?: Mirror<GroupRecord>;
  private scheduler = new Scheduler();
  /** Group record key -> its uid (a delete event carries no value). */
  private readonly uidOfKey = new Map<string, string>();
  /** Groups that fit nowhere, tried again when a host changes. */
  private readonly waiting = new Set<string>();
  /** The watch of the group records has listed them all (and this placer is not stopped): its decisions count every group. */
  private synced = false;

  constructor(
    private readonly store: Store,
    private readonly hosts: HostsView,
    /** The leadership's fence: in the `if` of every write. */
    private readonly fence: Compare,
    private readonly o: PlacerOptions,
  ) {
    this.queue = new WorkQueue((key) => this.reconcile(key), {
      // decisions are made one at a time (synchronously, each assumed at once); what follows them waits on the
      // host and the store, side by side
      concurrency: PLACEMENTS_AT_ONCE,
      onError: (key, e, retryInMs) => o.log?.(`placing ${key} failed (again in ${retryInMs} ms): ${(e as Error).message}`),
    });
  }

  /** Follows every group record (a new leader starts from a listing: nothing assumes it was the only one). */
  start() {
    this.hostsChanged();
    this.groups = new Mirror<GroupRecord>(this.store, GROUPS_PREFIX, {
      onReset: (all) => {
        this.synced = true;
        this.scheduler = new Scheduler();
        this.uidOfKey.clear();
        this.hostsChanged();
        all.forEach((r, key) => {
          this.assume(key, r);
          this.queue.add(key);
        });
      },
      onChange: (e) => {
        if (e.type === 'put') this.assume(e.key, e.value as GroupRecord);
        else this.forgetKey(e.key);
        this.queue.add(e.key);
      },
    });
  }

  /**
   * A host registered, changed, turned Ready or NotReady, or reported other ports its own sockets keep: the scheduler's
   * view follows, and what found no room may find some now.
   */
  hostsChanged() {
    for (const h of this.hosts.all()) {
      this.scheduler.setHost({ name: h.name, zone: h.zone, labels: h.labels, allocatable: h.allocatable, ready: this.hosts.isReady(h.name) });
      this.scheduler.setHeldPorts(h.name, this.hosts.heldPorts(h.name));
    }
    for (const key of this.waiting) this.queue.add(key);
  }

  async stop() {
    this.synced = false;
    this.groups?.stop();
    await this.queue.shutdown();
  }

  /**
   * Decides where a group goes while a replica that leads admits it, so one transaction admits and places it (the
   * placement's own transaction, and the watch that tells the placer of the record, are off the create's path).
   * Undefined when this placer cannot decide now (not synced, stopped) or the group fits nowhere: the admission
   * leaves it on no host, and the placer's loop places it, or says why it waits.
   */
  placeAtAdmission(key: string, rec: GroupRecord): AdmissionPlacement | undefined {
    if (!this.synced || rec.host || rec.deleting) return undefined;
    const demand = demandOf(rec);
    const decision = this.scheduler.decide(demand);
    if ('unschedulable' in decision) return undefined;
    const { host, zone } = decision;
    // counted at once, as the placer's own decisions are
    this.scheduler.setPlaced(host, demand);
    traceValue(rec.uid, 'place.atAdmission', 0);
    const { placed, compares, ops } = this.placement(key, rec, host, zone);
    // a new uid has no events yet: its first is written with it
    const event = firstGroupEvent(rec.uid, 'Scheduled', scheduledMessage(host, zone));
    return {
      placed,
      compares: [...compares, ...event.compares],
      ops: [...ops, ...event.ops],
      settle: (written) => {
        if (!written) this.scheduler.forget(rec.uid);
      },
    };
  }

  /** What the store says is placed is what the scheduler counts. */
  private assume(key: string, r: GroupRecord) {
    const was = this.uidOfKey.get(key);
    if (was && was !== r.uid) this.scheduler.forget(was);
    this.uidOfKey.set(key, r.uid);
    if (r.host) this.scheduler.setPlaced(r.host, demandOf(r));
    else this.scheduler.forget(r.uid);
  }

  /** The record at `key` is gone, and with it what its group took of its host. */
  private forgetKey(key: string) {
    const uid = this.uidOfKey.get(key);
    this.uidOfKey.delete(key);
    if (uid) this.scheduler.forget(uid);
  }

  private async reconcile(key: string): Promise<ReconcileResult> {
    // as the watch last told it: a record changed since makes the placement's transaction fail, and is told next
    const kv = this.groups?.getWithRevision(key);
    const rec = kv?.value;
    // placed already (its spec follows its record in the record's own transactions), deleted, or being deleted
    if (!kv || !rec || rec.host || rec.deleting) {
      this.waiting.delete(key);
      return done;
    }
    traceValue(rec.uid, 'place.start', 0);
    const demand = demandOf(rec);
    const decision = this.scheduler.decide(demand);
    if ('unschedulable' in decision) {
      if (!this.waiting.has(key)) this.o.log?.(`${key} waits for a host: ${decision.unschedulable}`);
      this.waiting.add(key);
      // told with the group (a repeat only counts): why it is Pending
      await recordGroupEvent(this.store, rec.uid, 'FailedScheduling', decision.unschedulable, 'Warning');
      return againAfter(this.o.retryMs ?? 5000);
    }
    const { host, zone } = decision;
    // counted at once: decisions made while this one is written must not find the room it takes
    this.scheduler.setPlaced(host, demand);
    let written = false;
    try {
      const { placed, compares, ops } = this.placement(key, rec, host, zone);
      written = await span(rec.uid, 'place.write', async () => (await this.store.txn({
        if: [{ key, modRevision: kv.modRevision }, ...compares],
        then: [{ put: key, value: placed }, ...ops],
      })).succeeded);
    } finally {
      if (!written) this.scheduler.forget(rec.uid);
    }
    this.waiting.delete(key);
    // not written: the record changed meanwhile, a port was taken (the cache was behind the store), or this
    // replica no longer leads; decided again
    if (!written) return againAfter(50);
    this.scheduled(key, rec.uid, host, zone);
    return done;
  }

  /**
   * The record placed on `host`, and what its write compares (the leadership's fence, the host's ports free) and
   * writes beside it (its host spec, its host ports). The ports the host keeps are those it reported last: one its
   * sockets took since fails the group's start there, and the rescheduler moves it.
   */
  private placement(key: string, rec: GroupRecord, host: string, zone: string | undefined): { placed: GroupRecord; compares: Compare[]; ops: Op[] } {
    const placed: GroupRecord = { ...rec, host, ...(zone && { zone }) };
    const claim = placementPortClaims(placed, key);
    return { placed, compares: [this.fence, ...claim.compares], ops: [...placeOps(placed), ...claim.ops] };
  }

  /** News for people, off the path of the next placement (a lost host's groups are placed again as one burst). */
  private scheduled(key: string, uid: string, host: string, zone: string | undefined) {
    void recordGroupEvent(this.store, uid, 'Scheduled', scheduledMessage(host, zone))
      .catch((e: Error) => this.o.log?.(`the Scheduled event of ${key} was not recorded: ${e.message}`));
  }
}
