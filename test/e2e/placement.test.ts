// Placement rules on a real cluster (scripts/dev-cluster.sh up 3, one host per zone): required anti-affinity puts 3 groups
// on 3 hosts and a 4th waits Pending with FailedScheduling's reason until room appears, affinity puts a group beside
// the one it names, zones pick the host, every group shows its host and zone, and the official SDK reads them unchanged;
// a port a host's own process listens on keeps groups that publish it off that host, from what the host reported, and a
// group its host refuses to start for such a port runs on another host.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { before, describe, test } from 'node:test';
import type { EtcdStore } from '../../src/store/etcd.js';
import { Api, group, type BerthProcess } from '../helpers/berth.js';
import { onDevCluster, hostContainers, type DevCluster } from '../helpers/cluster.js';
import { sdkClient } from '../helpers/sdk.js';

const REGISTRY_PORT = 25000;
const RG = 'placement';
const SUB = 'placement-sub';
/** dev-cluster.sh puts host i in zone-i (of three). */
const ZONE: Record<string, string> = { devh1: 'zone-1', devh2: 'zone-2', devh3: 'zone-3' };

let cluster: DevCluster | undefined;
let api: Api;
let image: string;
let etcd: EtcdStore;

const onCluster = onDevCluster({ replicas: 1, sub: SUB, registryPort: REGISTRY_PORT, image: { name: 'placement/app', cmd: ['sleep', '3600'] }, etcd: true });
before(async () => ({ cluster, api, image, etcd } = await onCluster));

const body = (o: { tags?: Record<string, string>; zones?: string[]; placement?: unknown } = {}) => {
  const b = group(image, { cpu: 0.1, memoryInGB: 0.1 }) as Record<string, unknown> & { properties: Record<string, unknown> };
  return { ...b, ...(o.tags && { tags: o.tags }), ...(o.zones && { zones: o.zones }), properties: { ...b.properties, ...(o.placement ? { placement: o.placement } : {}) } };
};
const get = async (name: string) => (await api.req('GET', api.groupPath(RG, name))).body;
/** How many containers each host's mount namespace runs (what the kernel says, not the API). */
const containersPerHost = () => Object.fromEntries(Object.keys(ZONE).map((h) => [h, hostContainers(cluster!, h).size]));

