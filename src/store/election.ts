// Leader election over any Store: each candidate holds a key under the election's prefix on its own lease; the oldest key leads.
import { BerthError, Codes } from '../lib/errors.js';
import type { Compare, Store } from './store.js';

export interface Leader {
  key: string;
  value: unknown;
  createRevision: number;
}

export interface Leadership {
  /** This candidate's key (the election's prefix and its lease id). */
  readonly key: string;
  readonly createRevision: number;
  /** Aborted when the leadership ends: resigned, its lease lost (expired, revoked, store closed), or its key deleted. */
  readonly signal: AbortSignal;
  /** Holds only while this leadership lasts: put it in the `if` of every transaction the leader makes, so a deposed one's fail. */
  readonly fence: Compare;
  /** Steps down: the key goes at once and the next candidate leads. */
  resign(): Promise<void>;
}

const oldest = (candidates: Map<string, Leader>): Leader | undefined => {
  let first: Leader | undefined;
  for (const c of candidates.values()) if (!first || c.createRevision < first.createRevision) first = c;
  return first;
};

const sameLeader = (a: Leader | undefined, b: Leader | undefined) =>
  a === b || (a !== undefined && b !== undefined && a.key === b.key && a.createRevision === b.createRevision && JSON.stringify(a.value) === JSON.stringify(b.value));

export class Election {
  /** `prefix` names the election, e.g. '/elections/reconcilers/'. */
  constructor(
    private store: Store,
    readonly prefix: string,
  ) {
    if (!prefix.endsWith('/')) throw new BerthError(Codes.InvalidRequestContent, `An election's prefix ends with '/' (got '${prefix}').`, 400);
  }

  /** The current leader, if there is one. */
  async leader(): Promise<Leader | undefined> {
    const listing = await this.store.list(this.prefix);
    return oldest(new Map(listing.map((kv) => [kv.key, { key: kv.key, value: kv.value, createRevision: kv.createRevision }])));
  }

  /** Calls `onLeader` with the leader now and whenever it changes (undefined while there is none), until the returned function is called. */
  observe(onLeader: (leader: Leader | undefined) => void): () => void {
    let reported: Leader | undefined | null = null;
    return this.follow((candidates) => {
      const now = oldest(candidates);
      if (reported === null || !sameLeader(now, reported)) onLeader((reported = now));
    });
  }

  /**
   * Becomes a candidate holding `value` on a lease of `ttlSeconds`, and resolves once it leads (it
   * waits while others lead). `signal` withdraws the candidacy while waiting.
   */
  async campaign(value: unknown, opts: { ttlSeconds: number; signal?: AbortSignal }): Promise<Leadership> {
    opts.signal?.throwIfAborted();
    const lease = await this.store.grantLease(opts.ttlSeconds);
    const key = `${this.prefix}${lease.id}`;
    let createRevision: number;
    try {
      ({ revision: createRevision } = await this.store.txn({ if: [{ key, exists: false }], then: [{ put: key, value, lease: lease.id }] }));
    } catch (e) {
      await lease.revoke().catch(() => undefined);
      throw e;
    }
    return new Promise<Leadership>((resolve, reject) => {
      const ended = new AbortController();
      let leading = false;
      let stopFollowing = () => {};
      const finish = (reason: unknown) => {
        stopFollowing();
        lease.signal.removeEventListener('abort', onLeaseLost);
        opts.signal?.removeEventListener('abort', onWithdraw);
        // the key goes with the lease; a lost lease (expired, or its store closed as in a crash) is left to run out
        if (!lease.signal.aborted) void lease.revoke().catch(() => undefined);
        if (leading) ended.abort(reason);
        else reject(reason);
      };
      const onLeaseLost = () => finish(lease.signal.reason);
      const onWithdraw = () => finish(opts.signal!.reason);
      lease.signal.addEventListener('abort', onLeaseLost, { once: true });
      opts.signal?.addEventListener('abort', onWithdraw, { once: true });
      if (lease.signal.aborted) return onLeaseLost();
      stopFollowing = this.follow((candidates) => {
        if (ended.signal.aborted) return;
        if (!candidates.has(key)) return finish(new BerthError(Codes.Conflict, `The candidacy '${key}' was deleted.`, 409));
        if (leading || oldest(candidates)?.key !== key) return;
        leading = true;
        opts.signal?.removeEventListener('abort', onWithdraw);
        resolve({
          key,
          createRevision,
          signal: ended.signal,
          fence: { key, createRevision },
          resign: async () => {
            if (ended.signal.aborted) return;
            stopFollowing();
            lease.signal.removeEventListener('abort', onLeaseLost);
            ended.abort(new BerthError(Codes.Conflict, `The leader '${key}' resigned.`, 409));
            await lease.revoke();
          },
        });
      });
    });
  }

