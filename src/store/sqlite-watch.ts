// SQLite watches: changes from the store's event log, in revision order and each exactly once, whichever connection wrote them.
import type Database from 'better-sqlite3';
import type { BerthError } from '../lib/errors.js';
import { compactedError, type WatchEvent, type WatchOptions } from './store.js';

interface EventRow {
  rev: number;
  key: string;
  value: string | null;
  create_rev: number;
}

interface Watcher {
  prefix: string;
  end: string;
  onEvent: (e: WatchEvent) => void;
  onError?: (err: BerthError) => void;
  /** Catching up: the first revision not yet read from the log for it. */
  next: number;
  /** Live: the first revision it may be given (it joined after the ones before). */
  from: number;
}

/** Smallest string greater than every string with this prefix (for range scans). */
export const prefixEnd = (prefix: string) => prefix + '\u{10FFFF}';

/** Revisions read from the log per step of a catch-up (each step is one synchronous read). */
const PAGE_REVISIONS = 1000;

const toEvent = (r: EventRow): WatchEvent =>
  r.value === null
    ? { type: 'delete', key: r.key, modRevision: r.rev }
    : { type: 'put', key: r.key, value: JSON.parse(r.value), modRevision: r.rev, createRevision: r.create_rev };

export class WatchHub {
  private live = new Set<Watcher>();
  private catchingUp = new Set<Watcher>();
  /** Highest revision whose events have been handed to the live watchers. */
  private seen: number;
  private dataVersion: number;
  private queue: WatchEvent[] = [];
  private draining = false;
  private stmts;

  constructor(private db: Database.Database) {
    this.stmts = {
      rev: db.prepare<[], { n: number }>("SELECT n FROM meta WHERE name = 'revision'"),
      dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
      compacted: db.prepare<[], { n: number }>("SELECT n FROM meta WHERE name = 'compacted'"),
      events: db.prepare<[number, number], EventRow>(
        'SELECT rev, key, value, create_rev FROM events WHERE rev >= ? AND rev <= ? ORDER BY rev, seq',
      ),
      eventsIn: db.prepare<[number, number, string, string], EventRow>(
        'SELECT rev, key, value, create_rev FROM events WHERE rev >= ? AND rev <= ? AND key >= ? AND key < ? ORDER BY rev, seq',
      ),
    };
    this.seen = this.stmts.rev.get()!.n;
    this.dataVersion = this.readDataVersion();
  }

  watch(prefix: string, onEvent: (e: WatchEvent) => void, opts: WatchOptions = {}): () => void {
    const w: Watcher = { prefix, end: prefixEnd(prefix), onEvent, onError: opts.onError, next: 0, from: 0 };
    if (opts.afterRevision === undefined) {
      this.pollOtherWriters();
      w.from = this.seen + 1;
      this.live.add(w);
    } else {
      w.next = opts.afterRevision + 1;
      this.catchingUp.add(w);
      // Not inside this call: the caller gets its cancel function before the first event.
      setImmediate(() => this.catchUp(w));
    }
    return () => {
      this.live.delete(w);
      this.catchingUp.delete(w);
    };
  }

  /** This connection committed `rev` with these events. */
  committed(rev: number, events: WatchEvent[]) {
    // Another connection's commits in between go first, in order.
    if (rev > this.seen + 1) this.dispatchFromLog(rev - 1);
    this.seen = rev;
    this.dispatch(events);
  }

  /** Hands the live watchers what other connections (other processes) committed since the last look. */
  pollOtherWriters() {
    const v = this.readDataVersion();
    if (v === this.dataVersion) return;
    this.dataVersion = v;
    const current = this.stmts.rev.get()!.n;
    if (current > this.seen) this.dispatchFromLog(current);
  }

  close() {
    this.live.clear();
    this.catchingUp.clear();
  }

  private readDataVersion(): number {
    return this.stmts.dataVersion.get()!;
  }

  private dispatchFromLog(upTo: number) {
    const compacted = this.stmts.compacted.get()!.n;
    if (this.seen + 1 < compacted) {
      // This connection fell further behind than the history kept: its live watchers cannot go on.
      const err = compactedError(this.seen, compacted);
      const failed = [...this.live];
      this.live.clear();
      this.seen = upTo;
      for (const w of failed) w.onError?.(err);
      return;
    }
    const events = this.stmts.events.all(this.seen + 1, upTo).map(toEvent);
    this.seen = upTo;
    this.dispatch(events);
  }

  /** Delivers in order even when a watcher writes from its callback (its events queue behind these). */
  private dispatch(events: WatchEvent[]) {
    for (const e of events) this.queue.push(e);
    if (this.draining) return;
    this.draining = true;
    try {
      for (let i = 0; i < this.queue.length; i++) {
        const e = this.queue[i];
        for (const w of this.live) if (e.modRevision >= w.from && inRange(w, e.key)) deliver(w, e);
      }
    } finally {
      this.queue = [];
      this.draining = false;
    }
  }

  private catchUp(w: Watcher) {
    if (!this.catchingUp.has(w)) return;
    this.pollOtherWriters();
    const compacted = this.stmts.compacted.get()!.n;
    if (w.next < compacted) {
      this.catchingUp.delete(w);
      w.onError?.(compactedError(w.next - 1, compacted));
      return;
    }
    const to = Math.min(w.next + PAGE_REVISIONS - 1, this.seen);
    if (w.next <= to) {
      const rows = this.stmts.eventsIn.all(w.next, to, w.prefix, w.end);
      w.next = to + 1;
      for (const r of rows) {
        if (!this.catchingUp.has(w)) return;
        deliver(w, toEvent(r));
      }
    }
    if (!this.catchingUp.has(w)) return;
    if (w.next > this.seen) {
      this.catchingUp.delete(w);
      w.from = w.next;
      this.live.add(w);
    } else setImmediate(() => this.catchUp(w));
  }
}

const inRange = (w: Watcher, key: string) => key.startsWith(w.prefix);

function deliver(w: Watcher, e: WatchEvent) {
  try {
    w.onEvent(e);
  } catch (err) {
    // A watcher's bug must not make the write that triggered it look failed: it surfaces on its own.
    queueMicrotask(() => {
      throw err;
    });
  }
}