describe('placement rules on a dev cluster of three hosts, one per zone', () => {
  const web = { antiAffinity: [{ selector: { tags: { app: 'web' } }, scope: 'Host' }] };
  const hostOfGroup: Record<string, string> = {};

  test('required anti-affinity puts 3 groups on 3 hosts; a 4th waits Pending with the reason, and is placed once room appears', async () => {
    const made = await Promise.all(['web1', 'web2', 'web3'].map((n) => api.createAndWait(RG, n, body({ tags: { app: 'web' }, placement: web }))));
    for (const g of made) {
      const { host, zone } = g.properties.placement;
      assert.equal(zone, ZONE[host], `${g.name} shows its host's zone`);
      hostOfGroup[g.name] = host;
    }
    assert.deepEqual(new Set(Object.values(hostOfGroup)), new Set(Object.keys(ZONE)));
    assert.deepEqual(containersPerHost(), { devh1: 1, devh2: 1, devh3: 1 }, 'each host runs one of them');

    await api.create(RG, 'web4', body({ tags: { app: 'web' }, placement: web }));
    const waiting = await api.waitFor('web4 to say why it waits', async () => {
      const g = await get('web4');
      return g.properties.instanceView.events.find((e: { name: string }) => e.name === 'FailedScheduling') && g;
    }, 15_000);
    assert.equal(waiting.properties.instanceView.state, 'Pending');
    assert.equal(waiting.properties.placement.host, undefined, 'on no host');
    const why = waiting.properties.instanceView.events.find((e: { name: string }) => e.name === 'FailedScheduling');
    assert.equal(why.type, 'Warning');
    assert.match(why.message, /^0\/3 hosts are available: .*3 didn't match the group's anti-affinity rules/);

    await api.deleteAndWait(RG, 'web2');
    const placed = await api.waitFor('web4 Running once web2 is gone', async () => {
      const g = await get('web4');
      return g.properties.instanceView.state === 'Running' && g;
    }, 30_000);
    assert.equal(placed.properties.placement.host, hostOfGroup.web2, "it takes the freed host");
    assert.ok(placed.properties.instanceView.events.some((e: { name: string; message: string }) => e.name === 'Scheduled' && e.message.includes(hostOfGroup.web2)));
  });

  test('affinity puts a group on the host of the group it names; zones pick the host of that zone', async () => {
    const near = await api.createAndWait(RG, 'near', body({ placement: { affinity: [{ selector: { names: ['web1'] }, scope: 'Host' }] } }));
    assert.equal(near.properties.placement.host, hostOfGroup.web1);
    assert.equal(containersPerHost()[hostOfGroup.web1], 2, "web1's host runs both");
    const zoned = await api.createAndWait(RG, 'zoned', body({ zones: ['zone-2'] }));
    assert.deepEqual([zoned.zones, zoned.properties.placement.host, zoned.properties.placement.zone], [['zone-2'], 'devh2', 'zone-2']);
    const nowhere = await api.create(RG, 'nowhere', body({ zones: ['zone-9'] }));
    assert.equal(nowhere.status, 201, 'admitted: a zone may get a host later');
    const why = await api.waitFor('nowhere to say why it waits', async () =>
      (await get('nowhere')).properties.instanceView.events.find((e: { name: string }) => e.name === 'FailedScheduling'), 15_000);
    assert.match(why.message, /3 not in the requested zones/);
  });

  test('the official SDK reads and lists groups that carry rules, unchanged', async () => {
    const sdk = sdkClient({ token: cluster!.token, httpsUrl: cluster!.url } as BerthProcess, SUB);
    const g = await sdk.containerGroups.get(RG, 'near');
    assert.equal(g.provisioningState, 'Succeeded');
    assert.deepEqual(g.zones, undefined);
    const zoned = await sdk.containerGroups.get(RG, 'zoned');
    assert.deepEqual(zoned.zones, ['zone-2'], "ACI's zones come back as the SDK knows them");
    const names: string[] = [];
    for await (const x of sdk.containerGroups.listByResourceGroup(RG)) names.push(x.name!);
    assert.deepEqual(names.sort(), ['near', 'nowhere', 'web1', 'web3', 'web4', 'zoned']);
  });

  test("a port a host's own process listens on keeps groups that publish it off that host, decided from what the host reported; once it is let go, the host takes them", async () => {
    const port = 9555;
    const withPort = (zones?: string[]) => ({ ...body({ zones }), properties: { ...group(image, { cpu: 0.1, memoryInGB: 0.1, ports: [port], publish: true }).properties } });
    // a service of devh2's own, on every address of it
    const holder = spawn('ip', ['netns', 'exec', 'devh2', process.execPath, '-e', `require('net').createServer().listen(${port}, () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await once(holder.stdout!, 'data');
      await api.waitFor(`devh2 to report TCP/${port} held`, async () => (await etcd.get<{ ports: string[] }>('/heldports/devh2'))?.value.ports.includes(`TCP/${port}`), 10_000);
      const pinned = await api.create(RG, 'held2', withPort(['zone-2']));
      assert.equal(pinned.status, 201);
      const why = await api.waitFor('held2 to say why it waits', async () =>
        (await get('held2')).properties.instanceView.events.find((e: { name: string }) => e.name === 'FailedScheduling'), 15_000);
      assert.match(why.message, /^0\/3 hosts are available: .*1 host port already in use/);
      assert.equal((await get('held2')).properties.placement.host, undefined, 'on no host');
      const anywhere = await api.createAndWait(RG, 'heldany', withPort());
      assert.notEqual(anywhere.properties.placement.host, 'devh2');
      holder.kill('SIGTERM');
      await once(holder, 'exit');
      const placed = await api.waitFor('held2 Running on devh2 once the port is free', async () => {
        const g = await get('held2');
        return g.properties.instanceView.state === 'Running' && g;
      }, 30_000);
      assert.equal(placed.properties.placement.host, 'devh2');
    } finally {
      if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
    }
    for (const n of ['held2', 'heldany']) await api.deleteAndWait(RG, n);
  });

  test("a group its host refuses to start again, for a port a process of that host took while the group was stopped, runs on another host", async () => {
    const port = 9556;
    const made = await api.createAndWait(RG, 'restarted', { ...body(), properties: { ...group(image, { cpu: 0.1, memoryInGB: 0.1, ports: [port], publish: true }).properties } });
    const first = made.properties.placement.host as string;
    assert.equal((await api.req('POST', `${api.groupPath(RG, 'restarted')}/stop`)).status, 204);
    await api.waitFor('restarted Stopped', async () => (await get('restarted')).properties.instanceView.state === 'Stopped', 15_000);
    const holder = spawn('ip', ['netns', 'exec', first, process.execPath, '-e', `require('net').createServer().listen(${port}, () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await once(holder.stdout!, 'data');
      // whether or not the host has reported the port yet: its agent refuses the start, the group moves
      const start = await api.req('POST', `${api.groupPath(RG, 'restarted')}/start`);
      assert.equal(start.status, 202);
      // the start's operation follows the group to its new host, and ends with what that host reports
      const op = await api.waitOp(start.headers.get('azure-asyncoperation')!, 30_000);
      assert.equal(op.status, 'Succeeded', JSON.stringify(op));
      const moved = await api.waitFor('restarted Running on another host', async () => {
        const g = await get('restarted');
        return g.properties.instanceView.state === 'Running' && g.properties.placement.host !== first && g;
      }, 30_000);
      assert.ok(moved.properties.instanceView.events.some((e: { name: string; message: string }) => e.name === 'Rescheduled' && e.message.includes(`Host '${first}' keeps a port of the group`)),
        JSON.stringify(moved.properties.instanceView.events));
    } finally {
      if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
    }
    await api.deleteAndWait(RG, 'restarted');
  });
});
