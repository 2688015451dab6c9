// Stand-ins for unit tests of the instances layer (never used by the server itself): a host that runs nothing, and its data plane.
import type { HostDataPlane, PlacedSpec } from '../agent/link.js';
import type { GroupStatus } from '../agent/types.js';
import type { PlacedHostSpec } from '../agent/spec.js';
import type { Store } from '../store/store.js';
import type { HostGateway, StoredStatus } from './hosts/gateway.js';
import { hostSpecKey, removingKey, statusKey } from './keys.js';

/**
 * A data plane with no containers: logs are empty, exec is refused, no images; its host keeps the ports in
 * `hostPorts` (what it is asked is recorded in `asked`).
 */
export function fakeDataPlane(hostPorts: number[] = [], asked: number[][] = []): HostDataPlane {
  return {
    logs: async () => '',
    followLogs: async () => undefined,
    exec: () => {
      throw new Error('no exec here');
    },
    usage: async () => [],
    cachedImages: async () => [],
    unavailablePorts: async (ports) => {
      asked.push(ports.map((p) => p.port));
      return ports.filter((p) => hostPorts.includes(p.port));
    },
  };
}

/**
 * A host that follows its specs through the gateway and runs nothing: what is placed is recorded, what is taken
 * off is reported removed at once (as an agent does once it tore a group down), and statuses are whatever the
 * test reports.
 */
export function fakeHost(gateway: HostGateway, host = 'local') {
  const placed = new Map<string, PlacedSpec>();
  const applied: PlacedSpec[] = [];
  const stop = gateway.watchSpecs(host, 0, (e) => {
    if (e.type === 'reset') for (const p of e.specs) placed.set(p.uid, p);
    else if (e.type === 'put') {
      placed.set(e.placed.uid, e.placed);
      applied.push(e.placed);
    } else {
      placed.delete(e.uid);
      setImmediate(() => void gateway.reportRemoved(host, e.uid));
    }
  }, (e) => {
    throw e;
  });
  return {
    placed,
    /** Every spec put after the host started following, in order. */
    applied,
    report: (s: GroupStatus) => gateway.reportStatuses(host, [s]),
    stop,
  };
}

/**
 * The store's side of one host for the agent contract suite: its specs placed and taken off as a group's writes
 * do, the statuses it reported, and its removal reports (`onRemoved`, for the gateway), each finished as the
 * service finishes one.
 */
export function hostOnStore(store: Store, host: string) {
  const removed: string[] = [];
  return {
    onRemoved: async (h: string, uid: string) => {
      removed.push(uid);
      await store.txn({ then: [{ delete: removingKey(h, uid) }, { delete: statusKey(uid) }] });
    },
    place: async (p: PlacedHostSpec) => void (await store.put(hostSpecKey(host, p.uid), p)),
    unplace: async (uid: string) =>
      void (await store.txn({ then: [{ delete: hostSpecKey(host, uid) }, { put: removingKey(host, uid), value: { groupKey: `/groups/t/t/${uid}` } }] })),
    status: async (uid: string): Promise<GroupStatus | undefined> => {
      const s = (await store.get<StoredStatus>(statusKey(uid)))?.value;
      if (!s) return undefined;
      const { host: _, ...status } = s;
      return status;
    },
    removed: () => removed,
  };
}
