// Spreading members over zones and fault domains, and choosing who goes when an NGroup shrinks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Member } from './members.js';
import { chooseVictims, fullestZone, placeNew } from './placement.js';

const member = (name: string, zone?: string, faultDomain = 0, health: Member['health'] = 'healthy') =>
  ({ name, zone, faultDomain, health, resourceGroup: 'rg', id: name, group: {} } as unknown as Member);

test('six members over three zones with three fault domains land two per zone, in different fault domains', () => {
  const layout = { zones: ['1', '2', '3'], faultDomainCount: 3 };
  const slots = placeNew(layout, [], 6);
  const perZone = (z: string) => slots.filter((s) => s.zone === z);
  for (const z of layout.zones) {
    assert.equal(perZone(z).length, 2, `zone ${z}`);
    assert.notEqual(perZone(z)[0].faultDomain, perZone(z)[1].faultDomain);
  }
});

test('new members fill the emptiest zone first; a preferred zone wins only when it is among the emptiest', () => {
  const layout = { zones: ['a', 'b'], faultDomainCount: 1 };
  assert.deepEqual(placeNew(layout, [member('x', 'a')], 1), [{ zone: 'b', faultDomain: 0 }]);
  assert.deepEqual(placeNew(layout, [member('x', 'a')], 1, 'a'), [{ zone: 'b', faultDomain: 0 }]);
  assert.deepEqual(placeNew(layout, [], 1, 'b'), [{ zone: 'b', faultDomain: 0 }]);
  // without zones: fault domains only
  assert.deepEqual(placeNew({ zones: [], faultDomainCount: 2 }, [member('x', undefined, 0)], 2).map((s) => s.faultDomain), [1, 0]);
});

test('shrinking removes the failed and pending first, then from the fullest zone, keeping the spread', () => {
  const layout = { zones: ['1', '2'], faultDomainCount: 1 };
  const all = [member('a', '1'), member('b', '1'), member('c', '1'), member('d', '2'), member('e', '2', 0, 'failed')];
  assert.deepEqual(chooseVictims(layout, all, all, 1).map((m) => m.name), ['e']);
  const kept = all.filter((m) => !chooseVictims(layout, all, all, 3).includes(m));
  assert.deepEqual(kept.map((m) => m.zone).sort(), ['1', '2']);
  assert.equal(fullestZone(layout, all), '1');
});
