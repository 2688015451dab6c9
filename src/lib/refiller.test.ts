// The pool refiller: one fill at a time, a pause after takes, nothing after stop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Refiller } from './refiller.js';

test('fills once at a time, again a pause after takes, and not once stopped', async () => {
  let fills = 0;
  let release!: () => void;
  const r = new Refiller(async () => {
    fills++;
    await new Promise<void>((res) => (release = res));
  }, 10);
  assert.equal(r.stopped, true);
  r.soon();
  await new Promise((res) => setTimeout(res, 30)); // well past the pause
  assert.equal(fills, 0, 'nothing before start');
  r.start();
  const joined = r.now();
  assert.equal(fills, 1, 'a fill under way is joined, not doubled');
  release();
  await joined;
  r.soon();
  r.soon();
  for (const deadline = Date.now() + 5000; fills < 2 && Date.now() < deadline;) await new Promise((res) => setTimeout(res, 5));
  assert.equal(fills, 2, 'one fill for two takes');
  release();
  const stopping = r.stop();
  assert.equal(r.stopped, true);
  await stopping;
  r.soon();
  await new Promise((res) => setTimeout(res, 30)); // well past the pause
  assert.equal(fills, 2, 'none once stopped');
});
