// Unit tests of the canonical request target and the JSON shape limits: one spelling per path, and no unbounded walk.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBerthError } from '../lib/errors.js';
import { checkJsonShape } from './json-limits.js';
import { MAX_PATH_LENGTH, MAX_SEGMENT_LENGTH, canonicalTarget } from './request-target.js';

const refusal = (raw: string) => {
  try {
    return `accepted as ${canonicalTarget(raw)}`;
  } catch (e) {
    assert.ok(isBerthError(e), `${raw}: ${String(e)}`);
    return `${e.status} ${e.code}`;
  }
};

test('every spelling of a path routes as one canonical path, the query kept as sent', () => {
  const canonical = '/subscriptions/sub-b/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g?api-version=2023-05-01';
  const spellings = [
    canonical,
    '/%73ubscriptions/sub-b/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g?api-version=2023-05-01',
    '/%73%75%62%73%63%72%69%70%74%69%6f%6e%73/sub-b/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g?api-version=2023-05-01',
    '/subscriptions/%73%75%62-b/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g?api-version=2023-05-01',
    '//subscriptions//sub-b/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/g/?api-version=2023-05-01',
    '/subscriptions/sub-b/resourceGroups/rg/providers/Microsoft%2EContainerInstance/containerGroups/g?api-version=2023-05-01',
  ];
  for (const s of spellings) assert.equal(canonicalTarget(s), canonical, s);
  // upper case stays upper case (routing is case-insensitive; authorization compares subscriptions so too)
  assert.equal(canonicalTarget('/%53UBSCRIPTIONS/SUB-B'), '/SUBSCRIPTIONS/SUB-B');
  // names that need escaping keep one escaped form, and parentheses (legal in resource group names) stay plain
  assert.equal(canonicalTarget('/subscriptions/s/resourcegroups/rg%281%29'), '/subscriptions/s/resourcegroups/rg(1)');
  assert.equal(canonicalTarget('/subscriptions/s/resourcegroups/caf%C3%A9'), '/subscriptions/s/resourcegroups/caf%C3%A9');
  assert.equal(canonicalTarget('/a?x=%zz&y=/../'), '/a?x=%zz&y=/../', 'the query is not a path');
  assert.equal(canonicalTarget('/'), '/');
});

test('targets without one meaning are refused, with ARM codes', () => {
  const cases: [string, string][] = [
    ['http://127.0.0.1:8780/subscriptions/sub-b', '400 InvalidRequestUri'],
    ['*', '400 InvalidRequestUri'],
    ['subscriptions/sub-b', '400 InvalidRequestUri'],
    ['/subscriptions/sub-a/../sub-b', '400 InvalidRequestUri'],
    ['/subscriptions/./sub-b', '400 InvalidRequestUri'],
    ['/subscriptions/%2e%2e/sub-b', '400 InvalidRequestUri'],
    ['/subscriptions%2Fsub-b/resourceGroups', '400 InvalidRequestUri'],
    ['/subscriptions/sub%5Cb', '400 InvalidRequestUri'],
    ['/subscriptions/sub%00b', '400 InvalidRequestUri'],
    ['/subscriptions/sub%0Ab', '400 InvalidRequestUri'],
    ['/subscriptions/%zz', '400 InvalidRequestUri'],
    ['/subscriptions/%E0%A4%A', '400 InvalidRequestUri'],
    ['/subscriptions/%ED%A0%80', '400 InvalidRequestUri'], // a lone surrogate is no UTF-8
    ['/subscriptions/%', '400 InvalidRequestUri'],
    [`/subscriptions/${'a'.repeat(MAX_SEGMENT_LENGTH + 1)}`, '414 RequestUriTooLong'],
    [`/${'a/'.repeat(MAX_PATH_LENGTH)}`, '414 RequestUriTooLong'],
  ];
  for (const [raw, want] of cases) assert.equal(refusal(raw), want, raw.slice(0, 80));
});

test('JSON bodies nested too deep or too large are refused before anything recurses over them', () => {
  let deep: unknown = 'x';
  for (let i = 0; i < 10_000; i++) deep = [deep];
  assert.throws(() => checkJsonShape(deep), (e) => isBerthError(e) && e.code === 'RequestContentTooComplex' && e.status === 400);
  assert.throws(() => checkJsonShape(new Array(300_000).fill(0)), /more than 200000 values/);
  // a real container group body is far inside the limits
  let ok: unknown = { properties: { containers: [{ properties: { resources: { requests: { cpu: 1 } } } }] } };
  for (let i = 0; i < 50; i++) ok = { nested: ok };
  checkJsonShape(ok);
});
