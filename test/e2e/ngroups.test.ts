// End to end: NGroups on a real berth (the orchestrator in the server, real containers): members made from a profile,
// scaling, replacement of what is deleted or fails, zones and fault domains, rolling updates (replace and in place),
// automatic rollback, cancel, start/stop/restart and delete.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ContainerInstanceClient, NGROUPS_API_VERSION, StaticTokenCredential, type NGroup } from '../../src/client/index.js';
import { until } from '../helpers/assertions.js';
import { Api, endE2e, hostFootprint, startBerth, type BerthProcess } from '../helpers/berth.js';
import { execSession } from '../helpers/exec.js';
import { buildImage } from '../helpers/images.js';
import { isReady, membersOf, profileBody, recordMembers } from '../helpers/ngroups.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const BRIDGE = 'btngroups0';
const SUB = 'ngroups-sub';
const RG = 'ng';
let registry: TestRegistry;
let berth: BerthProcess;
let client: ContainerInstanceClient;
let api: Api;
let image: string;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'ngweb', '1')).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.130.0/24' });
  client = new ContainerInstanceClient({ endpoint: berth.url, subscriptionId: SUB, credential: new StaticTokenCredential(berth.token), apiVersion: NGROUPS_API_VERSION, pollIntervalMs: 100 });
  api = new Api(berth, SUB);
});
after(async () => {
  client?.close();
  await endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE });
});

const profileId = (name: string) => client.containerGroupProfiles.id(RG, name);
const ngroupId = (name: string) => client.ngroups.id(RG, name);
const ngroup = (profile: string, o: { count: number; revision?: number; rolling?: object; elastic?: object; zones?: string[]; faultDomains?: number; tags?: Record<string, string> }): NGroup => ({
  location: 'local',
  ...(o.tags && { tags: o.tags }),
  ...(o.zones && { zones: o.zones }),
  properties: {
    elasticProfile: { desiredCount: o.count, ...o.elastic },
    containerGroupProfiles: [{ resource: { id: profileId(profile) }, ...(o.revision !== undefined && { revision: o.revision }) }],
    ...(o.faultDomains && { placementProfile: { faultDomainCount: o.faultDomains } }),
    ...(o.rolling && { updateProfile: { updateMode: 'Rolling', rollingUpdateProfile: { pauseTimeBetweenBatches: 'PT0S', ...o.rolling } } }),
  },
});
const live = async (name: string) => (await membersOf(client, RG, ngroupId(name))).filter((m) => !m.deleting);
const allReady = async (name: string, count: number, revision?: number) => {
  const ms = await live(name);
  return ms.length === count && ms.every((m) => m.ready && (revision === undefined || m.revision === revision));
};

