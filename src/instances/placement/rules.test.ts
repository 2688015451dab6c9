// Unit tests of the placement extension on the wire: what a rule may say, and the property every error names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BerthError } from '../../lib/errors.js';
import { parsePlacement, parseZones, renderPlacement } from './rules.js';

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (e instanceof BerthError) return `${e.status} ${e.code} ${e.target}`;
    throw e;
  }
  return 'accepted';
};

test('a full set of rules is kept as asked, preferred terms with a weight (1 unless given)', () => {
  const rules = parsePlacement({
    strategy: 'BinPack',
    hostLabels: { 'disk': 'ssd', 'berth.dev/tier': 'gold' },
    affinity: [{ selector: { names: ['db'] }, scope: 'Host', required: true }],
    antiAffinity: [{ selector: { tags: { app: 'web' } }, scope: 'Zone', required: false, weight: 40 }, { selector: { tags: { app: 'x' } }, required: false }],
  });
  assert.deepEqual(rules, {
    strategy: 'BinPack',
    hostLabels: { 'disk': 'ssd', 'berth.dev/tier': 'gold' },
    affinity: [{ selector: { names: ['db'] }, scope: 'Host', required: true }],
    antiAffinity: [{ selector: { tags: { app: 'web' } }, scope: 'Zone', required: false, weight: 40 }, { selector: { tags: { app: 'x' } }, scope: 'Host', required: false, weight: 1 }],
  });
  assert.equal(parsePlacement(undefined), undefined);
  assert.equal(parsePlacement({ affinity: [], hostLabels: {} }), undefined, 'nothing asked');
});

test('what a rule cannot mean is refused with InvalidPlacement naming the property', () => {
  const P = 'properties.placement';
  assert.equal(refusal(() => parsePlacement('spread')), `400 InvalidPlacement ${P}`);
  assert.equal(refusal(() => parsePlacement({ nodeSelector: {} })), `400 InvalidPlacement ${P}.nodeSelector`);
  assert.equal(refusal(() => parsePlacement({ strategy: 'Random' })), `400 InvalidPlacement ${P}.strategy`);
  assert.equal(refusal(() => parsePlacement({ hostLabels: { 'bad label': 'x' } })), `400 InvalidPlacement ${P}.hostLabels.bad label`);
  assert.equal(refusal(() => parsePlacement({ hostLabels: { a: 7 } })), `400 InvalidPlacement ${P}.hostLabels.a`);
  // an empty selector would select every group: never what anyone means
  assert.equal(refusal(() => parsePlacement({ antiAffinity: [{ selector: {} }] })), `400 InvalidPlacement ${P}.antiAffinity[0].selector`);
  assert.equal(refusal(() => parsePlacement({ antiAffinity: [{ selector: { labels: { a: 'b' } } }] })), `400 InvalidPlacement ${P}.antiAffinity[0].selector.labels`);
  assert.equal(refusal(() => parsePlacement({ affinity: [{ selector: { names: ['a'] }, scope: 'Rack' }] })), `400 InvalidPlacement ${P}.affinity[0].scope`);
  assert.equal(refusal(() => parsePlacement({ affinity: [{ selector: { names: ['a'] }, required: 'yes' }] })), `400 InvalidPlacement ${P}.affinity[0].required`);
  assert.equal(refusal(() => parsePlacement({ affinity: [{ selector: { names: ['a'] }, weight: 5 }] })), `400 InvalidPlacement ${P}.affinity[0].weight`, 'a required term has no weight');
  assert.equal(refusal(() => parsePlacement({ affinity: [{ selector: { names: ['a'] }, required: false, weight: 101 }] })), `400 InvalidPlacement ${P}.affinity[0].weight`);
  assert.equal(refusal(() => parsePlacement({ affinity: Array.from({ length: 17 }, () => ({ selector: { names: ['a'] } })) })), `400 InvalidPlacement ${P}.affinity`);
  assert.equal(refusal(() => parsePlacement({ affinity: [{ selector: { names: ['a'] }, topologyKey: 'zone' }] })), `400 InvalidPlacement ${P}.affinity[0].topologyKey`);
});

test("zones: names a host may register, each once", () => {
  assert.deepEqual(parseZones(['1', 'eu-west-1a']), ['1', 'eu-west-1a']);
  assert.deepEqual(parseZones(undefined), []);
  assert.equal(refusal(() => parseZones('1')), '400 InvalidRequestContent zones');
  assert.equal(refusal(() => parseZones(['1', '1'])), '400 InvalidPlacement zones');
  assert.equal(refusal(() => parseZones(['a b'])), '400 InvalidPlacement zones[0]');
  assert.equal(refusal(() => parseZones([3])), '400 InvalidRequestContent zones[0]');
});

test('every group shows where it runs under placement, with or without rules', () => {
  assert.deepEqual(renderPlacement(undefined, { host: 'h2', zone: '1' }), { host: 'h2', zone: '1' });
  assert.deepEqual(renderPlacement({ strategy: 'Spread' }, { host: 'local' }), { strategy: 'Spread', host: 'local' });
  assert.deepEqual(renderPlacement(undefined, {}), {}, 'not placed yet: no host');
});
