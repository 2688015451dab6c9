// Brings a store written by an earlier berth up to the current layout, once: every group placed on a host with its host spec, and its quota counters and host ports as keys.
import type { Op, Store } from '../store/store.js';
import { publishedPorts, type PortHolder, type Usage } from './admission.js';
import { placeOps, unplaceOps } from './host-specs.js';
import type { StoredStatus } from './hosts/gateway.js';
import { hostPortKey, LAYOUT_KEY, statusKey, usageKey } from './keys.js';
import { locationKey, type GroupRecord } from './records.js';

/**
 * 2: groups and their statuses carry `host`; `/hostspecs/{host}/{uid}` is what hosts run, `/removing/{host}/{uid}`
 * what they tear down; `/usage/{sub}/{location}` and `/hostports/{host}/{proto}/{port}` decide admission.
 */
export const LAYOUT = 2;

/** Ops per transaction: within etcd's 128. */
const CHUNK = 100;

/**
 * Derives the keys of the current layout from the group records (absolute values: an upgrade cut short by a crash
 * is simply done again at the next start), then records the layout. Groups of records without a host were on
 * `host` (the only one an earlier berth had).
 */
export async function upgradeLayout(store: Store, host: string): Promise<void> {
  if (((await store.get<number>(LAYOUT_KEY))?.value ?? 1) >= LAYOUT) return;
  const ops: Op[] = [];
  const usage = new Map<string, Usage>();
  const ports = new Set<string>();
  for (const kv of await store.list<GroupRecord>('/groups/')) {
    const rec = kv.value;
    if (!rec.host) {
      rec.host = rec.node ?? host;
      delete rec.node;
      ops.push({ put: kv.key, value: rec });
    }
    const counted = usageKey(rec.subscriptionId, locationKey(rec.location));
    const u = usage.get(counted) ?? { containerGroups: 0, cores: 0 };
    u.containerGroups++;
    u.cores = Math.round((u.cores + rec.spec.containers.reduce((n, c) => n + c.requests.cpu, 0)) * 1e6) / 1e6;
    usage.set(counted, u);
    // on no host yet (a cluster's placement chooses one, with its spec and ports)
    if (!rec.host) continue;
    // one group per port, the first as before (another may publish it too, written before ports were checked)
    for (const p of publishedPorts(rec.spec)) {
      const portKey = hostPortKey(rec.host, p.protocol, p.port);
      if (ports.has(portKey)) continue;
      ports.add(portKey);
      ops.push({ put: portKey, value: { uid: rec.uid, groupKey: kv.key, subscriptionId: rec.subscriptionId, name: rec.name } satisfies PortHolder });
    }
    ops.push(...(rec.deleting ? unplaceOps(rec) : placeOps(rec)));
    // its host's last report says whose it is: what the host resumes from when it starts
    const status = (await store.get<StoredStatus>(statusKey(rec.uid)))?.value;
    if (status && !status.host) ops.push({ put: statusKey(rec.uid), value: { ...status, host: rec.host } });
  }
  for (const [key, value] of usage) ops.push({ put: key, value });
  for (let i = 0; i < ops.length; i += CHUNK) await store.txn({ then: ops.slice(i, i + CHUNK) });
  await store.put(LAYOUT_KEY, LAYOUT);
}
