// The informer against a real berth server: callbacks for creates, updates and deletes; a cut, a frozen and a missing watch stream (a proxy in front of berth).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../../test/helpers/assertions.js';
import { endE2e, group, startBerth, type BerthProcess } from '../../test/helpers/berth.js';
import { buildImage } from '../../test/helpers/images.js';
import { startProxy, type FaultyProxy } from '../../test/helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../../test/helpers/registry.js';
import { ContainerInstanceClient } from './client.js';
import { StaticTokenCredential } from './credentials.js';
import type { InformerOptions } from './informer.js';
import type { ContainerGroup } from './models.js';

const BRIDGE = 'btinform0';
const SUB = 'informer-sub';
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;
let direct: ContainerInstanceClient;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'informer', '1')).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.82.0/24' });
  direct = new ContainerInstanceClient({ endpoint: berth.url, subscriptionId: SUB, credential: new StaticTokenCredential(berth.token), pollIntervalMs: 50 });
});
after(async () => {
  direct?.close();
  await endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE });
});

const sleeper = () => group(image, { command: ['sleep', '1000'], cpu: 0.1, memoryInGB: 0.1 }) as ContainerGroup;


/** An informer on one resource group, reached through `endpoint`, recording what it tells. */
function watching(endpoint: string, resourceGroup: string, o: InformerOptions = {}) {
  const client = new ContainerInstanceClient({ endpoint, subscriptionId: SUB, credential: new StaticTokenCredential(berth.token) });
  const events: string[] = [];
  const informer = client.informer({
    resourceGroup,
    onAdd: (g) => events.push(`add ${g.name}`),
    onUpdate: (old, g) => events.push(`update ${g.name}${JSON.stringify(old.tags) !== JSON.stringify(g.tags) ? ` tags=${JSON.stringify(g.tags ?? {})}` : ''}`),
    onDelete: (g) => events.push(`delete ${g.name}`),
    ...o,
  });
  return {
    informer, events,
    saw: (event: string) => until(`"${event}" (seen: ${events.join(', ')})`, () => events.includes(event)),
    async stop() {
      await informer.stop();
      client.close();
    },
  };
}

describe('container group informer', () => {
  it('lists, then follows creates, updates and deletes through the change stream, caching each group', async () => {
    await direct.containerGroups.createOrUpdate('inf', 'early', sleeper());
    const w = watching(berth.url, 'inf');
    w.informer.start();
    await w.informer.synced();
    assert.equal(w.informer.mode, 'watch');
    assert.deepEqual(w.events, ['add early'], 'the first list');
    assert.equal(w.informer.get('inf', 'early')?.properties.provisioningState, 'Succeeded');

    await direct.containerGroups.beginCreateOrUpdate('inf', 'later', sleeper());
    await w.saw('add later');
    await until('later Running in the cache', () => w.informer.get('inf', 'later')?.properties.instanceView?.state === 'Running');
    await direct.containerGroups.updateTags('inf', 'later', { v: '2' });
    await w.saw('update later tags={"v":"2"}');
    assert.deepEqual(w.informer.get('INF', 'later')?.tags, { v: '2' }, 'resource group names match without case, as in ARM');
    await direct.containerGroups.delete('inf', 'later');
    await w.saw('delete later');
    assert.equal(w.informer.get('inf', 'later'), undefined);
    // a group of another resource group is not this informer's
    await direct.containerGroups.createOrUpdate('elsewhere', 'other', sleeper());
    assert.deepEqual(w.informer.list().map((g) => g.name), ['early']);
    assert.equal(w.informer.stats.lists, 1, 'one list: every change came through the stream');
    await w.stop();
    await direct.containerGroups.delete('elsewhere', 'other');
  });

  it('lists again when its stream is cut, and so learns what changed while it could not connect', async () => {
    const proxy = await startProxy(berth.url);
    const w = watching(proxy.url, 'cut', { minBackoffMs: 50, maxBackoffMs: 200 });
    try {
      w.informer.start();
      await w.informer.synced();
      const connects = w.informer.stats.connects;
      proxy.hold();
      proxy.cutStreams();
      // made while the informer cannot reach berth: no stream carries its change
      await direct.containerGroups.createOrUpdate('cut', 'during', sleeper());
      assert.ok(!w.events.includes('add during'));
      proxy.release();
      await w.saw('add during');
      assert.ok(w.informer.stats.connects > connects, 'it reconnected');
      assert.ok(w.informer.stats.lists >= 2, 'and listed again');
    } finally {
      await w.stop();
      await proxy.stop();
    }
    await direct.containerGroups.delete('cut', 'during');
  });

  it('takes a stream silent past the heartbeat deadline for dead, and lists again', async () => {
    const proxy = await startProxy(berth.url);
    const errors: string[] = [];
    const w = watching(proxy.url, 'frozen', { heartbeatTimeoutMs: 1500, minBackoffMs: 50, onError: (e) => errors.push(e.message) });
    try {
      w.informer.start();
      await w.informer.synced();
      proxy.freezeStreams();
      // the stream still stands, but carries nothing: the CHANGED line for this group never arrives on it
      await direct.containerGroups.createOrUpdate('frozen', 'unheard', sleeper());
      await w.saw('add unheard');
      assert.ok(errors.some((m) => /no heartbeat on the watch stream for 1500 ms/.test(m)), errors.join('; '));
    } finally {
      await w.stop();
      await proxy.stop();
    }
    await direct.containerGroups.delete('frozen', 'unheard');
  });

  it('lists on a timer from an endpoint without the watch extension', async () => {
    // As ACI does: the list answers `?watch=true` like any list.
    const proxy = await startProxy(berth.url, { rewrite: (p) => p.replace(/([?&])watch=true&?/, '$1') });
    const w = watching(proxy.url, 'plain', { pollIntervalMs: 200 });
    try {
      w.informer.start();
      await w.informer.synced();
      await direct.containerGroups.createOrUpdate('plain', 'polled', sleeper());
      await w.saw('add polled');
      assert.equal(w.informer.mode, 'poll');
      assert.equal(proxy.seen.filter((l) => l.includes('watch=true')).length, 1, 'it asked for a stream once, then stopped asking');
      await direct.containerGroups.delete('plain', 'polled');
      await w.saw('delete polled');
    } finally {
      await w.stop();
      await proxy.stop();
    }
  });

  it('lists again every resync period while the stream is healthy', async () => {
    const w = watching(berth.url, 'resync', { resyncMs: 200 });
    try {
      w.informer.start();
      await w.informer.synced();
      await until('three lists', () => w.informer.stats.lists >= 3);
      assert.equal(w.informer.stats.connects, 1);
    } finally {
      await w.stop();
    }
  });
});
