// What the Store conformance suite needs from a backend under test, and the helpers its parts share.
import { test } from 'node:test';
import type { BerthError } from '../../lib/errors.js';
import type { Store, WatchEvent, WatchOptions } from '../store.js';

export interface StoreUnderTest {
  /** Names the backend in test titles. */
  name: string;
  /** A new, empty store. */
  fresh(): Promise<Store>;
  /** Another handle on the same data as `store`: another process's view, or this one's after a restart. */
  reopen(store: Store): Promise<Store>;
  /** What `openStore` takes to reach `store`'s data (for child processes). */
  url(store: Store): string;
  /** Breaks every client's connection and brings the server back (etcd: kill -9, then start again). Absent without a server. */
  restartServer?(): Promise<void>;
}

/** A test that gets a fresh store and closes every handle it opened, even when it fails. */
export function storeTest(sut: StoreUnderTest, title: string, fn: (s: Store, open: () => Promise<Store>) => Promise<void>, opts: { skip?: string | boolean } = {}) {
  test(`${sut.name}: ${title}`, { skip: opts.skip }, async () => {
    const s = await sut.fresh();
    const others: Store[] = [];
    try {
      await fn(s, async () => {
        const other = await sut.reopen(s);
        others.push(other);
        return other;
      });
    } finally {
      for (const o of others) await o.close().catch(() => undefined);
      await s.close().catch(() => undefined);
    }
  });
}

/** Polls `cond` until it holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A watch that records what it is given; `stop` cancels it. */
export function record(s: Store, prefix: string, opts: WatchOptions = {}) {
  const events: WatchEvent[] = [];
  const errors: BerthError[] = [];
  const stop = s.watch(prefix, (e) => events.push(e), { ...opts, onError: (err) => errors.push(err) });
  return { events, errors, stop, keys: () => events.map((e) => `${e.type} ${e.key}`) };
}

export const seconds = (n: number) => new Promise((r) => setTimeout(r, n * 1000));
