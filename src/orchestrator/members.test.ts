// A member's health from its container group as the API shows it (a list shows no group instance view).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ContainerGroupResource } from '../client/index.js';
import { failUnavailableZones, healthOf, memberOf } from './members.js';

const group = (o: { ps?: string; state?: string; restartPolicy?: 'Always' | 'Never'; containers?: object[] } = {}) => ({
  id: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/m1', name: 'm1',
  tags: { 'berth.zone': '2', 'berth.faultDomain': '1' },
  properties: {
    provisioningState: o.ps ?? 'Succeeded', osType: 'Linux', restartPolicy: o.restartPolicy ?? 'Always',
    containerGroupProfile: { id: '/p', revision: 3 }, orchestratorId: '/ng',
    ...(o.state && { instanceView: { state: o.state } }),
    containers: (o.containers ?? [{ state: 'Running' }]).map((v, i) => ({ name: `c${i}`, properties: { image: 'x', resources: { requests: { cpu: 1, memoryInGB: 1 } }, instanceView: v } })),
  },
}) as unknown as ContainerGroupResource;
const running = (detailStatus = '', restartCount = 0) => ({ restartCount, currentState: { state: 'Running', detailStatus } });

test('healthy: provisioned, every container running and ready', () => {
  assert.equal(healthOf(group({ containers: [running(), running('Ready')] })).health, 'healthy');
  assert.equal(healthOf(group({ containers: [running(), running('NotReady')] })).health, 'pending');
  assert.equal(healthOf(group({ ps: 'Pending', containers: [running()] })).health, 'pending');
  assert.equal(healthOf(group({ containers: [{ restartCount: 0, currentState: { state: 'Waiting' } }] })).health, 'pending');
});

test('failed: provisioning failed, the group failed, a restart loop, or an exit in failure that will not be restarted', () => {
  assert.deepEqual(healthOf(group({ ps: 'Failed' })), { health: 'failed', reason: 'its provisioning failed' });
  assert.equal(healthOf(group({ state: 'Failed' })).health, 'failed');
  assert.match(healthOf(group({ containers: [{ restartCount: 3, currentState: { state: 'Waiting' } }] })).reason!, /stuck restarting \(3 restarts\)/);
  assert.equal(healthOf(group({ containers: [running('', 7)] })).health, 'healthy', 'restarted often, running now: fine');
  assert.match(healthOf(group({ restartPolicy: 'Never', containers: [{ restartCount: 0, currentState: { state: 'Terminated', exitCode: 2 } }] })).reason!, /exited with 2/);
  assert.equal(healthOf(group({ restartPolicy: 'Never', containers: [{ restartCount: 0, currentState: { state: 'Terminated', exitCode: 0 } }] })).health, 'stopped');
  assert.equal(healthOf(group({ ps: 'Deleting' })).health, 'deleting');
});

test('a member carries its profile revision and where it was placed', () => {
  const m = memberOf(group());
  assert.deepEqual([m.name, m.resourceGroup, m.profileId, m.revision, m.zone, m.faultDomain], ['m1', 'rg', '/p', 3, '2', 1]);
});

test('on a cluster, a member whose zone has no Ready host is failed, unless no zone of the NGroup has one', () => {
  const inZone = (zone: string, health: 'healthy' | 'deleting' = 'healthy') => ({ ...memberOf(group({ containers: [running()] })), name: `m-${zone}`, zone, health });
  const members = [inZone('1'), inZone('2'), inZone('2', 'deleting')];
  const after = failUnavailableZones(members, ['1', '2', '3'], ['1', '3']);
  assert.deepEqual(after.map((m) => [m.zone, m.health]), [['1', 'healthy'], ['2', 'failed'], ['2', 'deleting']]);
  assert.equal(after[1].reason, "its zone '2' has no Ready host");
  assert.deepEqual(failUnavailableZones(members, ['1', '2', '3'], []), members, 'every zone down (or not seen yet): nothing is failed for it');
  assert.deepEqual(failUnavailableZones(members, ['1', '2'], ['4']), members, 'none of its zones is up: its members stay');
});
