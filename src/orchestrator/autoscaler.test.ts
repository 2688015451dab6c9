// The HPA's arithmetic: ratio to the target, tolerance, missing and unready members, the scale-up limit and the
// stabilisation windows (one noisy load must not flap the count).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, recommend, settingsOf, type Recommendation } from './autoscaler.js';

const s = settingsOf({ minCount: 1, maxCount: 10, targetCpuUtilizationPercent: 50 });
const ready = (...u: number[]) => u.map((utilizationPercent) => ({ ready: true, utilizationPercent }));

test('the count follows utilisation over target, rounded up; within 10% nothing changes', () => {
  assert.equal(recommend(1, ready(180), s).count, 4);
  assert.equal(recommend(4, ready(45, 50, 55, 50), s).count, 4);
  assert.equal(recommend(4, ready(54, 54, 54, 54), s).count, 4, 'ratio 1.08 is within the tolerance');
  assert.equal(recommend(4, ready(10, 10, 10, 10), s).count, 1);
});

test('members without metrics hold a scale-down back, unready ones a scale-up', () => {
  // two at 10%, one unmeasured: counted at the target when scaling down
  assert.equal(recommend(3, [...ready(10, 10), { ready: true }], s).count, 2);
  // one at 200%, three not ready (0%): 200/4 = 50% of target -> within the tolerance
  assert.equal(recommend(4, [...ready(200), { ready: false }, { ready: false }, { ready: false }], s).count, 4);
  assert.equal(recommend(2, [{ ready: false }, { ready: false }], s).count, 2, 'nothing measured: nothing changes');
});

test('scale-ups at most double (or add four) per period; scale-downs wait for the highest recommendation of the window', () => {
  const none: Recommendation[] = [];
  assert.equal(decide(1, 10, none, s, 0).count, 5);
  assert.equal(decide(4, 10, none, s, 0).count, 8);
  let history: Recommendation[] = [];
  let count = 4;
  // a load that asks for 4, then drops: the count stays for the 5-minute window, then falls
  for (let t = 0; t <= 600_000; t += 15_000) {
    const rec = t < 60_000 ? 4 : 1;
    const d = decide(count, rec, history, s, t);
    history = d.history;
    count = d.count;
    if (t < 60_000 + 300_000) assert.equal(count, 4, `at ${t / 1000} s`);
  }
  assert.equal(count, 1);
});

test('a constant load with ±10% noise never changes the count', () => {
  let history: Recommendation[] = [];
  let count = 4;
  let seed = 7;
  const noise = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 0.2 - 0.1;
  // the load asks for 3.6 members' worth at the target: 45% each on 4
  for (let t = 0; t < 300_000; t += 15_000) {
    const rec = recommend(count, ready(...[0, 1, 2, 3].map(() => 45 * (1 + noise()))), s).count;
    const d = decide(count, rec, history, s, t);
    history = d.history;
    assert.equal(d.count, 4, `at ${t / 1000} s (recommended ${rec})`);
  }
});
