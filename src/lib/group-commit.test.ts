// GroupCommit: what arrives while a commit runs is committed together; a failed batch is retried item by item.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GroupCommit } from './group-commit.js';

test('items submitted while a commit runs go into the next commit, in order', async () => {
  const commits: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const gc = new GroupCommit<number>(async (items) => {
    commits.push(items);
    if (commits.length === 1) await gate;
  });
  const first = gc.submit(1);
  const rest = [2, 3, 4].map((n) => gc.submit(n));
  release();
  await Promise.all([first, ...rest]);
  assert.deepEqual(commits, [[1], [2, 3, 4]]);
});

test('a failing batch is committed again item by item, so only the bad item fails', async () => {
  const commits: string[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const gc = new GroupCommit<string>(async (items) => {
    commits.push(items);
    if (items[0] === 'first') await gate;
    if (items.includes('bad')) throw new Error(`refused ${items.join(',')}`);
  });
  const first = gc.submit('first');
  const results = Promise.allSettled(['a', 'bad', 'b'].map((x) => gc.submit(x)));
  release();
  await first;
  assert.deepEqual((await results).map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
  assert.deepEqual(commits, [['first'], ['a', 'bad', 'b'], ['a'], ['bad'], ['b']]);
});
