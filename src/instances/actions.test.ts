// Each route's parser, tested by the action it returns (and the ARM error it throws) for a request's parts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBerthError } from '../lib/errors.js';
import {
  parseAttach, parseExec, parseGroupDelete, parseGroupGet, parseGroupList, parseGroupPatch, parseGroupPut, parseGroupRun, parseLocation, parseLogs, type RequestParts,
} from './actions.js';
import { defaultLimits } from './model.js';

const params = { sub: 'sub-a', rg: 'rg(1)', name: 'web', container: 'main', loc: 'local' };
const ref = { subscriptionId: 'sub-a', resourceGroup: 'rg(1)', name: 'web' };
const req = (o: Partial<RequestParts> = {}): RequestParts => ({ params, query: {}, ...o });
const refused = (fn: () => unknown) => {
  try {
    fn();
    return 'accepted';
  } catch (e) {
    assert.ok(isBerthError(e), String(e));
    return `${e.status} ${e.code} ${e.target ?? ''}`.trim();
  }
};

test('a group PUT parses into its spec, location and tags; the core gets no body', () => {
  const body = {
    location: 'local', tags: { team: 'a' },
    properties: { containers: [{ name: 'main', properties: { image: 'web:1', resources: { requests: { cpu: 0.5, memoryInGB: 1 } } } }] },
  };
  const a = parseGroupPut(req({ body }), defaultLimits);
  assert.equal(a.kind, 'group.put');
  assert.deepEqual(a.ref, ref);
  assert.equal(a.location, 'local');
  assert.deepEqual(a.tags, { team: 'a' });
  assert.equal(a.spec.containers[0].image, 'web:1');
  assert.deepEqual(a.spec.containers[0].requests, { cpu: 0.5, memoryInGB: 1 });
  assert.equal(a.spec.restartPolicy, 'Always');
  assert.equal(refused(() => parseGroupPut(req({ body, params: { ...params, name: 'Web' } }), defaultLimits)), '400 InvalidResourceName containerGroupName');
  assert.equal(refused(() => parseGroupPut(req({ body: { ...body, tags: { t: 1 } } }), defaultLimits)), '400 InvalidRequestContent tags.t');
  assert.equal(refused(() => parseGroupPut(req({ body: undefined }), defaultLimits)), '400 MissingRequiredProperty body');
});

test('reads, deletes, runs and tag updates name the group; lists page and watch', () => {
  assert.deepEqual(parseGroupGet(req()), { kind: 'group.get', ref });
  assert.deepEqual(parseGroupDelete(req()), { kind: 'group.delete', ref });
  assert.deepEqual(parseGroupRun(req(), 'restart'), { kind: 'group.run', ref, run: 'restart' });
  assert.deepEqual(parseGroupPatch(req({ body: { tags: { a: 'b' } } })), { kind: 'group.patch', ref, tags: { a: 'b' } });
  assert.deepEqual(parseGroupPatch(req({ body: undefined })), { kind: 'group.patch', ref, tags: {} });
  assert.equal(refused(() => parseGroupPatch(req({ body: [1] }))), '400 InvalidRequestContent');
  assert.equal(refused(() => parseGroupGet(req({ params: { ...params, sub: 'a/b' } }))), '400 InvalidResourceName subscriptionId');

  assert.deepEqual(parseGroupList(req({ params: { sub: 'sub-a' } })), { kind: 'group.list', subscriptionId: 'sub-a', watch: false });
  const token = Buffer.from('/groups/sub-a/rg/x').toString('base64url');
  assert.deepEqual(parseGroupList(req({ params: { sub: 'sub-a', rg: 'rg' }, query: { $top: '5', $skiptoken: token, watch: 'true' } })),
    { kind: 'group.list', subscriptionId: 'sub-a', resourceGroup: 'rg', top: 5, startAfter: '/groups/sub-a/rg/x', watch: true });
  for (const top of ['0', '1001', '1.5', 'x']) assert.equal(refused(() => parseGroupList(req({ query: { $top: top } }))), '400 InvalidRequestContent $top', top);
  assert.equal(refused(() => parseGroupList(req({ query: { $skiptoken: 'a b' } }))), '400 InvalidRequestContent $skiptoken');
});

test('logs, exec and attach name the container and what to do with it', () => {
  assert.deepEqual(parseLogs(req()), { kind: 'container.logs', ref, container: 'main', timestamps: false, previous: false, follow: false });
  assert.deepEqual(parseLogs(req({ query: { tail: '10', timestamps: 'true', follow: 'true' } })),
    { kind: 'container.logs', ref, container: 'main', tail: 10, timestamps: true, previous: false, follow: true });
  assert.equal(refused(() => parseLogs(req({ query: { tail: '-1' } }))), '400 InvalidRequestContent tail');
  assert.deepEqual(parseExec(req({ body: { command: "sh -c 'echo hi'", terminalSize: { rows: 24, cols: 80 } } })),
    { kind: 'container.exec', ref, container: 'main', argv: ['sh', '-c', 'echo hi'], tty: { rows: 24, cols: 80 } });
  assert.deepEqual(parseExec(req({ body: { command: 'ls' } })), { kind: 'container.exec', ref, container: 'main', argv: ['ls'] });
  assert.equal(refused(() => parseExec(req({ body: { command: "'unbalanced" } }))), '400 InvalidRequestContent command');
  assert.equal(refused(() => parseExec(req({ body: {} }))), '400 MissingRequiredProperty command');
  assert.deepEqual(parseAttach(req()), { kind: 'container.attach', ref, container: 'main' });
  assert.deepEqual(parseLocation(req()), { subscriptionId: 'sub-a', location: 'local' });
});
