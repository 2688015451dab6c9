// The leader's failover: the groups of a host that turned NotReady are taken off it (back on no host, a new generation, their removal awaited there) each in its own transaction under the leadership's fence, and the placer places them again like any new group. So is a group its Ready host refused to start because the host's own sockets hold one of its ports (taken after the host last reported them): the placer now knows the host keeps the port.
import { againAfter, done, WorkQueue, type ReconcileResult } from '../../lib/workqueue.js';
import { Mirror } from '../../store/mirror.js';
import type { Compare, Op, Store } from '../../store/store.js';
import { publishedPorts } from '../admission.js';
import { recordGroupEvent } from '../group-events.js';
import { unplaceOps } from '../host-specs.js';
import type { HostsView } from '../hosts/hosts-view.js';
import type { StoredStatus } from '../hosts/gateway.js';
import { GROUPS_PREFIX, hostPortKey, statusKey } from '../keys.js';
import { UNPLACED, type GroupRecord } from '../records.js';

/** Moves written at once (each its own transaction: a host's groups are independent of each other). */
const MOVES_AT_ONCE = 16;

export interface ReschedulerOptions {
  /**
   * A host found NotReady when this leader starts gets this long to beat before its groups move: after a control
   * plane outage every host lease has run out, and the hosts are alive. Ready-to-NotReady seen live moves at once
   * (the lease has run out already).
   */
  startGraceMs: number;
  log?: (message: string) => void;
}

/** What takes a group off a lost host: its spec there goes (removed when the host is back), and with it what it held there. */
export function moveOffOps(rec: GroupRecord): { moved: GroupRecord; ops: Op[] } {
  const { zone: _, ...rest } = rec;
  const moved: GroupRecord = { ...rest, host: UNPLACED, generation: rec.generation + 1 };
  const ports = publishedPorts(rec.spec);
  return {
    moved,
    ops: [
      ...unplaceOps(rec),
      // held by this group since its placement on that host, in the record's own transaction
      ...ports.map((p): Op => ({ delete: hostPortKey(rec.host, p.protocol, p.port) })),
      // the lost host's Running is not the truth any more: Pending until the new host reports
      { delete: statusKey(rec.uid) },
    ],
  };
}

