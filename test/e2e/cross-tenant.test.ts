// Tenant A's token against tenant B's resources: every route x every spelling of its path x every verb succeeds 0 times.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { Api, endE2e, group, ociContainers, startBerth, type BerthProcess } from '../helpers/berth.js';
import { buildImage } from '../helpers/images.js';
import { armError, rawAgent, rawRequest, type RawResponse } from '../helpers/raw-http.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { armRoutes } from '../helpers/routes.js';

const BRIDGE = 'btxten0';
let registry: TestRegistry;
let berth: BerthProcess;
const TOKEN_A = 'cross-tenant-a';
const TOKEN_B = 'cross-tenant-b';
const VERBS = ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'];

before(async () => {
  registry = await startRegistry();
  berth = await startBerth({
    bridge: BRIDGE, subnet: '10.213.71.0/24',
    config: { tokens: [{ token: TOKEN_A, subscriptions: ['sub-a'] }, { token: TOKEN_B, subscriptions: ['sub-b'] }], subscriptions: ['sub-a', 'sub-b'] },
  });
});
after(() => endE2e({ berth, subscriptions: ['sub-a', 'sub-b'], registry, bridge: BRIDGE }));


const pct = (s: string) => [...s].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');

/** Ways to write `path` that a server could read as the same one, or as a path into B's subscription. */
function spellings(path: string, host: string): string[] {
  const [first, sub, ...rest] = path.split('/').slice(1);
  const out = new Set<string>([path]);
  const join = (segs: string[]) => `/${segs.join('/')}`;
  if (first === 'subscriptions' && sub !== undefined) {
    for (let i = 0; i < first.length; i++) out.add(join([first.slice(0, i) + pct(first[i]) + first.slice(i + 1), sub, ...rest]));
    out.add(join([pct(first), sub, ...rest]));
    out.add(join([pct(first).toUpperCase(), sub, ...rest]));
    out.add(join([first.toUpperCase(), sub, ...rest]));
    out.add(join([`%53${first.slice(1).toUpperCase()}`, sub, ...rest]));
    out.add(join([first, pct(sub), ...rest]));
    out.add(join([first, sub.toUpperCase(), ...rest]));
    out.add(`/${first}/sub-a/../${[sub, ...rest].join('/')}`);
    out.add(`/${first}/sub-a/%2e%2e/${[sub, ...rest].join('/')}`);
    out.add(`/${first}/./${[sub, ...rest].join('/')}`);
    out.add(`/${first}%2F${[sub, ...rest].join('/')}`);
    out.add(`/${first}%2f${[sub, ...rest].join('%2f')}`);
  }
  const segs = path.split('/').slice(1);
  for (let j = 0; j < segs.length; j++) out.add(join(segs.map((s, k) => (k === j ? pct(s) : s))));
  out.add(`/${path}`);
  out.add(path.replace(/\//g, '//'));
  out.add(`${path}/`);
  out.add(`${path}/.`);
  out.add(`http://${host}${path}`);
  out.add(`http://${host}/${pct('subscriptions')}${path.slice('/subscriptions'.length)}`);
  out.add(`http://evil.example${path}`);
  return [...out];
}

test("with A's token, no route, spelling or verb reads, changes or reaches into B's resources", async () => {
  const image = (await buildImage(registry.host, 'ticker', '1')).reference;
  const apiB = new Api({ url: berth.url, token: TOKEN_B }, 'sub-b');
  const created = await apiB.create('rg', 'victim', group(image, { command: ['sh', '-c', 'while true; do echo tick; sleep 0.2; done'], cpu: 0.1, memoryInGB: 0.05 }));
  const opB = new URL(created.headers.get('azure-asyncoperation')!).pathname.split('/').pop()!;
  await apiB.waitOp(created.headers.get('azure-asyncoperation')!);
  await apiB.req('PATCH', apiB.groupPath('rg', 'victim'), { tags: { owner: 'b' } });
  const before = (await apiB.req('GET', apiB.groupPath('rg', 'victim'))).body;
  const pidsBefore = ociContainers(berth.runcRoot);
  assert.equal(pidsBefore.size, 1);

  const host = new URL(berth.url).host;
  const fill = (url: string) => url.replace(':sub', 'sub-b').replace(':rg', 'rg').replace(':name', 'victim').replace(':container', 'main')
    .replace(':loc', 'local').replace(':op', opB).replace(':vnet', 'v').replace(':subnet', 's').replace(':tenant', 't');
  // target -> whether A may get a 2xx there at all: only caller-scoped routes (its own subscriptions, tenants, the
  // operations list) may answer, and never with anything of B's
  const targets = new Map<string, boolean>();
  for (const r of armRoutes().filter((x) => x.scope !== 'public')) for (const s of spellings(fill(r.url), host)) targets.set(s, targets.get(s) || r.scope === 'caller');
  // B's operation through A's own subscription
  for (const p of [`/subscriptions/sub-a/providers/Microsoft.ContainerInstance/locations/local/operations/${opB}`, `/subscriptions/sub-a/operationresults/${opB}`]) targets.set(p, false);
  const body = JSON.stringify(group(image));
  const agent = rawAgent();
  const outcomes = new Map<number, number>();
  const successes: string[] = [];
  const work: (() => Promise<void>)[] = [];
  for (const [target, mayAnswer] of targets)
    for (const verb of VERBS)
      work.push(async () => {
        const q = target.includes('?') ? '&' : '?';
        const withBody = verb === 'PUT' || verb === 'PATCH' || verb === 'POST';
        const r: RawResponse = await rawRequest(berth.url, verb, `${target}${q}api-version=2023-05-01`, { token: TOKEN_A, agent, ...(withBody && { body }) });
        outcomes.set(r.status, (outcomes.get(r.status) ?? 0) + 1);
        // an answer may echo what A sent (the path, in an error); what A may read must hold nothing of B's
        const leaks = r.status < 300 && (/sub-b|victim|cross-tenant-b/i.test(r.text) || r.text.includes(opB));
        if ((r.status < 300 && !mayAnswer) || r.status >= 500 || leaks) successes.push(`${verb} ${target} -> ${r.status} ${r.text.slice(0, 200)}`);
        else if (r.status >= 300 && verb !== 'HEAD') assert.ok(armError(r), `${verb} ${target}: ${r.status} without an ARM envelope: ${r.text.slice(0, 200)}`);
      });
  for (let i = 0; i < work.length; i += 16) await Promise.all(work.slice(i, i + 16).map((w) => w()));
  agent.destroy();
  console.log(`# ${work.length} cross-tenant requests (${targets.size} targets x ${VERBS.length} verbs): ${[...outcomes].sort().map(([s, n]) => `${n} x ${s}`).join(', ')}`);
  assert.deepEqual(successes, [], "no 2xx for A on B's routes, no 5xx, nothing of B's in any answer");
  assert.ok(work.length > 2000, 'every route, spelled many ways');

  // a WebSocket session exists only through a POST exec/attach, which A never got; guessing one fails
  const ws = new WebSocket(`${berth.url.replace('http', 'ws')}/exec/${'0'.repeat(32)}`);
  assert.equal(await new Promise((res) => ws.on('unexpected-response', (_q, r) => res(r.statusCode)).on('open', () => res(101))), 404);

  // B's group is as it was: same record, same container process, still running; A has nothing
  const afterward = (await apiB.req('GET', apiB.groupPath('rg', 'victim'))).body;
  assert.deepEqual({ ...afterward, properties: { ...afterward.properties, instanceView: undefined, containers: undefined } },
    { ...before, properties: { ...before.properties, instanceView: undefined, containers: undefined } });
  assert.equal(afterward.properties.instanceView.state, 'Running');
  assert.equal(afterward.properties.containers[0].properties.instanceView.restartCount, 0);
  assert.deepEqual(ociContainers(berth.runcRoot), pidsBefore);
  const apiA = new Api({ url: berth.url, token: TOKEN_A }, 'sub-a');
  assert.deepEqual((await apiA.req('GET', '/subscriptions/sub-a/providers/Microsoft.ContainerInstance/containerGroups')).body.value, []);
  assert.deepEqual((await apiA.req('GET', '/subscriptions/sub-a/resourcegroups')).body.value, []);
});
