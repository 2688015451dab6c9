// Conformance: admission as one transaction: two handles racing to admit conflicting groups never both win.
import assert from 'node:assert/strict';
import type { Store } from '../store.js';
import { storeTest, type StoreUnderTest } from './harness.js';

interface Usage {
  groups: number;
}

/**
 * Admits a group the way a replica must: the group, its host-port claim and the quota counter
 * change in one transaction that holds only if none of them changed since they were read.
 */
async function admit(s: Store, name: string, port: number, quota: number): Promise<'admitted' | 'port taken' | 'over quota'> {
  for (;;) {
    const usage = await s.get<Usage>('/usage/sub');
    const used = usage?.value.groups ?? 0;
    if (used >= quota) return 'over quota';
    const portKey = `/ports/${port}/TCP`;
    if (await s.get(portKey)) return 'port taken';
    const res = await s.txn({
      if: [
        { key: '/usage/sub', modRevision: usage?.modRevision ?? 0 },
        { key: portKey, exists: false },
        { key: `/groups/${name}`, exists: false },
      ],
      then: [
        { put: '/usage/sub', value: { groups: used + 1 } },
        { put: portKey, value: name },
        { put: `/groups/${name}`, value: { port } },
      ],
    });
    if (res.succeeded) return 'admitted';
    // Something it read changed: read again and decide again.
  }
}

export function admissionConformance(sut: StoreUnderTest) {
  storeTest(sut, 'two handles racing for one host port: exactly one admits, every time', async (s, open) => {
    const other = await open();
    for (let round = 0; round < 20; round++) {
      const port = 8000 + round;
      const results = await Promise.all([admit(s, `a${round}`, port, 1000), admit(other, `b${round}`, port, 1000)]);
      assert.deepEqual([...results].sort(), ['admitted', 'port taken'], `round ${round}: ${results}`);
      const owner = (await s.get<string>(`/ports/${port}/TCP`))!.value;
      assert.ok(await s.get(`/groups/${owner}`));
      assert.equal(await s.get(`/groups/${owner === `a${round}` ? `b${round}` : `a${round}`}`), undefined);
    }
  });

  storeTest(sut, 'a quota of 5 under 24 concurrent admissions from two handles admits exactly 5', async (s, open) => {
    const other = await open();
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => admit(i % 2 ? other : s, `q${i}`, 9000 + i, 5)),
    );
    assert.equal(results.filter((r) => r === 'admitted').length, 5);
    assert.equal(results.filter((r) => r === 'over quota').length, 19);
    assert.equal((await s.list('/groups/')).length, 5);
    assert.equal((await s.list('/ports/')).length, 5);
    assert.deepEqual((await s.get('/usage/sub'))?.value, { groups: 5 });
  });
}
