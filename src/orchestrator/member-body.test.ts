// A member's PUT: what it is made from, what the NGroup adds, and where it may run on an endpoint that places groups on hosts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NGroupResource } from '../client/index.js';
import { memberBody } from './member-body.js';
import { ngroupTagOf } from './members.js';

const ng = (faultDomainCount?: number) => ({
  id: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/ngroups/web', name: 'web', location: 'local', zones: ['a', 'b'],
  properties: { ...(faultDomainCount && { placementProfile: { faultDomainCount } }), containerGroupProfiles: [{ resource: { id: '/p' } }] },
}) as unknown as NGroupResource;
const target = { profileId: '/p', revision: 2 };

test('on one host the slot is only tags: no zones, no placement rules (a single-host berth refuses them)', () => {
  const b = memberBody(ng(3), 'm1', target, { zone: 'b', faultDomain: 1 }, []);
  assert.deepEqual(b.tags, { 'berth.zone': 'b', 'berth.faultDomain': '1', 'berth.ngroup': ngroupTagOf(ng().id) });
  assert.equal(b.zones, undefined);
  assert.equal(b.properties.placement, undefined);
  assert.deepEqual(b.properties.containerGroupProfile, { id: '/p', revision: 2 });
});

test('placed: the zone as ACI zones, and preferably away from the hosts of the other fault domains of the same NGroup', () => {
  const b = memberBody(ng(3), 'm1', target, { zone: 'b', faultDomain: 1 }, [], true);
  assert.deepEqual(b.zones, ['b']);
  const tag = ngroupTagOf('/SUBSCRIPTIONS/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/ngroups/WEB');
  assert.equal(tag, b.tags!['berth.ngroup'], 'one tag per NGroup whatever the id\'s case');
  assert.deepEqual(b.properties.placement, {
    antiAffinity: [0, 2].map((fd) => ({ selector: { tags: { 'berth.ngroup': tag, 'berth.faultDomain': String(fd) } }, scope: 'Host', required: false, weight: 100 })),
  });
  const one = memberBody(ng(), 'm2', target, { zone: 'a', faultDomain: 0 }, [], true);
  assert.deepEqual([one.zones, one.properties.placement], [['a'], undefined], 'one fault domain: no rule');
});
