// The leader's placement reconciler: a group record without a host gets one (the scheduler's decision over a cache of hosts, the ports they keep and the placed groups, kept from the store's watches), with its host spec and host ports, in the record's own transaction, fenced by the leadership it was decided under.
import type { PublishedPort } from '../../agent/spec.js';
import { span, traceValue } from '../../lib/trace.js';
import { againAfter, done, WorkQueue, type ReconcileResult } from '../../lib/workqueue.js';
import { Mirror } from '../../store/mirror.js';
import type { Compare, Store } from '../../store/store.js';
import { placementPortClaims } from '../admission.js';
import { recordGroupEvent } from '../group-events.js';
import { GROUPS_PREFIX } from '../keys.js';
import { placeOps } from '../host-specs.js';
import type { HostsView } from '../hosts/hosts-view.js';
import type { GroupRecord } from '../records.js';
import { Scheduler } from './scheduler.js';
import type { GroupDemand } from './types.js';

const publishedPorts = (r: GroupRecord): PublishedPort[] => (r.spec.ipAddress?.type === 'Public' ? r.spec.ipAddress.ports : []);

/** What a group asks of its host, as the scheduler sees it. */
export function demandOf(r: GroupRecord): GroupDemand {
  const cpu = r.spec.containers.reduce((n, c) => n + c.requests.cpu, 0);
  const memoryGB = r.spec.containers.reduce((n, c) => n + c.requests.memoryInGB, 0);
  return { uid: r.uid, subscriptionId: r.subscriptionId, name: r.name, tags: r.tags, cpu, memoryGB, ports: publishedPorts(r).map((p) => `${p.protocol}/${p.port}`), zones: r.spec.zones ?? [], ...(r.spec.placement && { rules: r.spec.placement }) };
}

/** Placements written at once. */
const PLACEMENTS_AT_ONCE = 16;

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
    this.groups?.stop();
    await this.queue.shutdown();
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
      // the ports the host keeps are those it reported last: one its sockets took since fails the group's start there
      const placed: GroupRecord = { ...rec, host, ...(zone && { zone }) };
      const claim = placementPortClaims(placed, key);
      written = await span(rec.uid, 'place.write', async () => (await this.store.txn({
        if: [this.fence, { key, modRevision: kv.modRevision }, ...claim.compares],
        then: [{ put: key, value: placed }, ...placeOps(placed), ...claim.ops],
      })).succeeded);
    } finally {
      if (!written) this.scheduler.forget(rec.uid);
    }
    this.waiting.delete(key);
    // not written: the record changed meanwhile, a port was taken (the cache was behind the store), or this
    // replica no longer leads; decided again
    if (!written) return againAfter(50);
    // news for people, off the path of the next placement (a lost host's groups are placed again as one burst)
    void recordGroupEvent(this.store, rec.uid, 'Scheduled', `Placed on host '${host}'${zone ? ` in zone '${zone}'` : ''}.`)
      .catch((e: Error) => this.o.log?.(`the Scheduled event of ${key} was not recorded: ${e.message}`));
    return done;
  }
}