export class Rescheduler {
  private readonly queue: WorkQueue;
  private groups?: Mirror<GroupRecord>;
  /** Hosts seen NotReady -> from when their groups move. */
  private readonly lost = new Map<string, number>();
  private startedAt = 0;
  private hostsKnown = false;
  /** Each Ready host's held ports as last looked at (HostsView keeps the array until the host reports again). */
  private heldSeen = new Map<string, readonly string[]>();
  /** Groups to look at because their host reported ports it keeps that they publish. */
  private readonly portChecks = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly hosts: HostsView,
    /** The leadership's fence: in the `if` of every write. */
    private readonly fence: Compare,
    private readonly o: ReschedulerOptions,
  ) {
    this.queue = new WorkQueue((key) => this.reconcile(key), {
      concurrency: MOVES_AT_ONCE,
      onError: (key, e, retryInMs) => o.log?.(`moving ${key} off its host failed (again in ${retryInMs} ms): ${(e as Error).message}`),
    });
  }

  /** Follows every group record; nothing moves before the hosts' view has been read once (until then every host looks NotReady). */
  start() {
    this.startedAt = Date.now();
    this.groups = new Mirror<GroupRecord>(this.store, GROUPS_PREFIX, {
      onReset: (all) => all.forEach((_, key) => this.queue.add(key)),
      onChange: (e) => this.queue.add(e.key),
    });
    void this.hosts.ready().then(() => {
      this.hostsKnown = true;
      this.hostsChanged();
    });
  }

  /**
   * A host turned Ready or NotReady, or reported its held ports (HostsView's onChange): the groups of newly lost
   * hosts are looked at, and those publishing a port their host has just reported it keeps.
   */
  hostsChanged() {
    if (!this.hostsKnown || !this.groups) return;
    for (const host of this.lost.keys()) if (this.hosts.isReady(host)) this.lost.delete(host);
    const reported = new Map<string, Set<string>>();
    for (const h of this.hosts.all()) {
      const held = this.hosts.heldPorts(h.name);
      if (this.heldSeen.get(h.name) === held) continue;
      this.heldSeen.set(h.name, held);
      if (held.length > 0) reported.set(h.name, new Set(held));
    }
    const newlyLost = new Set<string>();
    for (const [key, rec] of this.groups.entries) {
      if (!rec.host || rec.deleting) continue;
      if (this.hosts.isReady(rec.host)) {
        const held = reported.get(rec.host);
        if (held && publishedPorts(rec.spec).some((p) => held.has(`${p.protocol}/${p.port}`))) {
          this.portChecks.add(key);
          this.queue.add(key);
        }
        continue;
      }
      if (!this.lost.has(rec.host)) newlyLost.add(rec.host);
      this.lostFrom(rec.host);
      if (newlyLost.has(rec.host)) this.queue.add(key);
    }
  }

  /** When the groups of `host` (NotReady) move: at once, unless this leader has only just started. */
  private lostFrom(host: string): number {
    let from = this.lost.get(host);
    if (from === undefined) {
      const grace = this.startedAt + this.o.startGraceMs - Date.now();
      from = Date.now() + Math.max(0, grace);
      this.lost.set(host, from);
      this.o.log?.(`host ${host} is NotReady: its groups move${grace > 0 ? ` unless it beats within ${grace} ms` : ''}`);
    }
    return from;
  }

  async stop() {
    this.groups?.stop();
    await this.queue.shutdown();
  }

  private async reconcile(key: string): Promise<ReconcileResult> {
    if (!this.hostsKnown) return done; // hostsChanged looks at every group once the hosts are known
    // as the watch last told it: a record changed since makes the move's transaction fail, and is told next
    const kv = this.groups?.getWithRevision(key);
    const rec = kv?.value;
    // a group being deleted stays: its removal is the lost host's to report when it is back
    if (!kv || !rec || !rec.host || rec.deleting) return done;
    if (this.hosts.isReady(rec.host)) return this.portCheck(key, kv.modRevision, rec);
    const from = this.lostFrom(rec.host);
    if (from > Date.now()) return againAfter(from - Date.now());
    const { moved, ops } = moveOffOps(rec);
    const written = (await this.store.txn({ if: [this.fence, { key, modRevision: kv.modRevision }], then: [{ put: key, value: moved }, ...ops] })).succeeded;
    // not written: the record changed meanwhile (told next), or this replica no longer leads
    if (!written) return againAfter(50);
    this.o.log?.(`${key} moved off NotReady host ${rec.host}`);
    // news for people, off the path of the next move (a lost host's groups move as one burst)
    void recordGroupEvent(this.store, rec.uid, 'Rescheduled', `Host '${rec.host}' is NotReady: the group is placed again on another host (generation ${moved.generation}).`, 'Warning')
      .catch((e: Error) => this.o.log?.(`the event of ${key}'s move was not recorded: ${e.message}`));
    return done;
  }

  /**
   * A group on a Ready host whose start the host refused for a port the host's own sockets hold (its status says
   * PortAlreadyInUse for this generation) goes back on no host: the placer, which now counts that port as the
   * host's, puts it on another host, or says why it waits. A group that runs stays, whatever took its port since.
   */
  private async portCheck(key: string, modRevision: number, rec: GroupRecord): Promise<ReconcileResult> {
    if (!this.portChecks.delete(key)) return done;
    const status = (await this.store.get<StoredStatus>(statusKey(rec.uid)))?.value;
    if (status?.host !== rec.host || status.generation !== rec.generation || status.error?.code !== 'PortAlreadyInUse') return done;
    const { moved, ops } = moveOffOps(rec);
    const written = (await this.store.txn({ if: [this.fence, { key, modRevision }], then: [{ put: key, value: moved }, ...ops] })).succeeded;
    if (!written) return done; // changed meanwhile (told next), or this replica no longer leads
    this.o.log?.(`${key} moved off host ${rec.host}, which keeps one of its ports`);
    void recordGroupEvent(this.store, rec.uid, 'Rescheduled', `Host '${rec.host}' keeps a port of the group for its own sockets (${status.error.message}): the group is placed again on another host (generation ${moved.generation}).`, 'Warning')
      .catch((e: Error) => this.o.log?.(`the event of ${key}'s move was not recorded: ${e.message}`));
    return done;
  }
}