describe('members and scaling', () => {
  test('an NGroup makes its members from its profile: each shows the revision, the NGroup id and the variables the tags ask for', async () => {
    await client.containerGroupProfiles.createOrUpdate(RG, 'basic', profileBody(image, { env: [{ name: 'MODE', value: 'ng' }] }));
    const footprint = hostFootprint(berth.runcRoot, berth.dataDir);
    const made = await client.ngroups.createOrUpdate(RG, 'basic', ngroup('basic', {
      count: 3, elastic: { containerGroupNamingPolicy: { guidNamingPolicy: { prefix: 'basic-' } } },
      tags: { 'metadata.container.environmentVariable.containerGroupName': 'true', 'metadata.container.environmentVariable.orchestratorId': 'true' },
    }), { timeoutMs: 60_000 });
    assert.equal(made.properties?.provisioningState, 'Succeeded');
    const members = (await client.containerGroups.listByResourceGroup(RG).toArray()).filter((g) => g.properties.orchestratorId === ngroupId('basic'));
    assert.equal(members.length, 3, 'the operation ended with the members made');
    for (const g of members) {
      assert.match(g.name, /^basic-[0-9a-f-]{36}$/);
      assert.deepEqual(g.properties.containerGroupProfile, { id: profileId('basic'), revision: 1 });
      assert.deepEqual(g.properties.containers[0].properties.environmentVariables, [
        { name: 'MODE', value: 'ng' }, { name: 'ContainerGroupName', value: g.name }, { name: 'OrchestratorId', value: ngroupId('basic') },
      ]);
    }
    // inside the container too
    const s = await execSession(api, RG, members[0].name, 'web', 'env');
    assert.match(await s.waitFor(/OrchestratorId=/), new RegExp(`ContainerGroupName=${members[0].name}`));
    await until('three members ready', () => allReady('basic', 3), 30_000);
    // the NGroup's count follows as the orchestrator sees its members change
    await until('the NGroup counts three ready', async () => (await client.ngroups.get(RG, 'basic')).properties?.instanceView?.readyCount === 3, 5_000);

    await client.ngroups.update(RG, 'basic', { properties: { elasticProfile: { desiredCount: 5 } } }, { timeoutMs: 60_000 });
    assert.equal((await live('basic')).length, 5);
    await client.ngroups.update(RG, 'basic', { properties: { elasticProfile: { desiredCount: 2 } } }, { timeoutMs: 60_000 });
    await until('two members left', async () => (await membersOf(client, RG, ngroupId('basic'))).length === 2, 30_000);
    const events = (await client.ngroups.get(RG, 'basic')).properties?.instanceView?.events?.map((e) => e.name);
    assert.ok(events?.includes('ScaledOut') && events.includes('ScaledIn'), JSON.stringify(events));

    await client.ngroups.delete(RG, 'basic', { timeoutMs: 60_000 });
    assert.deepEqual(await membersOf(client, RG, ngroupId('basic')), [], 'the members went with it');
    assert.equal(await client.ngroups.find(RG, 'basic'), undefined);
    assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), footprint, 'nothing of them is left on the host');
  });

  test('maintainDesiredCount: a member deleted and a member that fails are each replaced by one Running within 5 s', async () => {
    // restartPolicy Never: a container that is killed fails the member
    await client.containerGroupProfiles.createOrUpdate(RG, 'keep', profileBody(image, { restartPolicy: 'Never' }));
    await client.ngroups.createOrUpdate(RG, 'keep', ngroup('keep', { count: 2, elastic: { maintainDesiredCount: true } }), { timeoutMs: 60_000 });
    await until('two members ready', () => allReady('keep', 2), 30_000);
    const replaced = async (act: (victim: string) => Promise<unknown>) => {
      const before = (await live('keep')).map((m) => m.name);
      const t0 = Date.now();
      await act(before[0]);
      let fresh = '';
      await until('a replacement Running', async () => {
        const now = await client.containerGroups.listByResourceGroup(RG).toArray();
        const g = now.find((x) => x.properties.orchestratorId === ngroupId('keep') && !before.includes(x.name));
        if (!g) return false;
        fresh = g.name;
        return (await client.containerGroups.get(RG, g.name)).properties.instanceView?.state === 'Running';
      }, 15_000, 50);
      return { ms: Date.now() - t0, fresh };
    };
    const deleted = await replaced((victim) => client.containerGroups.beginDelete(RG, victim));
    assert.ok(deleted.ms < 5000, `a deleted member was replaced in ${deleted.ms} ms`);
    const failed = await replaced(async (victim) => (await execSession(api, RG, victim, 'web', 'kill 1')).closed.catch(() => undefined));
    assert.ok(failed.ms < 5000, `a failed member was replaced in ${failed.ms} ms`);
    await until('two members again', async () => (await live('keep')).length === 2 && (await membersOf(client, RG, ngroupId('keep'))).length === 2, 20_000);
    const ng = await client.ngroups.get(RG, 'keep');
    assert.equal(ng.properties?.elasticProfile?.desiredCount, 2);
    const events = ng.properties?.instanceView?.events ?? [];
    assert.ok(events.some((e) => e.name === 'MemberReplaced' && /exited with 143/.test(e.message ?? '')), JSON.stringify(events));
    assert.ok(events.some((e) => e.name === 'MemberRemoved' && /replacing it/.test(e.message ?? '')), JSON.stringify(events));
    console.log(`replacement Running after a delete: ${deleted.ms} ms; after a failure: ${failed.ms} ms`);
  });

  test('without maintainDesiredCount, a member deleted by someone lowers desiredCount', async () => {
    await client.ngroups.createOrUpdate(RG, 'pool', ngroup('keep', { count: 3 }), { timeoutMs: 60_000 });
    const [victim] = await live('pool');
    await client.containerGroups.delete(RG, victim.name, { timeoutMs: 30_000 });
    await until('desiredCount 2', async () => (await client.ngroups.get(RG, 'pool')).properties?.elasticProfile?.desiredCount === 2, 10_000);
    assert.equal((await membersOf(client, RG, ngroupId('pool'))).length, 2, 'none made in its place');
    // nor one made and removed again (a decision on an NGroup that did not show the lowered count yet)
    const events = (await client.ngroups.get(RG, 'pool')).properties?.instanceView?.events ?? [];
    assert.ok(!events.some((e) => e.name === 'ScaledIn'), JSON.stringify(events));
  });

  test('six members over three zones with faultDomainCount 3 are spread two per zone, in distinct fault domains', async () => {
    await client.ngroups.createOrUpdate(RG, 'zonal', ngroup('keep', { count: 6, zones: ['1', '2', '3'], faultDomains: 3 }), { timeoutMs: 60_000 });
    const groups = (await client.containerGroups.listByResourceGroup(RG).toArray()).filter((g) => g.properties.orchestratorId === ngroupId('zonal'));
    for (const zone of ['1', '2', '3']) {
      const inZone = groups.filter((g) => g.tags?.['berth.zone'] === zone);
      assert.equal(inZone.length, 2, `zone ${zone}`);
      assert.notEqual(inZone[0].tags?.['berth.faultDomain'], inZone[1].tags?.['berth.faultDomain']);
    }
    await client.ngroups.delete(RG, 'zonal', { timeoutMs: 60_000 });
  });
});

