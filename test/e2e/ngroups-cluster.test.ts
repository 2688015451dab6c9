// NGroups on a real cluster (scripts/dev-cluster.sh up 3, one host per zone, the orchestrator in the server): 6 members
// over 3 zones with 3 fault domains land 2 per zone and host, each carrying its zone and fault domain as placement; a
// host killed as a power loss would brings the NGroup back to 6 healthy members on the hosts left, with the reason.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { NGROUPS_API_VERSION, type ContainerGroupResource, type NGroup } from '../../src/client/index.js';
import { Api } from '../helpers/berth.js';
import { hostContainers, onDevCluster, type DevCluster } from '../helpers/cluster.js';
import { isReady, profileBody } from '../helpers/ngroups.js';

const REGISTRY_PORT = 25300;
const SUB = 'ngcluster-sub';
const RG = 'ngc';
/** dev-cluster.sh puts host i in zone-i (of three). */
const ZONE: Record<string, string> = { devh1: 'zone-1', devh2: 'zone-2', devh3: 'zone-3' };
const ZONES = Object.values(ZONE);

let cluster: DevCluster | undefined;
let api: Api;
let image: string;
const onCluster = onDevCluster({ replicas: 1, sub: SUB, registryPort: REGISTRY_PORT, image: { name: 'ngcluster/web', cmd: ['httpd', '-f', '-p', '80', '-h', '/www'] } });
before(async () => ({ cluster, api, image } = await onCluster));

// at an api-version that shows a group's orchestratorId (2023-05-01 has none)
const members = async (ngroupId: string) =>
  (await api.client.containerGroups.listByResourceGroup(RG, { apiVersion: NGROUPS_API_VERSION }).toArray()).filter((g) => g.properties.orchestratorId?.toLowerCase() === ngroupId.toLowerCase());
const live = (gs: ContainerGroupResource[]) => gs.filter((g) => g.properties.provisioningState !== 'Deleting');
const count = <T>(xs: T[]) => xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<T, number>());
/** What the members and the NGroup say, for a wait that timed out. */
async function explain(ngroupId: string, e: unknown): Promise<never> {
  const gs = await members(ngroupId).catch(() => []);
  const ng = await api.client.ngroups.get(RG, 'web').catch(() => undefined);
  const lines = gs.map((g) => `${g.name} ${g.properties.provisioningState} zones=${g.zones} placement=${JSON.stringify(g.properties.placement)} ready=${isReady(g)}`);
  throw new Error(`${(e as Error).message}\n${lines.join('\n')}\nNGroup: ${JSON.stringify(ng?.properties)}`);
}
const containersPerHost = () => Object.fromEntries(Object.keys(ZONE).map((h) => [h, hostContainers(cluster!, h).size]));

describe('an NGroup over the zones of a dev cluster of three hosts', () => {
  let ngroupId: string;

  test("the provider's registration lists the zones with a Ready host", async () => {
    assert.deepEqual(await api.client.provider.zones('local'), ZONES);
  });

  test('6 members over 3 zones with faultDomainCount 3: 2 per zone, each placed in its zone and apart from its other fault domains', async () => {
    const c = api.client;
    await c.containerGroupProfiles.createOrUpdate(RG, 'web', profileBody(image));
    const body: NGroup = {
      location: 'local', zones: ZONES,
      properties: {
        elasticProfile: { desiredCount: 6, maintainDesiredCount: true, containerGroupNamingPolicy: { guidNamingPolicy: { prefix: 'web-' } } },
        containerGroupProfiles: [{ resource: { id: c.containerGroupProfiles.id(RG, 'web') } }],
        placementProfile: { faultDomainCount: 3 },
      },
    };
    ngroupId = (await c.ngroups.createOrUpdate(RG, 'web', body)).id;
    const ready = await api.waitFor('6 ready members', async () => {
      const gs = live(await members(ngroupId));
      return gs.length === 6 && gs.every(isReady) && gs;
    }, 90_000).catch((e) => explain(ngroupId, e));
    for (const g of ready) {
      const { host, zone } = g.properties.placement!;
      assert.deepEqual(g.zones, [g.tags!['berth.zone']], `${g.name} asks for the zone the orchestrator put it in`);
      assert.equal(zone, g.tags!['berth.zone'], `${g.name} runs there`);
      assert.equal(ZONE[host!], zone);
      assert.ok(g.properties.placement!.antiAffinity!.length === 2, `${g.name}: away from the 2 other fault domains`);
    }
    assert.deepEqual(count(ready.map((g) => g.properties.placement!.zone)), new Map(ZONES.map((z) => [z, 2])), '2 per zone');
    assert.deepEqual(new Set(ready.map((g) => `${g.tags!['berth.zone']}/${g.tags!['berth.faultDomain']}`)).size, 6, 'no two in one zone share a fault domain');
    assert.deepEqual(containersPerHost(), { devh1: 2, devh2: 2, devh3: 2 }, 'what the hosts run (processes, not the API)');
  });

  test("kill-host of one zone's host: the NGroup is back to 6 healthy members on the hosts left, and says why", async (t) => {
    const killed = Date.now();
    await cluster!.run('kill-host', 'devh1');
    const back = await api.waitFor('6 ready members on devh2 and devh3', async () => {
      const gs = live(await members(ngroupId));
      return gs.length === 6 && gs.every((g) => isReady(g) && g.properties.placement?.host !== undefined && g.properties.placement.host !== 'devh1') && gs;
    }, 60_000).catch((e) => explain(ngroupId, e));
    const seconds = (Date.now() - killed) / 1000;
    t.diagnostic(`NGroup failover: 6 healthy members again ${seconds.toFixed(1)} s after the kill (goal 10 s)`);
    console.log(`NGroup failover: 6 healthy members again ${seconds.toFixed(1)} s after the kill (goal 10 s)`);
    assert.deepEqual(count(back.map((g) => g.properties.placement!.zone)), new Map([['zone-2', 3], ['zone-3', 3]]), 'spread over the zones left');
    assert.deepEqual(await api.client.provider.zones('local'), ['zone-2', 'zone-3'], 'the lost zone is no longer offered');
    const ng = await api.client.ngroups.get(RG, 'web');
    const events = (ng.properties?.instanceView?.events ?? []) as { name: string; message?: string }[];
    assert.ok(events.some((e) => e.name === 'MemberReplaced' && e.message?.includes("its zone 'zone-1' has no Ready host")), JSON.stringify(events));
    assert.deepEqual(containersPerHost(), { devh1: 0, devh2: 3, devh3: 3 }, 'exactly one copy of each, on the hosts left');
  });

  test('deleting the NGroup deletes its members', async () => {
    await api.client.ngroups.beginDelete(RG, 'web').then((op) => op.wait());
    await api.waitFor('no member left', async () => live(await members(ngroupId)).length === 0, 60_000);
    await api.waitFor('no container left on the hosts', async () => containersPerHost().devh2 + containersPerHost().devh3 === 0, 30_000);
  });
});
