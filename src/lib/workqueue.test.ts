// Unit tests of the work queue on a fake clock; the Kubernetes connector's suite (test/k8s) runs it for real.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { againAfter, done, WorkQueue, type Clock, type ReconcileResult } from './workqueue.js';

/** Time that moves only when the test moves it. */
class FakeClock implements Clock {
  private t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = this.next++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown) {
    this.timers.delete(handle as number);
  }
  get pending() {
    return [...this.timers.values()].map((t) => t.at - this.t).sort((a, b) => a - b);
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
  }
}

/** A reconcile the test drives: each run waits until the test ends it with a result or an error. */
function controlled() {
  const runs: { key: string; finish: (r?: ReconcileResult | Error) => void }[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const perKey = new Map<string, number>();
  let overlap = false;
  const reconcile = (key: string) => new Promise<ReconcileResult>((resolve, reject) => {
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    perKey.set(key, (perKey.get(key) ?? 0) + 1);
    if (perKey.get(key)! > 1) overlap = true;
    runs.push({
      key,
      finish: (r = done) => {
        concurrent--;
        perKey.set(key, perKey.get(key)! - 1);
        if (r instanceof Error) reject(r);
        else resolve(r);
      },
    });
  });
  return { reconcile, runs, stats: () => ({ maxConcurrent, overlap }) };
}

/** Lets the queue's promise continuations run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('WorkQueue', () => {
  it('coalesces adds of a waiting key into one run, in the order keys were first added', async () => {
    const c = controlled();
    const q = new WorkQueue(c.reconcile, { concurrency: 1, clock: new FakeClock() });
    q.add('a');
    q.add('b');
    q.add('b');
    q.add('c');
    q.add('b');
    assert.deepEqual(c.runs.map((r) => r.key), ['a']);
    assert.equal(q.length, 2);
    for (let i = 0; i < 3; i++) {
      c.runs[i].finish();
      await settle();
    }
    assert.deepEqual(c.runs.map((r) => r.key), ['a', 'b', 'c']);
    await q.idle();
  });

  it('never runs one key twice at once; an add during a run makes it run once more after it', async () => {
    const c = controlled();
    const q = new WorkQueue(c.reconcile, { concurrency: 4, clock: new FakeClock() });
    q.add('a');
    q.add('a'); // waiting: coalesced with the first
    await settle();
    assert.equal(c.runs.length, 1);
    q.add('a'); // running: marked to run again
    q.add('a');
    await settle();
    assert.equal(c.runs.length, 1, 'not a second concurrent run of a');
    c.runs[0].finish();
    await settle();
    assert.equal(c.runs.length, 2, 'once more after the run, however many adds came meanwhile');
    c.runs[1].finish();
    await q.idle();
    assert.equal(c.runs.length, 2);
    assert.equal(c.stats().overlap, false);
  });

  it('runs at most `concurrency` distinct keys at once', async () => {
    const c = controlled();
    const q = new WorkQueue(c.reconcile, { concurrency: 3, clock: new FakeClock() });
    for (const k of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) q.add(k);
    await settle();
    assert.equal(c.runs.length, 3);
    assert.equal(q.active, 3);
    assert.equal(q.length, 4);
    for (let finished = 0; finished < 7; finished++) {
      c.runs[finished].finish();
      await settle();
      assert.ok(q.active <= 3);
    }
    await q.idle();
    assert.equal(c.runs.length, 7);
    assert.equal(c.stats().maxConcurrent, 3);
  });

  it('runs a key again after the delay its reconcile asked for', async () => {
    const clock = new FakeClock();
    const c = controlled();
    const q = new WorkQueue(c.reconcile, { clock });
    q.add('a');
    c.runs[0].finish(againAfter(5000));
    await settle();
    assert.deepEqual(clock.pending, [5000]);
    clock.advance(4999);
    assert.equal(c.runs.length, 1);
    clock.advance(1);
    assert.equal(c.runs.length, 2);
    c.runs[1].finish(done);
    await q.idle();
    assert.deepEqual(clock.pending, []);
  });

  it('retries a failing key with exponential backoff, capped, and starts over after a success', async () => {
    const clock = new FakeClock();
    const c = controlled();
    const errors: [string, number][] = [];
    const q = new WorkQueue(c.reconcile, { clock, baseBackoffMs: 100, maxBackoffMs: 1000, onError: (k, _e, ms) => errors.push([k, ms]) });
    q.add('a');
    for (let i = 0; i < 6; i++) {
      c.runs[i].finish(new Error('boom'));
      await settle();
      clock.advance(clock.pending[0]);
    }
    assert.deepEqual(errors.map(([, ms]) => ms), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(q.failuresOf('a'), 6);
    c.runs[6].finish(done);
    await settle();
    assert.equal(q.failuresOf('a'), 0);
    q.add('a');
    c.runs[7].finish(new Error('again'));
    await settle();
    assert.deepEqual(errors.at(-1), ['a', 100], 'the backoff starts over after a success');
    await q.shutdown();
  });

  it('keeps the earliest of several delayed adds; a run that starts answers for the delays before it', async () => {
    const clock = new FakeClock();
    const c = controlled();
    const q = new WorkQueue(c.reconcile, { clock });
    q.addAfter('a', 1000);
    q.addAfter('a', 3000);
    assert.deepEqual(clock.pending, [1000]);
    q.addAfter('a', 500);
    assert.deepEqual(clock.pending, [500]);
    clock.advance(500);
    assert.equal(c.runs.length, 1);
    c.runs[0].finish(done);
    await settle();

    // A run triggered by an event meanwhile decides: `done` leaves no timer behind.
    q.addAfter('b', 1000);
    q.add('b');
    await settle();
    assert.deepEqual(clock.pending, []);
    c.runs[1].finish(done);
    await settle();
    clock.advance(2000);
    assert.equal(c.runs.length, 2);
    // A delayed add made while the key runs is kept.
    q.add('c');
    await settle();
    q.addAfter('c', 700);
    c.runs[2].finish(done);
    await settle();
    assert.deepEqual(clock.pending, [700]);
    clock.advance(700);
    assert.equal(c.runs.length, 4);
    c.runs[3].finish(done);
    await q.idle();
  });

  it('shutdown stops taking work, drops waiting and delayed keys, and waits for runs in flight', async () => {
    const clock = new FakeClock();
    const c = controlled();
    const q = new WorkQueue(c.reconcile, { clock, concurrency: 2 });
    q.add('a');
    q.add('b');
    q.add('c');
    q.addAfter('d', 100);
    await settle();
    let stopped = false;
    const stopping = q.shutdown().then(() => (stopped = true));
    q.add('e');
    await settle();
    assert.equal(stopped, false, 'waits for a and b');
    c.runs[0].finish(againAfter(10));
    c.runs[1].finish(new Error('late failure'));
    await stopping;
    clock.advance(1000);
    await settle();
    assert.deepEqual(c.runs.map((r) => r.key), ['a', 'b'], 'nothing ran after shutdown began');
    assert.deepEqual(clock.pending, []);
  });

  it('takes a reconcile that throws synchronously as a failure', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const q = new WorkQueue(((key: string) => {
      calls++;
      if (calls === 1) throw new Error(`no ${key}`);
      return Promise.resolve(done);
    }) as never, { clock, baseBackoffMs: 50 });
    q.add('x');
    await q.idle();
    assert.equal(q.failuresOf('x'), 1);
    clock.advance(50);
    await q.idle();
    assert.equal(calls, 2);
    assert.equal(q.failuresOf('x'), 0);
  });

  it('runs on real timers: delayed adds fire and failures are retried', async () => {
    const seen: string[] = [];
    let failOnce = true;
    const q = new WorkQueue(async (key) => {
      seen.push(key);
      if (key === 'flaky' && failOnce) {
        failOnce = false;
        throw new Error('transient');
      }
      return key === 'poll' && seen.filter((k) => k === 'poll').length < 3 ? againAfter(5) : done;
    }, { baseBackoffMs: 5 });
    q.add('poll');
    q.add('flaky');
    const deadline = Date.now() + 5000;
    while ((seen.filter((k) => k === 'poll').length < 3 || seen.filter((k) => k === 'flaky').length < 2) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    assert.equal(seen.filter((k) => k === 'poll').length, 3);
    assert.equal(seen.filter((k) => k === 'flaky').length, 2);
    await q.shutdown();
  });
});