describe('rolling updates', () => {
  before(async () => {
    await client.containerGroupProfiles.createOrUpdate(RG, 'app', profileBody(image));
    await client.containerGroupProfiles.createOrUpdate(RG, 'app', profileBody(image, { env: [{ name: 'V', value: '2' }] }));
    // revision 3: never ready
    await client.containerGroupProfiles.createOrUpdate(RG, 'app', profileBody(image, { ready: false }));
  });

  test('a new revision replaces the members batch by batch, never more than maxBatchPercent at once', async () => {
    const rolling = { maxBatchPercent: 25, maxUnhealthyPercent: 25, healthyDeadline: 'PT60S' };
    await client.ngroups.createOrUpdate(RG, 'roll', ngroup('app', { count: 4, revision: 1, rolling }), { timeoutMs: 60_000 });
    await until('four members ready at revision 1', () => allReady('roll', 4, 1), 30_000);
    const rec = recordMembers(client, RG, ngroupId('roll'));
    await client.ngroups.createOrUpdate(RG, 'roll', ngroup('app', { count: 4, revision: 2, rolling }), { timeoutMs: 60_000 });
    await until('the update completed', async () => (await client.ngroups.latestRollingUpdate(RG, 'roll'))?.state === 'Completed', 90_000, 200);
    const snapshots = await rec.stop();
    assert.ok(await allReady('roll', 4, 2), 'every member runs revision 2');
    // at no moment: more than one (25% of 4) member being replaced, fewer than four ready members
    for (const s of snapshots) {
      const members = s.members.filter((m) => !m.deleting);
      assert.ok(members.length - 4 <= 1, `${members.length} members at ${s.at}`);
      assert.ok(members.filter((m) => m.ready).length >= 4 - 1, `${JSON.stringify(s.members)}`);
    }
    const u = await client.ngroups.latestRollingUpdate(RG, 'roll');
    assert.deepEqual([u?.lastAction, u?.fromRevision, u?.toRevision, u?.progress?.containerGroupsUpdateSummary], ['Start', 1, 2, { succeededCount: 4, failedCount: 0, pendingCount: 0 }]);
    assert.ok(u?.finishTime && u.startTime);
  });

  test('a revision that never becomes ready is rolled back: every member ends on the old one, the NGroup says why, and the healthy share never drops', async () => {
    const rolling = { maxBatchPercent: 25, maxUnhealthyPercent: 25, healthyDeadline: 'PT5S' };
    const rec = recordMembers(client, RG, ngroupId('roll'));
    await client.ngroups.createOrUpdate(RG, 'roll', ngroup('app', { count: 4, revision: 3, rolling }), { timeoutMs: 60_000 });
    await until('rolled back', async () => (await client.ngroups.latestRollingUpdate(RG, 'roll'))?.state === 'RolledBack', 90_000, 200);
    const snapshots = await rec.stop();
    await until('four members ready at revision 2', () => allReady('roll', 4, 2), 30_000);
    const u = await client.ngroups.latestRollingUpdate(RG, 'roll');
    assert.equal(u?.error?.code, 'RollingUpdateFailed');
    assert.match(String(u?.reason), /did not become healthy within PT5S/);
    const ng = await client.ngroups.get(RG, 'roll');
    assert.deepEqual(ng.properties?.instanceView?.rollingUpdate?.state, 'RolledBack');
    assert.ok(ng.properties?.instanceView?.events?.some((e) => e.name === 'RolledBack'));
    assert.ok(snapshots.some((s) => s.members.some((m) => m.revision === 3)), 'the bad revision was tried');
    for (const s of snapshots) assert.ok(s.members.filter((m) => m.ready && !m.deleting).length >= 3, `healthy share below 75%: ${JSON.stringify(s.members)}`);
    // scaling out now makes members of the revision it came back to
    await client.ngroups.update(RG, 'roll', { properties: { elasticProfile: { desiredCount: 5 } } }, { timeoutMs: 60_000 });
    await until('five ready at revision 2', () => allReady('roll', 5, 2), 30_000);
  });

  test('cancelRollingUpdate stops an update where it is; in place, members are updated by a PUT each', async () => {
    const slow = { maxBatchPercent: 20, pauseTimeBetweenBatches: 'PT1H', inPlaceUpdate: true, healthyDeadline: 'PT60S' };
    await client.ngroups.createOrUpdate(RG, 'roll', ngroup('app', { count: 5, revision: 1, rolling: slow }), { timeoutMs: 60_000 });
    const names = (await live('roll')).map((m) => m.name).sort();
    await until('one member repointed to revision 1 and the update paused', async () => {
      const u = await client.ngroups.latestRollingUpdate(RG, 'roll');
      return u?.state === 'RollingForward' && (await live('roll')).filter((m) => m.revision === 1 && m.ready).length === 1;
    }, 60_000, 200);
    assert.deepEqual((await live('roll')).map((m) => m.name).sort(), names, 'in place: the same members');
    const cancelled = await client.ngroups.cancelRollingUpdate(RG, 'roll');
    assert.deepEqual([cancelled.state, cancelled.lastAction], ['Cancelled', 'Cancel']);
    await assert.rejects(client.ngroups.cancelRollingUpdate(RG, 'roll'), /RollingUpdateNotInProgress|no rolling update in progress/);
    await until('the cancel taken in', async () => (await client.ngroups.get(RG, 'roll')).properties?.instanceView?.events?.some((e) => e.name === 'RollingUpdateCancelled') ?? false, 10_000);
    const revisions = (await live('roll')).map((m) => m.revision).sort();
    assert.deepEqual(revisions, [1, 2, 2, 2, 2], 'members stay on the revision they run');
  });
});

