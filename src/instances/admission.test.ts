// Admission in the store transaction: two services on one store (a SQLite file with two handles, and a real etcd) race conflicting creates (and hosts' registrations for subnets), and exactly one wins each race.
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
import type { OverlaySettings } from './hosts/cluster-overlay.js';
import { hostSpecOf } from './host-specs.js';
import { InstancesService, type Quotas } from './service.js';
import { fakeDataPlane } from './testing.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-admission-'));
const etcd = await startEtcd();
after(async () => {
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ROUNDS = 10;
const OVERLAY: OverlaySettings = { clusterCidr: '10.252.0.0/16', hostPrefix: 24, vni: 1, port: 4789 };

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

async function replicas(open: () => Promise<Store>, quotas?: Quotas, overlay?: OverlaySettings): Promise<Replicas> {
  const stores = [await open(), await open()];
  const [a, b] = stores.map((s) => new InstancesService(s, () => fakeDataPlane(), { quotas, overlay }));
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

    it("racing first groups of new subscriptions: each subscription gets a tag of its own, which all its groups carry to their hosts", async () => {
      const r = await replicas(open('tags'), undefined, OVERLAY);
      const subs = Array.from({ length: ROUNDS }, (_, i) => `tagged${i}`);
      const results = await Promise.all(subs.flatMap((sub) => [r.a, r.b].map((svc, j) => outcome(svc.createOrUpdate({ subscriptionId: sub, resourceGroup: 'rg', name: `g${j}` }, { spec: group().spec, tags: {} })))));
      assert.deepEqual(new Set(results), new Set(['admitted']));
      const tagOf = new Map<string, number>();
      for (const sub of subs) {
        const tags = (await r.a.list(sub)).views.map((v) => hostSpecOf(v.record).spec.network.tag);
        assert.equal(tags.length, 2);
        assert.ok(tags[0] !== undefined && tags[0] === tags[1], `${sub}: one tag for both groups (${tags})`);
        tagOf.set(sub, tags[0]!);
      }
      assert.equal(new Set(tagOf.values()).size, ROUNDS, `a tag per subscription: ${[...tagOf.values()]}`);
      // a later group keeps its subscription's tag
      await r.b.createOrUpdate({ subscriptionId: subs[0], resourceGroup: 'rg2', name: 'later' }, { spec: group().spec, tags: {} });
      assert.equal((await r.b.get({ subscriptionId: subs[0], resourceGroup: 'rg2', name: 'later' })).record.segmentTag, tagOf.get(subs[0]));
      await close(r);
    });

    it('racing registrations of new hosts: each host gets a subnet of its own, kept when it registers again; none left, a clear refusal', async () => {
      const r = await replicas(open('subnets'), undefined, { ...OVERLAY, clusterCidr: '10.252.0.0/24', hostPrefix: 27 });
      const reg = (name: string) => ({ name, address: '10.250.0.9', labels: {}, allocatable: { cpu: 1, memoryGB: 1 }, agentVersion: 't' });
      const hosts = Array.from({ length: 8 }, (_, i) => `h${i}`);
      // the first asks ahead of its registration (as an agent does before it makes its network)
      const asked = await r.a.gateway.overlay('h0');
      const terms = await Promise.all(hosts.map((h, i) => (i % 2 ? r.a : r.b).gateway.register(h, reg(h))));
      const subnets = terms.map((t) => t.overlay!.subnet);
      assert.equal(new Set(subnets).size, 8, `eight /27s: ${subnets}`);
      assert.equal(subnets[0], asked!.subnet, 'the registration keeps the subnet asked for ahead');
      assert.deepEqual(terms[3].overlay, { clusterCidr: '10.252.0.0/24', subnet: subnets[3], vni: OVERLAY.vni, port: OVERLAY.port });
      assert.equal((await r.b.gateway.register('h3', reg('h3'))).overlay!.subnet, subnets[3], 'again: the same');
      assert.equal(await outcome(r.a.gateway.register('h8', reg('h8'))), 'ClusterSubnetsExhausted');
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
