// Groups as the API shows them: a record with its host's latest status, waits on a status, and the watch of a subscription's groups.
import type { Store } from '../store/store.js';
import type { GroupEvents } from './group-events.js';
import type { StoredStatus } from './hosts/gateway.js';
import { GROUP_EVENTS_PREFIX, groupEventsKey, STATUS_PREFIX, statusKey } from './keys.js';
import type { GroupRecord, GroupView } from './records.js';

export async function groupView(store: Store, rec: GroupRecord): Promise<GroupView> {
  const [status, events] = await Promise.all([
    store.get<StoredStatus>(statusKey(rec.uid)).then((kv) => kv?.value),
    store.get<GroupEvents>(groupEventsKey(rec.uid)).then((kv) => kv?.value.events),
  ]);
  let provisioningState: GroupView['provisioningState'];
  if (rec.deleting) provisioningState = 'Deleting';
  else if (!status || status.generation < rec.generation) provisioningState = 'Pending';
  else provisioningState = status.provisioning;
  return { record: rec, status, provisioningState, ...(events && { events }) };
}

/** The view of a group admitted just now: nothing is reported of a new uid yet (no read needed). */
export const admittedView = (rec: GroupRecord): GroupView => ({ record: rec, status: undefined, provisioningState: 'Pending' });

/**
 * Watches a group's reported status from now on: wait() resolves when `done` holds for it, when the status is
 * removed (the group is gone) or after `waitMs`, whichever comes first.
 */
export function untilStatus(store: Store, uid: string, done: (s: StoredStatus) => boolean, waitMs: number) {
  let finish!: () => void;
  const settled = new Promise<void>((resolve) => (finish = resolve));
  const timer = setTimeout(() => finish(), waitMs);
  const unwatch = store.watch(statusKey(uid), (e) => {
    if (e.key === statusKey(uid) && (e.type === 'delete' || done(e.value as StoredStatus))) finish();
  });
  const cancel = () => {
    clearTimeout(timer);
    unwatch();
    finish();
  };
  return { wait: () => settled.finally(cancel), cancel };
}

/**
 * Calls `onChange(resourceGroup, name)` whenever a group under `prefix` (a subscription's, or a resource
 * group's) changes: its record, its status or its control-plane events. Those two are keyed by uid: which group
 * a uid is comes from the records (listed once, then followed).
 */
export function watchGroupChanges(store: Store, prefix: string, onChange: (resourceGroup: string, name: string) => void): () => void {
  const keyOf = new Map<string, string>();
  let stopped = false;
  let listed: Promise<void> | undefined;
  const list = () => (listed ??= store.list<GroupRecord>(prefix).then((kvs) => {
    for (const kv of kvs) if (!keyOf.has(kv.value.uid)) keyOf.set(kv.value.uid, kv.key);
  }, () => undefined));
  const tell = (key: string) => {
    const [, , , resourceGroup, name] = key.split('/');
    if (name && !stopped) onChange(resourceGroup, name);
  };
  const stopRecords = store.watch(prefix, (e) => {
    if (e.type === 'put') keyOf.set((e.value as GroupRecord).uid, e.key);
    tell(e.key);
  });
  const stopByUid = [STATUS_PREFIX, GROUP_EVENTS_PREFIX].map((byUid) => store.watch(byUid, (e) => {
    const uid = e.key.slice(byUid.length);
    const key = keyOf.get(uid);
    if (key) tell(key);
    else void list().then(() => keyOf.has(uid) && tell(keyOf.get(uid)!));
  }));
  void list();
  return () => {
    stopped = true;
    stopRecords();
    for (const stop of stopByUid) stop();
  };
}