describe('start, stop and restart', () => {
  test('stop stops every member and nothing is replaced; start and restart bring them back', async () => {
    await client.ngroups.createOrUpdate(RG, 'runs', ngroup('keep', { count: 2, elastic: { maintainDesiredCount: true } }), { timeoutMs: 60_000 });
    await until('ready', () => allReady('runs', 2), 30_000);
    const names = (await live('runs')).map((m) => m.name).sort();
    await client.ngroups.stop(RG, 'runs');
    for (const n of names) assert.equal((await client.containerGroups.get(RG, n)).properties.instanceView?.state, 'Stopped');
    assert.equal((await client.ngroups.get(RG, 'runs')).properties?.instanceView?.state, 'Stopped');
    await (await client.ngroups.beginStart(RG, 'runs')).wait({ timeoutMs: 60_000 });
    await until('running again, the same members', async () => (await allReady('runs', 2)) && (await live('runs')).map((m) => m.name).sort().join() === names.join(), 30_000);
    await (await client.ngroups.beginRestart(RG, 'runs')).wait({ timeoutMs: 60_000 });
    await until('ready after the restart', () => allReady('runs', 2), 30_000);
    assert.deepEqual((await live('runs')).map((m) => m.name).sort(), names);
    assert.ok(isReady(await client.containerGroups.get(RG, names[0])));
  });
});
