// The keyed work queue reconcilers run on: one reconcile per key at a time, coalesced adds, per-key backoff, bounded concurrency.
//
// In the spirit of client-go's workqueue and controller-runtime's controller: a reconcile takes a key,
// compares desired with actual state, acts, and answers `done` or `againAfter(ms)`; a thrown error
// is retried with per-key exponential backoff that resets on the key's next success. The queue owns
// when and how often a key runs; reconcilers own only what a run does.
//
// - A key is never reconciled by two workers at once.
// - Adds of a key that is waiting coalesce into one run.
// - An add of a key that is being reconciled makes it run once more after the current run.
// - A delayed add asks for a run no later than then; the earliest pending deadline wins. A run that
//   starts answers for every delayed add made before it: what it returns (`againAfter`, an error's
//   backoff) decides when the key runs next, so a reconcile that says `done` is not run again by a
//   timer an earlier run left behind.
// - shutdown() stops taking work, drops what waits, and resolves once the runs in flight have ended.

export type ReconcileResult = 'done' | { againAfterMs: number };

/** The key's desired state is reached; run it again only when something adds it. */
export const done: ReconcileResult = 'done';

/** Run the key again after `ms` (e.g. to look at an operation that is still in progress). */
export const againAfter = (ms: number): ReconcileResult => ({ againAfterMs: ms });

export type Reconcile = (key: string) => Promise<ReconcileResult>;

/** Time as the queue sees it: real by default, a fake one in unit tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

// The queue never decides on its own that a process should keep running: its timers are unref'd.
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface WorkQueueOptions {
  /** Keys reconciled at once (distinct keys; one key never runs twice at once). Default 1. */
  concurrency?: number;
  /** Retry delay after the first failure of a key, doubled per further failure up to `maxBackoffMs`. Default 100 ms. */
  baseBackoffMs?: number;
  /** Default 30 s. */
  maxBackoffMs?: number;
  clock?: Clock;
  /** Told of every failed run, with the delay before the key's retry. */
  onError?: (key: string, error: unknown, retryInMs: number) => void;
}

export class WorkQueue {
  private readonly concurrency: number;
  private readonly baseBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly clock: Clock;
  /** Keys ready to run, oldest first; each at most once (`waiting` mirrors it for lookups). */
  private readonly ready: string[] = [];
  private readonly waiting = new Set<string>();
  private readonly running = new Set<string>();
  /** Keys added while they ran: they run once more when the current run ends. */
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; handle: unknown }>();
  private readonly failures = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private idleWaiters: (() => void)[] = [];
  private stopping = false;

  constructor(private readonly reconcile: Reconcile, private readonly o: WorkQueueOptions = {}) {
    this.concurrency = Math.max(1, o.concurrency ?? 1);
    this.baseBackoffMs = o.baseBackoffMs ?? 100;
    this.maxBackoffMs = o.maxBackoffMs ?? 30_000;
    this.clock = o.clock ?? realClock;
  }

  /** Asks for a run of `key` as soon as a worker is free. */
  add(key: string): void {
    if (this.stopping) return;
    if (this.running.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    this.waiting.add(key);
    this.ready.push(key);
    this.pump();
  }

  /** Asks for a run of `key` no later than `ms` from now. */
  addAfter(key: string, ms: number): void {
    if (this.stopping) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.clock.clearTimeout(pending.handle);
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { at, handle });
  }

  /** Keys waiting for a worker (not those waiting for a delay). */
  get length(): number {
    return this.ready.length;
  }

  /** Keys being reconciled now. */
  get active(): number {
    return this.running.size;
  }

  /** The key's consecutive failures (0 after a success). */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Resolves once no key waits for a worker and none runs (delayed adds may still be pending). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking work, drops waiting and delayed keys, and waits for the runs in flight. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers.values()) this.clock.clearTimeout(t.handle);
    this.timers.clear();
    this.ready.length = 0;
    this.waiting.clear();
    this.dirty.clear();
    await Promise.all(this.inFlight);
    this.notifyIdle();
  }

  private isIdle() {
    return this.ready.length === 0 && this.running.size === 0;
  }

  private notifyIdle() {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private pump() {
    while (!this.stopping && this.running.size < this.concurrency && this.ready.length > 0) {
      const key = this.ready.shift()!;
      this.waiting.delete(key);
      this.running.add(key);
      // This run answers for the delayed adds made before it (see the file's comment).
      const pending = this.timers.get(key);
      if (pending) {
        this.clock.clearTimeout(pending.handle);
        this.timers.delete(key);
      }
      const run = this.run(key);
      this.inFlight.add(run);
      void run.finally(() => this.inFlight.delete(run));
    }
  }

  private async run(key: string) {
    let result: ReconcileResult | undefined;
    let error: unknown;
    let failed = false;
    try {
      result = await this.reconcile(key);
    } catch (e) {
      error = e;
      failed = true;
    }
    this.running.delete(key);
    if (!this.stopping) {
      if (failed) {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const delay = Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** (n - 1));
        this.o.onError?.(key, error, delay);
        this.addAfter(key, delay);
      } else {
        this.failures.delete(key);
        if (result && result !== 'done') this.addAfter(key, result.againAfterMs);
      }
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
    this.notifyIdle();
  }
}
