// Admission in the store transaction: two services on one store (a SQLite file with two handles, and a real etcd) race conflicting creates, and exactly one wins each race.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startEtcd } from '../../test/helpers/etcd.js';
import { isBerthError } from '../lib/errors.js';
import { EtcdStore } from '../store/etcd.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { parseGroupSpec } from './model.js';
import { InstancesService, type Quotas } from './service.js';
import { fakeDataPlane } from './testing.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-admission-'));
const etcd = await startEtcd();
after(async () => {
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ROUNDS = 10;

/** A group publishing `port` on its host, or with a DNS label on its own address (Private: no host port). */
const group = (o: { port?: number; label?: string } = {}) => parseGroupSpec({
  location: 'local',
  properties: {
    containers: [{ name: 'c', properties: { image: 'i:1', ports: [{ port: o.port ?? 80 }], resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } } }],
    ...((o.port || o.label) && { ipAddress: { type: o.port ? 'Public' : 'Private', ports: [{ port: o.port ?? 80 }], ...(o.label && { dnsNameLabel: o.label }) } }),
  },
});

const outcome = (p: Promise<unknown>) => p.then(() => 'admitted', (e) => (isBerthError(e) ? e.code : String(e)));

/** Two services (two replicas) over two handles on one store. */
type Replicas = { a: InstancesService; b: InstancesService; stores: Store[] };

async function replicas(open: () => Promise<Store>, quotas?: Quotas): Promise<Replicas> {
  const stores = [await open(), await open()];
  const [a, b] = stores.map((s) => new InstancesService(s, () => fakeDataPlane(), { quotas }));
  await a.start();
  await b.start();
  return { a, b, stores };
}

async function close(r: Replicas) {
  await r.a.stop();
  await r.b.stop();
  for (const s of r.stores) await s.close();
}

function races(name: string, open: (tag: string) => () => Promise<Store>) {
  describe(`two replicas on ${name}`, () => {
    it('racing for one DNS label: exactly one gets it, every time', async () => {
      const r = await replicas(open('dns'));
      for (let i = 0; i < ROUNDS; i++) {
        const results = await Promise.all([
          outcome(r.a.createOrUpdate({ subscriptionId: 's1', resourceGroup: 'rg', name: `a${i}` }, { spec: group({ label: `label${i}x` }).spec, tags: {} })),
          outcome(r.b.createOrUpdate({ subscriptionId: 's2', resourceGroup: 'rg', name: `b${i}` }, { spec: group({ label: `label${i}x` }).spec, tags: {} })),
        ]);
        assert.deepEqual(results.sort(), ['DnsNameLabelAlreadyTaken', 'admitted'], `round ${i}`);
      }
      assert.equal((await r.a.list('s1')).views.length + (await r.b.list('s2')).views.length, ROUNDS);
      await close(r);
    });

    it('racing for one host port: exactly one publishes it, every time', async () => {
      const r = await replicas(open('port'));
      for (let i = 0; i < ROUNDS; i++) {
        const results = await Promise.all([
          outcome(r.a.createOrUpdate({ subscriptionId: 's1', resourceGroup: 'rg', name: `a${i}` }, { spec: group({ port: 9000 + i }).spec, tags: {} })),
          outcome(r.b.createOrUpdate({ subscriptionId: 's2', resourceGroup: 'rg', name: `b${i}` }, { spec: group({ port: 9000 + i }).spec, tags: {} })),
        ]);
        assert.deepEqual(results.sort(), ['PortAlreadyInUse', 'admitted'], `round ${i}`);
      }
      await close(r);
    });

    it('racing for the last unit of a quota: exactly one takes it, every time', async () => {
      const r = await replicas(open('quota'), { containerGroups: 3, standardCores: 100 });
      const create = (svc: InstancesService, name: string) => outcome(svc.createOrUpdate({ subscriptionId: 'sub', resourceGroup: 'rg', name }, { spec: group().spec, tags: {} }));
      assert.deepEqual([await create(r.a, 'one'), await create(r.b, 'two')], ['admitted', 'admitted']);
      for (let i = 0; i < ROUNDS; i++) {
        const results = await Promise.all([create(r.a, `a${i}`), create(r.b, `b${i}`)]);
        assert.deepEqual([...results].sort(), ['ContainerGroupQuotaReached', 'admitted'], `round ${i}`);
        assert.deepEqual((await r.b.usage('sub', 'local')).containerGroups, { current: 3, limit: 3 });
        // the winner goes (a deleting group counts until its host reports it gone), and frees the unit again
        const winner = results[0] === 'admitted' ? { svc: r.a, name: `a${i}` } : { svc: r.b, name: `b${i}` };
        const ref = { subscriptionId: 'sub', resourceGroup: 'rg', name: winner.name };
        const { uid } = (await winner.svc.get(ref)).record;
        await winner.svc.delete(ref);
        assert.equal(await create(r.a, 'meanwhile'), 'ContainerGroupQuotaReached');
        await r.b.gateway.reportRemoved('local', uid);
      }
      assert.deepEqual((await r.a.list('sub')).views.map((v) => v.record.name), ['one', 'two']);
      await close(r);
    });
  });
}

let n = 0;
races('one SQLite file (two handles)', () => {
  const path = join(dir, `s${n++}.db`);
  return async () => new SqliteStore(path);
});
races(`one etcd (${etcd.binary})`, (tag) => {
  const prefix = `/race-${tag}-${n++}`;
  return () => EtcdStore.connect({ endpoints: [etcd.endpoint], prefix });
});
