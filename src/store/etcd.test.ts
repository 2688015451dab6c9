// Runs the Store conformance suite against a real etcd server, plus what only a networked store must show.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startEtcd } from '../../test/helpers/etcd.js';
import { Codes } from '../lib/errors.js';
import { storeConformance } from './conformance/index.js';
import { EtcdStore, prefixEndBytes } from './etcd.js';
import type { Store } from './store.js';

const etcd = await startEtcd();
after(() => etcd.stop());

// Each test gets its own key prefix on the one server: a fresh, empty store.
const prefixes = new WeakMap<Store, string>();
let n = 0;
const connect = async (prefix: string) => {
  const s = await EtcdStore.connect({ endpoints: [etcd.endpoint], prefix });
  prefixes.set(s, prefix);
  return s;
};

storeConformance({
  name: `etcd (${etcd.binary})`,
  fresh: () => connect(`/t${n++}`),
  reopen: (s) => connect(prefixes.get(s)!),
  url: (s) => `etcd://${etcd.endpoint}${prefixes.get(s)}`,
  restartServer: () => etcd.restart(),
});

test('etcd: the range end of a prefix is the prefix with its last byte raised', () => {
  assert.deepEqual(prefixEndBytes(Buffer.from('/a/')), Buffer.from('/a0'));
  assert.deepEqual(prefixEndBytes(Buffer.from([0x61, 0xff, 0xff])), Buffer.from([0x62]));
  assert.deepEqual(prefixEndBytes(Buffer.from([0xff])), Buffer.from([0]));
});

test('etcd: connecting to an endpoint where nothing answers fails with ServiceUnavailable within the timeout', async () => {
  const t0 = Date.now();
  await assert.rejects(
    EtcdStore.connect({ endpoints: ['127.0.0.1:1'], requestTimeoutMs: 1000 }),
    (e: { code?: string; message?: string }) => e.code === Codes.ServiceUnavailable && /127\.0\.0\.1:1/.test(e.message ?? ''),
  );
  assert.ok(Date.now() - t0 < 5000);
});

test('etcd: a store opened while the server is away connects once it is back; reads wait through a restart', async () => {
  const opts = { endpoints: [etcd.endpoint], prefix: '/away', requestTimeoutMs: 30_000 };
  const s = await EtcdStore.connect(opts);
  let later: Promise<EtcdStore> | undefined;
  try {
    await s.put('/k', 1);
    await etcd.kill();
    later = EtcdStore.connect(opts);
    // a read is repeated through the broken connection, then waits for etcd
    const reading = s.get('/k');
    await etcd.start();
    assert.equal((await reading)?.value, 1);
    await (await later).put('/k', 2);
    assert.equal((await s.get('/k'))?.value, 2);
    await s.put('/k', 3);
    assert.equal((await (await later).get('/k'))?.value, 3);
  } finally {
    await s.close();
    await (await later)?.close();
  }
});

test('etcd: a key prefix keeps stores apart on one server', async () => {
  const a = await EtcdStore.connect({ endpoints: [etcd.endpoint], prefix: '/ns-a' });
  const b = await EtcdStore.connect({ endpoints: [etcd.endpoint], prefix: '/ns-b' });
  try {
    await a.put('/k', 'a');
    assert.equal(await b.get('/k'), undefined);
    assert.deepEqual((await a.list('/')).map((kv) => kv.key), ['/k']);
    assert.deepEqual(await b.list('/'), Object.assign([], { revision: (await b.list('/')).revision }));
  } finally {
    await a.close();
    await b.close();
  }
});
