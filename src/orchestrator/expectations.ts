// What one orchestrator process has asked for and not seen yet (members it made or deleted that the informer
// does not show so yet), and the NGroup events it records.
import type { NGroupEvent, NGroupStatus } from '../client/index.js';
import type { Member } from './members.js';

/** How long a create or delete is waited for before the informer's view is taken as it is. */
const EXPECTATION_TTL_MS = 60_000;
/** Events kept on an NGroup (the oldest go first). */
const MAX_EVENTS = 50;

/**
 * In the spirit of Kubernetes' ReplicaSet expectations: a member just made counts as one until the
 * informer lists it, and one just deleted counts as gone, so a reconcile that runs before the
 * informer has caught up neither makes nor deletes one twice. After a restart there are none: the
 * informer's first list is complete, and nothing is in flight that it cannot see.
 */
export class Expectations {
  private readonly creates = new Map<string, number>();
  private readonly deletes = new Map<string, number>();

  /** Forgets what the members now show (or what waited too long). */
  settle(members: Member[], now: number) {
    for (const [name, at] of this.creates)
      if (members.some((m) => m.name === name) || now - at > EXPECTATION_TTL_MS) this.creates.delete(name);
    for (const [name, at] of this.deletes)
      if (!members.some((m) => m.name === name && m.health !== 'deleting') || now - at > EXPECTATION_TTL_MS) this.deletes.delete(name);
  }

  expectCreate(name: string, now: number) {
    this.creates.set(name, now);
  }

  expectDelete(name: string, now: number) {
    this.deletes.set(name, now);
  }

  forget(name: string) {
    this.creates.delete(name);
    this.deletes.delete(name);
  }

  isDeleting(name: string) {
    return this.deletes.has(name);
  }

  /** Members made that the informer does not list yet. */
  creating(): number {
    return this.creates.size;
  }

  pending(): boolean {
    return this.creates.size + this.deletes.size > 0;
  }
}

/** Adds an event to the status; a repeat of the latest one of that name and message counts on it, as ACI's events do. */
export function addEvent(status: NGroupStatus, name: string, message: string, type: 'Normal' | 'Warning', iso: string) {
  const events: NGroupEvent[] = (status.events = [...(status.events ?? [])]);
  const same = events.findIndex((e) => e.name === name && e.message === message);
  if (same >= 0) {
    const e = events[same];
    events.splice(same, 1);
    events.push({ ...e, count: (e.count ?? 1) + 1, lastTimestamp: iso });
  } else events.push({ count: 1, firstTimestamp: iso, lastTimestamp: iso, name, message, type });
  if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
}
