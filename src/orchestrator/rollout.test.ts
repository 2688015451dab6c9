// A rolling update step by step, the members' changes played by hand: batches beside the old members, the old ones
// removed once the new are healthy, pauses, in-place repoints, and the way back when a batch fails.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Member } from './members.js';
import { stepRollout, type Rollout, type RolloutConfig } from './rollout.js';

const P = '/p';
const m = (name: string, revision: number, health: Member['health'] = 'healthy', zone?: string) =>
  ({ name, revision, profileId: P, health, zone, faultDomain: 0, resourceGroup: 'rg', id: name, group: {} } as unknown as Member);
const update = (o: Partial<Rollout> = {}): Rollout => ({
  state: 'RollingForward', startTime: 't', lastAction: 'Start', lastActionTime: 't', profileId: P, toRevision: 2, fromProfileId: P, fromRevision: 1, ...o,
});
const cfg: RolloutConfig = { batchSize: 1, maxUnhealthyUpdatedPercent: 20, pauseMs: 0, inPlace: false, autoRollback: true, healthyDeadlineMs: 10_000 };
const layout = { zones: [], faultDomainCount: 1 };

test('replace: a batch is made beside the old members, old ones go once it is healthy, until all run the target', () => {
  let members = [m('a', 1), m('b', 1)];
  let u = update();
  let s = stepRollout(u, members, 2, layout, cfg, 0);
  assert.equal(s.create, 1, 'first batch');
  u = s.update;
  members = [...members, m('n1', 2, 'pending')];
  s = stepRollout(u, members, 2, layout, cfg, 1000);
  assert.equal(s.waitMs, 1000, 'waits for the batch');
  assert.equal(s.remove.length + s.create, 0);
  members = [m('a', 1), m('b', 1), m('n1', 2)];
  s = stepRollout(u, members, 2, layout, cfg, 2000);
  assert.equal(s.remove.length, 1, 'one old member goes');
  assert.equal(s.remove[0].revision, 1);
  u = s.update;
  assert.ok(u.lastBatchEndTime);
  members = members.filter((x) => x !== s.remove[0]);
  s = stepRollout(u, members, 2, layout, cfg, 3000);
  assert.equal(s.create, 1, 'second batch');
  u = s.update;
  members = [...members, m('n2', 2)];
  s = stepRollout(u, members, 2, layout, cfg, 4000);
  u = s.update;
  members = members.filter((x) => x !== s.remove[0]);
  s = stepRollout(u, members, 2, layout, cfg, 5000);
  assert.equal(s.update.state, 'Completed');
  assert.deepEqual(s.update.progress, { containerGroupsUpdateSummary: { succeededCount: 2, failedCount: 0, pendingCount: 0 } });
  assert.equal(s.event?.name, 'RollingUpdateCompleted');
});

test('the pause between batches is waited out', () => {
  const s = stepRollout(update({ batches: 1, lastBatchEndTime: new Date(1000).toISOString() }), [m('a', 1), m('n', 2)], 2, layout, { ...cfg, pauseMs: 60_000 }, 31_000);
  assert.equal(s.waitMs, 30_000);
  assert.equal(s.create, 0);
});

test('a batch that fails rolls back: its members go, and the updated ones are replaced at the old revision', () => {
  // failed at once: beyond maxUnhealthyUpdatedPercent
  let s = stepRollout(update({ batches: 1, batchStartTime: new Date(0).toISOString() }), [m('a', 1), m('b', 1), m('n', 2, 'failed')], 2, layout, cfg, 1000);
  assert.equal(s.update.state, 'RollingBack');
  assert.match(s.update.reason!, /1 of the 1 members at revision 2 failed/);
  assert.equal(s.update.error?.code, 'RollingUpdateFailed');
  s = stepRollout(s.update, [m('a', 1), m('b', 1), m('n', 2, 'failed')], 2, layout, cfg, 1100);
  assert.deepEqual(s.remove.map((x) => x.name), ['n'], 'the surplus member of the bad revision goes first');
  s = stepRollout(s.update, [m('a', 1), m('b', 1)], 2, layout, cfg, 1200);
  assert.equal(s.update.state, 'RolledBack');
  // never ready within the deadline: the same, with the deadline as the reason
  s = stepRollout(update({ batches: 1, batchStartTime: new Date(0).toISOString() }), [m('a', 1), m('n', 2, 'pending')], 1, layout, cfg, 11_000);
  assert.match(s.update.reason!, /did not become healthy within PT10S/);
  // members updated in an earlier batch go back one batch at a time
  s = stepRollout(update({ state: 'RollingBack', batches: 2 }), [m('x', 2), m('y', 2)], 2, layout, cfg, 0);
  assert.equal(s.create, 1);
});

test('within the deadline, pending members are waited for; without autoRollback a failure is Faulted and nothing moves', () => {
  const batch = update({ batches: 1, batchStartTime: new Date(0).toISOString() });
  assert.equal(stepRollout(batch, [m('a', 1), m('n', 2, 'pending')], 1, layout, cfg, 9000).waitMs, 1000);
  const s = stepRollout(batch, [m('a', 1), m('n', 2, 'failed')], 1, layout, { ...cfg, autoRollback: false }, 9000);
  assert.equal(s.update.state, 'Faulted');
  assert.equal(s.create + s.remove.length + s.repoint.length, 0);
});

test('in place: a batch of old members is repointed; it ends once they are healthy', () => {
  const c = { ...cfg, inPlace: true };
  let s = stepRollout(update(), [m('a', 1), m('b', 1)], 2, layout, c, 0);
  assert.equal(s.repoint.length, 1);
  assert.equal(s.create, 0);
  s = stepRollout(s.update, [m('a', 1), m(s.repoint[0].name, 2, 'pending')], 2, layout, c, 500);
  assert.equal(s.waitMs, 1000);
  s = stepRollout(s.update, [m('a', 1), m('b', 2)], 2, layout, c, 1000);
  assert.ok(s.update.lastBatchEndTime && !s.update.batchStartTime);
});

test('a batch never exceeds maxBatchPercent, unhealthy old members or not; they are the first to go', () => {
  let s = stepRollout(update(), [m('a', 1), m('b', 1, 'pending'), m('c', 1), m('d', 1)], 4, layout, cfg, 0);
  assert.equal(s.create, cfg.batchSize);
  s = stepRollout(s.update, [m('a', 1), m('b', 1, 'pending'), m('c', 1), m('d', 1), m('n', 2)], 4, layout, cfg, 1000);
  assert.deepEqual(s.remove.map((x) => x.name), ['b'], 'the one that serves nothing goes first');
});

test('members made to fill a gap during an update are on the clock of a batch: they too must become healthy by the deadline', () => {
  let s = stepRollout(update({ batches: 1 }), [m('a', 1)], 2, layout, cfg, 0);
  assert.equal(s.create, 1);
  assert.equal(s.update.batchStartTime, new Date(0).toISOString());
  s = stepRollout(s.update, [m('a', 1), m('n', 2, 'pending')], 2, layout, cfg, 20_000);
  assert.equal(s.update.state, 'RollingBack');
});
