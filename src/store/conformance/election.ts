// Conformance: leader election on leases and transactions: one leader at a time, handed over on resign, on crash and on kill -9.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Election, leadWhileElected, type Leader, type Leadership } from '../election.js';
import { storeTest, waitFor, type StoreUnderTest } from './harness.js';

const TTL = 2;
const campaigner = fileURLToPath(new URL('../../../test/helpers/campaigner.js', import.meta.url));

/** Resolves with how long `p` took, or fails after `ms`. */
async function within<T>(what: string, p: Promise<T>, ms: number): Promise<{ value: T; took: number }> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)));
  try {
    return { value: await Promise.race([p, timeout]), took: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

export function electionConformance(sut: StoreUnderTest) {
  storeTest(sut, 'election: one leader at a time; resigning hands over to the next candidate', async (s) => {
    const election = new Election(s, '/elections/e/');
    const seen: (Leader | undefined)[] = [];
    const stopObserving = election.observe((l) => seen.push(l));
    await waitFor('the first observation', () => seen.length === 1);
    assert.equal(seen[0], undefined);
    const a = await election.campaign('a', { ttlSeconds: TTL });
    assert.equal((await election.leader())?.key, a.key);
    let bLeads = false;
    const b = election.campaign('b', { ttlSeconds: TTL }).then((l) => ((bLeads = true), l));
    await waitFor('b to be a candidate', async () => (await s.list('/elections/e/')).length === 2);
    assert.equal(bLeads, false);
    await a.resign();
    assert.ok(a.signal.aborted);
    const leaderB = await b;
    assert.equal((await election.leader())?.value, 'b');
    await waitFor('the observer to see b', () => seen.length === 3);
    assert.deepEqual(seen.map((l) => l?.value), [undefined, 'a', 'b']);
    await leaderB.resign();
    await waitFor('no leader', () => seen.length === 4);
    assert.equal(seen[3], undefined);
    stopObserving();
  });

  storeTest(sut, 'election: a withdrawn candidacy leaves nothing behind', async (s) => {
    const election = new Election(s, '/elections/w/');
    const a = await election.campaign('a', { ttlSeconds: TTL });
    const withdraw = new AbortController();
    const b = election.campaign('b', { ttlSeconds: TTL, signal: withdraw.signal });
    await waitFor('b to be a candidate', async () => (await s.list('/elections/w/')).length === 2);
    withdraw.abort(new Error('withdrawn'));
    await assert.rejects(b, /withdrawn/);
    await waitFor('b to be gone', async () => (await s.list('/elections/w/')).length === 1);
    await a.resign();
    assert.equal(await election.leader(), undefined);
  });

  storeTest(sut, "election: when the leader's store goes away, the next leads within the TTL and the old leader's fence fails", async (s, open) => {
    const crashed = await open();
    const old = await new Election(crashed, '/elections/c/').campaign('old', { ttlSeconds: TTL });
    assert.equal((await s.txn({ if: [old.fence], then: [{ put: '/fenced', value: 'old' }] })).succeeded, true);
    const next = new Election(s, '/elections/c/').campaign('next', { ttlSeconds: TTL });
    await waitFor('the follower to be a candidate', async () => (await s.list('/elections/c/')).length === 2);
    await crashed.close(); // no resign, no revoke: its lease just stops being renewed
    assert.ok(old.signal.aborted);
    const { value: leader, took } = await within('the handover', next, (TTL + 3) * 1000);
    // a crash is not a resignation: the old lease had to run out (it was renewed at most a third of its TTL before)
    assert.ok(took >= 1000, `handed over after ${took} ms: the closed store revoked its lease`);
    assert.equal((await s.txn({ if: [old.fence], then: [{ put: '/fenced', value: 'stale' }] })).succeeded, false);
    assert.equal((await s.txn({ if: [leader.fence], then: [{ put: '/fenced', value: 'new' }] })).succeeded, true);
    assert.equal((await s.get('/fenced'))?.value, 'new');
    await leader.resign();
  });

  storeTest(sut, 'election: kill -9 of the leader process hands leadership over within its TTL', async (s) => {
    const child = spawn(process.execPath, [campaigner, sut.url(s), '/elections/k/', String(TTL), 'child'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let follower: Leadership | undefined;
    try {
      const line = await within('the child to lead', new Promise<string>((resolve, reject) => {
        child.stdout.once('data', (d: Buffer) => resolve(d.toString()));
        child.once('exit', (code) => reject(new Error(`the campaigner exited with ${code}`)));
      }), 20_000);
      const childLeadership = JSON.parse(line.value) as { key: string; createRevision: number };
      const election = new Election(s, '/elections/k/');
      assert.equal((await election.leader())?.value, 'child');
      const campaign = election.campaign('parent', { ttlSeconds: TTL });
      await waitFor('the parent to be a candidate', async () => (await s.list('/elections/k/')).length === 2);
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid!, 'SIGKILL');
      await exited;
      const handover = await within('the handover after kill -9', campaign, (TTL + 2) * 1000);
      follower = handover.value;
      assert.equal((await election.leader())?.value, 'parent');
      const stale = { key: childLeadership.key, createRevision: childLeadership.createRevision };
      assert.equal((await s.txn({ if: [stale], then: [{ put: '/fenced', value: 'stale' }] })).succeeded, false);
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
      await follower?.resign();
    }
  });

  storeTest(sut, 'election: a replica serves while it leads; closing stops what it served and hands over; a serve that fails lets another lead', async (s) => {
    const election = new Election(s, '/elections/w/');
    const served: string[] = [];
    const logged: string[] = [];
    const replica = (name: string, fail = false) => {
      const closing = new AbortController();
      const done = leadWhileElected(election, { value: name, ttlSeconds: TTL, signal: closing.signal, role: 'serve', log: (m) => logged.push(`${name}: ${m}`) }, async () => {
        if (fail) throw new Error('cannot serve');
        served.push(`${name} starts`);
        return async () => void served.push(`${name} stops`);
      });
      return { close: () => (closing.abort(), done) };
    };
    const broken = replica('broken', true);
    await waitFor('the broken replica to have led and failed', () => logged.includes('broken: could not serve: cannot serve'));
    const a = replica('a');
    await waitFor('a to serve', () => served.includes('a starts'));
    await broken.close();
    const b = replica('b');
    await waitFor('b to be a candidate', async () => (await s.list('/elections/w/')).length === 2);
    assert.deepEqual(served, ['a starts'], 'one at a time');
    await a.close();
    await waitFor('b to serve once a has stopped', () => served.includes('b starts'));
    assert.deepEqual(served, ['a starts', 'a stops', 'b starts']);
    await b.close();
    assert.deepEqual(served.at(-1), 'b stops');
    assert.equal((await s.list('/elections/w/')).length, 0, 'no candidacy left');
  });
}
