// Property-based fuzzing of the ARM API of a real server: generated URLs, methods, headers and bodies never get a
// 5xx, every refusal is an ARM envelope, a refused request creates nothing, and the server stays up.
// BERTH_FUZZ_RUNS sets the number of requests (default 5000); BERTH_FUZZ_SEED replays a run.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { Api, endE2e, startBerth, type BerthProcess } from '../helpers/berth.js';
import { armError, rawAgent, rawRequest } from '../helpers/raw-http.js';
import { armRoutes } from '../helpers/routes.js';

const BRIDGE = 'btfuzz0';
const SUBS = ['fuzz-sub', 'fuzz-other'];
const TOKEN = 'fuzz-token';
const RUNS = Number(process.env.BERTH_FUZZ_RUNS ?? 5000);
const SEED = process.env.BERTH_FUZZ_SEED ? Number(process.env.BERTH_FUZZ_SEED) : Date.now() % 2 ** 31;
let berth: BerthProcess;

before(async () => {
  // nothing generated may run: images come from a closed port, so every accepted group fails its pull at once
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.72.0/24', config: { tokens: [{ token: TOKEN, subscriptions: SUBS }], subscriptions: SUBS } });
});
after(() => endE2e({ berth, subscriptions: SUBS, bridge: BRIDGE }));

const NAMES = ['g1', 'g2', 'rg1', 'main', 'local', 'fuzz-sub', 'fuzz-other', '00000000-0000-0000-0000-000000000000'];
const escape = (s: string) => [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
/** One path segment as a client might send it: a plausible name, text, escapes (valid or not), dots, oversize. */
const segment = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...NAMES) },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }).map((s) => encodeURIComponent(s)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }).map(escape) },
  { weight: 1, arbitrary: fc.constantFrom('%zz', '%', '%e0%a4', '%ED%A0%80', '..', '.', '%2e%2e', 'a%2Fb', 'a%00b', 'A'.repeat(3000), 'n'.repeat(300)) },
);

const routes = armRoutes();
const groupName = fc.oneof(fc.constantFrom('g1', 'g2', 'g3'), fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/));
/** A container group's path (or one of its sub-resources) with plausible names, so that creates do happen. */
const groupPath = fc.tuple(fc.constantFrom(...SUBS, 'FUZZ-SUB', 'not-mine'), fc.constantFrom('rg1', 'RG1', 'rg(2)'), groupName,
  fc.constantFrom('', '', '', '/start', '/stop', '/restart', '/containers/main/logs', '/containers/main/exec', '/containers/nope/attach', '/outboundNetworkDependenciesEndpoints'))
  .map(([sub, rg, name, tail]) => `/subscriptions/${sub}/resourceGroups/${encodeURIComponent(rg)}/providers/Microsoft.ContainerInstance/containerGroups/${name}${tail}`);
/** A route's template with each parameter replaced, or a path of random segments. */
const path = fc.oneof(
  { weight: 4, arbitrary: groupPath },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...routes.map((r) => r.url)), fc.array(segment, { minLength: 8, maxLength: 8 })).map(([url, segs]) => {
    let i = 0;
    return url.replace(/:[a-z]+/gi, () => segs[i++ % segs.length]);
  }) },
  { weight: 1, arbitrary: fc.array(segment, { maxLength: 10 }).map((segs) => `/${segs.join('/')}`) },
  { weight: 1, arbitrary: fc.constantFrom('*', 'http://127.0.0.1/subscriptions/fuzz-sub', '//', '/?', '/subscriptions//fuzz-sub//resourcegroups') },
);

const apiVersion = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('2023-05-01', '2022-10-01-preview', '2021-10-01', '2019-11-01') },
  { weight: 1, arbitrary: fc.constantFrom('', 'x', '2023-05-01&api-version=2021-10-01', '9999-99-99', '%zz') },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map(encodeURIComponent) },
);
const extraQuery = fc.array(fc.tuple(fc.constantFrom('$top', 'tail', 'timestamps', 'previous', '$skiptoken', 'x'), fc.oneof(fc.integer().map(String), fc.string({ maxLength: 30 }).map(encodeURIComponent), fc.constantFrom('true', '-1', '1e400', 'NaN'))), { maxLength: 3 });

/** A container group body with some of its values replaced by anything: what validation must refuse or accept whole. */
const leafPaths = ['location', 'tags', 'properties', 'properties.osType', 'properties.restartPolicy', 'properties.containers', 'properties.containers.0',
  'properties.containers.0.name', 'properties.containers.0.properties', 'properties.containers.0.properties.image', 'properties.containers.0.properties.command',
  'properties.containers.0.properties.ports', 'properties.containers.0.properties.resources.requests.cpu', 'properties.containers.0.properties.resources.requests.memoryInGB',
  'properties.containers.0.properties.resources.limits', 'properties.containers.0.properties.environmentVariables', 'properties.containers.0.properties.volumeMounts',
  'properties.containers.0.properties.livenessProbe', 'properties.ipAddress', 'properties.ipAddress.ports', 'properties.ipAddress.dnsNameLabel', 'properties.volumes',
  'properties.initContainers', 'properties.imageRegistryCredentials', 'properties.provisioningTimeoutInSeconds', 'properties.sku', 'identity', 'properties.subnetIds'];
