// Conformance: watches from a revision, in order and exactly once, across handles, restarts and compaction.
import assert from 'node:assert/strict';
import { Codes, type BerthError } from '../../lib/errors.js';
import type { Store, WatchEvent } from '../store.js';
import { record, storeTest, waitFor, type StoreUnderTest } from './harness.js';

/** Writes `n` revisions under `prefix` (one put each, 16 in flight: etcd's round trips add up). */
async function writeRevisions(s: Store, prefix: string, n: number) {
  let next = 0;
  const writer = async () => {
    for (let i = next++; i < n; i = next++) await s.put(`${prefix}${String(i).padStart(5, '0')}`, i);
  };
  await Promise.all(Array.from({ length: 16 }, writer));
}

const revisionsOf = (events: WatchEvent[]) => events.map((e) => e.modRevision);

function assertExactlyOnceInOrder(events: WatchEvent[], from: number, to: number) {
  const revs = revisionsOf(events);
  assert.equal(revs.length, to - from + 1, `expected revisions ${from}..${to}, got ${revs.length} events`);
  revs.forEach((r, i) => assert.equal(r, from + i, `event ${i} has revision ${r}, expected ${from + i}`));
}

export function watchConformance(sut: StoreUnderTest) {
  storeTest(sut, 'watch sees puts and deletes under its prefix, in order, with values, and nothing after cancel', async (s) => {
    const w = record(s, '/w/', { afterRevision: await s.revision() });
    const r1 = await s.put('/w/1', 'a');
    await s.put('/x/1', 'ignored');
    await s.put('/w', 'not under /w/ either');
    const r2 = (await s.txn({ then: [{ put: '/w/2', value: { b: 1 } }, { delete: '/w/1' }] })).revision;
    await waitFor('three events', () => w.events.length >= 3);
    w.stop();
    await s.put('/w/3', 'after');
    const marker = record(s, '/w/', { afterRevision: await s.revision() - 1 });
    await waitFor('the marker watch to see the last put', () => marker.events.length === 1);
    marker.stop();
    assert.deepEqual(w.events, [
      { type: 'put', key: '/w/1', value: 'a', modRevision: r1, createRevision: r1 },
      { type: 'put', key: '/w/2', value: { b: 1 }, modRevision: r2, createRevision: r2 },
      { type: 'delete', key: '/w/1', modRevision: r2 },
    ]);
    assert.deepEqual(w.errors, []);
  });

  storeTest(sut, 'a watch without afterRevision follows changes from when it is established', async (s) => {
    await s.put('/live/old', 'before the watch');
    const w = record(s, '/live/');
    // etcd establishes a watch asynchronously: write until one write is seen, then everything after it must be
    let probes = 0;
    await waitFor('the watch to see a probe', async () => {
      await s.put('/live/probe', ++probes);
      return w.events.length > 0;
    });
    const last = await s.put('/live/new', 'after');
    await waitFor('the put after the probes', () => w.events.some((e) => e.modRevision === last));
    w.stop();
    assert.ok(!w.events.some((e) => e.key === '/live/old'));
    assert.deepEqual(w.events.at(-1)?.key, '/live/new');
  });

  storeTest(sut, "a transaction's events arrive together, in op order, at one revision", async (s) => {
    const w = record(s, '/tx/', { afterRevision: await s.revision() });
    await s.put('/tx/b', 0);
    const { revision } = await s.txn({ then: [{ put: '/tx/c', value: 1 }, { delete: '/tx/b' }, { put: '/tx/a', value: 2 }] });
    await waitFor('four events', () => w.events.length === 4);
    w.stop();
    assert.deepEqual(w.keys().slice(1), ['put /tx/c', 'delete /tx/b', 'put /tx/a']);
    assert.ok(w.events.slice(1).every((e) => e.modRevision === revision));
  });

  storeTest(sut, 'list, then watch after its revision: concurrent writes are neither lost nor repeated', async (s, open) => {
    const writer = await open();
    for (let i = 0; i < 20; i++) await s.put(`/lw/${i}`, i);
    let stopWriting = false;
    let written = 0;
    const writing = (async () => {
      while (!stopWriting) {
        const i = written++;
        if (i % 3 === 2) await writer.delete(`/lw/${i - 1}`);
        else await writer.put(`/lw/${i % 40}`, { i });
        // SQLite answers without a turn of the event loop: let the watch (and the test's timers) run
        await new Promise((r) => setImmediate(r));
      }
    })();
    const listing = await s.list('/lw/');
    const mirror = new Map(listing.map((kv) => [kv.key, kv.value]));
    const w = record(s, '/lw/', { afterRevision: listing.revision });
    await waitFor('writes after the list', () => written > 60);
    stopWriting = true;
    await writing;
    const end = await writer.revision();
    await waitFor('the watch to reach the last write', () => w.events.some((e) => e.modRevision === end) || (w.events.at(-1)?.modRevision ?? 0) >= end);
    w.stop();
    const revs = revisionsOf(w.events);
    assert.ok(revs.every((r, i) => r > listing.revision && (i === 0 || r >= revs[i - 1])), 'in order, after the listing');
    for (const e of w.events) if (e.type === 'put') mirror.set(e.key, e.value);
    else mirror.delete(e.key);
    const actual = await s.list('/lw/');
    assert.deepEqual(mirror, new Map(actual.map((kv) => [kv.key, kv.value])));
  });

  storeTest(sut, 'a backlog of 2500 revisions replays in order, exactly once, then the watch follows', async (s) => {
    const start = await s.revision();
    await writeRevisions(s, '/bl/', 2500);
    const w = record(s, '/bl/', { afterRevision: start });
    await waitFor('the backlog', () => w.events.length >= 2500, 30_000);
    const live = await s.put('/bl/live', 'x');
    await waitFor('the live put', () => w.events.length >= 2501);
    w.stop();
    assertExactlyOnceInOrder(w.events, start + 1, live);
  });

  storeTest(sut, 'a watch resumes from the last revision it saw, on another handle, missing and repeating nothing', async (s, open) => {
    const start = await s.revision();
    const first = record(s, '/rs/', { afterRevision: start });
    await writeRevisions(s, '/rs/a', 10);
    await waitFor('ten events', () => first.events.length === 10);
    first.stop();
    const lastSeen = first.events.at(-1)!.modRevision;
    await writeRevisions(s, '/rs/b', 10);
    await s.close();
    const again = await open();
    const second = record(again, '/rs/', { afterRevision: lastSeen });
    await writeRevisions(again, '/rs/c', 5);
    await waitFor('the missed and the new events', () => second.events.length >= 15);
    second.stop();
    assertExactlyOnceInOrder([...first.events, ...second.events], start + 1, await again.revision());
  });

  storeTest(sut, 'a write through another handle reaches this handle\'s watch', async (s, open) => {
    const other = await open();
    const w = record(s, '/oh/', { afterRevision: await s.revision() });
    const rev = await other.put('/oh/k', 'from the other handle');
    await waitFor('the other handle\'s put', () => w.events.length === 1);
    w.stop();
    assert.deepEqual(w.events[0], { type: 'put', key: '/oh/k', value: 'from the other handle', modRevision: rev, createRevision: rev });
  });

  storeTest(sut, 'a watch from a compacted revision fails with Compacted; one from the compaction point works', async (s) => {
    const start = await s.revision();
    await writeRevisions(s, '/cp/', 10);
    const at = start + 6;
    await s.compact(at);
    const lost = record(s, '/cp/', { afterRevision: at - 2 });
    await waitFor('the Compacted error', () => lost.errors.length === 1);
    assert.equal(lost.errors[0].code, Codes.Compacted);
    assert.deepEqual(lost.events, []);
    lost.stop();
    const kept = record(s, '/cp/', { afterRevision: at - 1 });
    await waitFor('the kept history', () => kept.events.length === 5);
    kept.stop();
    assertExactlyOnceInOrder(kept.events, at, start + 10);
    assert.deepEqual(kept.errors, []);
  });

  storeTest(sut, 'cancelling from inside the callback stops delivery at once', async (s) => {
    const start = await s.revision();
    await writeRevisions(s, '/cc/', 5);
    const seen: WatchEvent[] = [];
    const stop = s.watch('/cc/', (e) => {
      seen.push(e);
      if (seen.length === 2) stop();
    }, { afterRevision: start });
    await waitFor('two events', () => seen.length >= 2);
    await s.put('/cc/more', 1);
    const probe = record(s, '/cc/more', { afterRevision: await s.revision() - 1 });
    await waitFor('the probe', () => probe.events.length === 1);
    probe.stop();
    assert.equal(seen.length, 2);
  });

  storeTest(sut, 'a watch goes on across a server restart mid-replay, missing and repeating nothing', async (s) => {
    const start = await s.revision();
    await writeRevisions(s, '/sr/a', 3000);
    let restarting: Promise<void> | undefined;
    const events: WatchEvent[] = [];
    const errors: BerthError[] = [];
    const stop = s.watch('/sr/', (e) => {
      events.push(e);
      // kill the server while the backlog is still being sent
      if (events.length === 1) restarting = sut.restartServer!();
    }, { afterRevision: start, onError: (e) => errors.push(e) });
    await waitFor('the restart to begin', () => restarting !== undefined);
    await restarting;
    await writeRevisions(s, '/sr/b', 20);
    const end = await s.revision();
    await waitFor('every revision', () => events.length >= end - start, 20_000);
    stop();
    assertExactlyOnceInOrder(events, start + 1, end);
    assert.deepEqual(errors, []);
  }, { skip: !sut.restartServer && 'an embedded store has no server to restart' });
}
