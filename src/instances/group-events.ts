// What the control plane tells of a group (why it waits for a host, where it moved), kept beside its host's events and shown with them.
import { addEvent, type Event } from '../lib/events.js';
import type { Compare, Op, Store } from '../store/store.js';
import { groupEventsKey } from './keys.js';

/** Events kept per group; a repeat counts on the first one (a group retried every few seconds adds nothing). */
const MAX_GROUP_EVENTS = 20;
const ATTEMPTS = 5;

export interface GroupEvents {
  events: Event[];
}

/**
 * Adds an event to the group's control-plane events. Best effort against racing writers (it retries a few
 * times, then drops the event): an event is news for people, never state anything decides on.
 */
export async function recordGroupEvent(store: Store, uid: string, name: string, message: string, type: Event['type'] = 'Normal'): Promise<void> {
  const key = groupEventsKey(uid);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const cur = await store.get<GroupEvents>(key);
    const events = structuredClone(cur?.value.events ?? []);
    addEvent(events, name, message, type, new Date().toISOString(), MAX_GROUP_EVENTS);
    const r = await store.txn({ if: [cur ? { key, modRevision: cur.modRevision } : { key, exists: false }], then: [{ put: key, value: { events } satisfies GroupEvents }] });
    if (r.succeeded) return;
  }
}

/**
 * The first event of a group that has none yet (a new uid), as a write to put in another transaction: it compares
 * the events as absent, so a transaction that carries it never overwrites one.
 */
export function firstGroupEvent(uid: string, name: string, message: string, type: Event['type'] = 'Normal'): { compares: Compare[]; ops: Op[] } {
  const key = groupEventsKey(uid);
  const events: Event[] = [];
  addEvent(events, name, message, type, new Date().toISOString(), MAX_GROUP_EVENTS);
  return { compares: [{ key, exists: false }], ops: [{ put: key, value: { events } satisfies GroupEvents }] };
}

/** The group's events as ACI lists them: its host's and the control plane's together, oldest first. */
export function mergedEvents(host: Event[] | undefined, control: Event[] | undefined): Event[] {
  if (!control?.length) return host ?? [];
  return [...(host ?? []), ...control].sort((a, b) => (a.firstTimestamp < b.firstTimestamp ? -1 : a.firstTimestamp > b.firstTimestamp ? 1 : 0));
}