const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom(null, '', -1, 0, 1e308, 'local', 'LOCAL', 'Public', '\uD800', 'x'.repeat(70_000)), fc.string());
const validGroup = () => ({
  location: 'local',
  properties: {
    osType: 'Linux', restartPolicy: 'Never',
    containers: [{ name: 'main', properties: { image: '127.0.0.1:1/fuzz:1', ports: [{ port: 80 }], resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } } }],
  },
});
const edits = fc.array(fc.tuple(fc.constantFrom(...leafPaths), fc.option(anyValue, { nil: undefined })), { minLength: 1, maxLength: 3 });
const mutatedGroup = fc.oneof(fc.constant([] as [string, unknown][]), edits).map((edits) => {
  const body = validGroup() as Record<string, any>;
  for (const [p, v] of edits) {
    const keys = p.split('.');
    let o = body;
    for (const k of keys.slice(0, -1)) {
      if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
      o = o[k];
    }
    if (v === undefined) delete o[keys[keys.length - 1]];
    else o[keys[keys.length - 1]] = v;
  }
  return JSON.stringify(body);
});
let deep = '0';
for (let i = 0; i < 5000; i++) deep = `[${deep}]`;
const body = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 6, arbitrary: mutatedGroup },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 1, arbitrary: fc.string({ maxLength: 50 }) },
  { weight: 1, arbitrary: fc.constantFrom(`{"location":"local","properties":${deep}}`, '{"a":', '\uFEFF{}', '{"__proto__":{"x":1},"location":"local"}') },
);
const contentType = fc.oneof({ weight: 4, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', undefined) });
const method = fc.oneof({ weight: 3, arbitrary: fc.constant('PUT') }, { weight: 6, arbitrary: fc.constantFrom('GET', 'PATCH', 'POST', 'DELETE', 'HEAD') },
  { weight: 1, arbitrary: fc.constantFrom('OPTIONS', 'PROPFIND', 'TRACE') });
const request = fc.record({ method, path, apiVersion, extraQuery, body, contentType, host: fc.option(fc.constantFrom('evil.example', 'a b', '[::1]:1', 'x'.repeat(300)), { nil: undefined }) });

test(`${RUNS} generated requests: no 5xx, every refusal in ARM's envelope, nothing created by a refused request, the server alive`, async () => {
  const agent = rawAgent();
  const accepted = new Set<string>();
  const statuses = new Map<number, number>();
  console.log(`# fuzz seed ${SEED} (BERTH_FUZZ_SEED=${SEED} replays it), ${RUNS} runs`);
  await fc.assert(fc.asyncProperty(request, async (r) => {
    const q = [`api-version=${r.apiVersion}`, ...r.extraQuery.map(([k, v]) => `${encodeURIComponent(k)}=${v}`)].join('&');
    const target = `${r.path}${r.path.includes('?') ? '&' : '?'}${q}`;
    const headers: Record<string, string> = { ...(r.contentType && r.body !== undefined && { 'content-type': r.contentType }), ...(r.host && { host: r.host }) };
    const res = await rawRequest(berth.url, r.method, target, { token: TOKEN, agent, body: r.body, headers });
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status >= 500) throw new Error(`${r.method} ${target.slice(0, 300)} -> ${res.status} ${res.text.slice(0, 300)}`);
    // the OAuth2 token endpoints answer as OAuth2 does ({error, error_description}): what MSAL and az expect
    const oauth = /\/oauth2\//i.test(r.path) && /"error":"[a-z_]+","error_description":"/.test(res.text);
    if (res.status >= 400 && r.method !== 'HEAD' && !armError(res) && !oauth)
      throw new Error(`${r.method} ${target.slice(0, 300)} -> ${res.status} without an ARM envelope: ${res.text.slice(0, 300)}`);
    // what a 2xx PUT of a container group made may exist afterwards; nothing else may
    if (r.method === 'PUT' && res.status < 300) {
      const m = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.containerinstance\/containergroups\/([^/?]+)$/i
        .exec(new URL(target, 'http://x').pathname.replace(/\/+/g, '/').replace(/\/$/, ''));
      const id = (JSON.parse(res.text) as { id?: string }).id;
      if (m || id) accepted.add(String(id).toLowerCase());
    }
  }), { numRuns: RUNS, seed: SEED, endOnFailure: true });
  agent.destroy();
  console.log(`# statuses: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${n} x ${s}`).join(', ')}; ${accepted.size} groups accepted`);
  assert.equal((await fetch(`${berth.url}/healthz`)).status, 200, 'the server is alive');
  for (const sub of SUBS) {
    const api = new Api({ url: berth.url, token: TOKEN }, sub);
    const listed = (await api.req('GET', `/subscriptions/${sub}/providers/Microsoft.ContainerInstance/containerGroups?$top=1000`)).body.value as { id: string }[];
    for (const g of listed) assert.ok(accepted.has(g.id.toLowerCase()), `${g.id} exists but no request creating it was accepted`);
  }
  // it still serves a plain create afterwards
  const api = new Api({ url: berth.url, token: TOKEN }, 'fuzz-sub');
  assert.equal((await api.req('PUT', api.groupPath('after', 'after'), validGroup())).status, 201);
});