  /**
   * Keeps a copy of the candidates (list, then watch after the listing's revision; again from a new
   * listing when the history it needs was compacted or the store could not be read) and calls
   * `onChange` with it after each change.
   */
  private follow(onChange: (candidates: Map<string, Leader>) => void): () => void {
    let stopped = false;
    let stopWatch = () => {};
    let retry: NodeJS.Timeout | undefined;
    const start = async () => {
      let listing;
      try {
        listing = await this.store.list(this.prefix);
      } catch {
        if (!stopped) (retry = setTimeout(() => void start(), 1000)).unref();
        return;
      }
      if (stopped) return;
      const candidates = new Map(listing.map((kv) => [kv.key, { key: kv.key, value: kv.value, createRevision: kv.createRevision }]));
      onChange(candidates);
      stopWatch = this.store.watch(
        this.prefix,
        (e) => {
          if (e.type === 'put') candidates.set(e.key, { key: e.key, value: e.value, createRevision: e.createRevision! });
          else candidates.delete(e.key);
          if (!stopped) onChange(candidates);
        },
        { afterRevision: listing.revision, onError: () => !stopped && void start() },
      );
    };
    void start();
    return () => {
      stopped = true;
      clearTimeout(retry);
      stopWatch();
    };
  }
}

/**
 * A replica's part in `election` until `signal` aborts: campaigns, and while it leads runs what the leader runs
 * (`serve` starts it and returns how to stop it; undefined or a throw: it could not start, and the leadership is
 * given up for a second). Failed campaigns are tried again after a second. Resolves once `signal` has aborted and
 * what was served has stopped, with the leadership resigned.
 */
export async function leadWhileElected(
  election: Election,
  o: { value: unknown; ttlSeconds: number; signal: AbortSignal; role: string; log: (message: string) => void },
  serve: (leadership: Leadership) => Promise<(() => Promise<void>) | undefined>,
): Promise<void> {
  const pause = () => new Promise((r) => setTimeout(r, 1000));
  while (!o.signal.aborted) {
    let leadership: Leadership;
    try {
      leadership = await election.campaign(o.value, { ttlSeconds: o.ttlSeconds, signal: o.signal });
    } catch (e) {
      if (o.signal.aborted) return;
      o.log(`campaigning to ${o.role} failed (again in 1 s): ${(e as Error).message}`);
      await pause();
      continue;
    }
    const stop = await serve(leadership).catch((e: Error) => void o.log(`could not ${o.role}: ${e.message}`));
    if (stop) await new Promise<void>((resolve) => {
      const signals = [leadership.signal, o.signal];
      if (signals.some((s) => s.aborted)) return resolve();
      for (const s of signals) s.addEventListener('abort', () => resolve(), { once: true });
    });
    await stop?.();
    // a lost leadership has nothing to resign; a closing one, or one that could not serve, lets another lead at once
    await leadership.resign().catch(() => undefined);
    if (o.signal.aborted) return;
    o.log(`no longer ${o.role}: ${stop ? (leadership.signal.reason as Error)?.message ?? 'its lease is gone' : 'it could not start'}`);
    if (!stop) await pause();
  }
}
