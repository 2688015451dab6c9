// Event lists as ACI shows them (a group's and each container's): a repeat counts on the first one, and the oldest go past a bound.

export interface Event {
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  name: string;
  message: string;
  type: 'Normal' | 'Warning';
}

/** Events kept per list. */
export const MAX_EVENTS = 50;

/** Adds an event to `events` in place: a repeat of one with the same name and message counts on it instead. */
export function addEvent(events: Event[], name: string, message: string, type: Event['type'] = 'Normal', at = new Date().toISOString(), max = MAX_EVENTS) {
  const same = events.find((e) => e.name === name && e.message === message);
  if (same) {
    same.count++;
    same.lastTimestamp = at;
    return;
  }
  events.push({ count: 1, firstTimestamp: at, lastTimestamp: at, name, message, type });
  if (events.length > max) events.splice(0, events.length - max);
}
