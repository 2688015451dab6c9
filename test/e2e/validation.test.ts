// Bad input through the ARM API: each malformed or out-of-limit request gets its 4xx ARM error and nothing is created.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Api, endE2e, group, startBerth, type BerthProcess } from '../helpers/berth.js';

let berth: BerthProcess;
let api: Api;
const IMG = '127.0.0.1:5999/never-pulled:1';
const P = (name = 'ok') => `/subscriptions/val-sub/resourceGroups/rg1/providers/Microsoft.ContainerInstance/containerGroups/${name}`;

before(async () => {
  berth = await startBerth({ bridge: 'btval0', subnet: '10.213.65.0/24' });
  api = new Api(berth, 'val-sub');
});
after(() => endE2e({ berth, subscriptions: ['val-sub'], bridge: 'btval0' }));

type Case = { name: string; status: number; code: string; target?: RegExp; method?: string; path?: string; body?: unknown; raw?: string; token?: string | null; apiVersion?: string | null; contentType?: string };

const withContainer = (patch: Record<string, unknown>, resources?: unknown) => {
  const b = group(IMG);
  const c = (b.properties.containers[0] as { properties: Record<string, unknown> }).properties;
  Object.assign(c, patch);
  if (resources !== undefined) c.resources = resources;
  return b;
};
const withProps = (patch: Record<string, unknown>) => {
  const b = group(IMG);
  Object.assign(b.properties, patch);
  return b;
};
const ctr = (name: string, extra: Record<string, unknown> = {}) => ({ name, properties: { image: IMG, resources: { requests: { cpu: 1, memoryInGB: 1 } }, ...extra } });

const cases: Case[] = [
  // names
  { name: 'uppercase group name', status: 400, code: 'InvalidResourceName', path: P('BadName'), body: group(IMG) },
  { name: 'group name with underscore', status: 400, code: 'InvalidResourceName', path: P('bad_name'), body: group(IMG) },
  { name: 'group name starting with dash', status: 400, code: 'InvalidResourceName', path: P('-bad'), body: group(IMG) },
  { name: 'group name ending with dash', status: 400, code: 'InvalidResourceName', path: P('bad-'), body: group(IMG) },
  { name: 'group name with double dash', status: 400, code: 'InvalidResourceName', path: P('a--b'), body: group(IMG) },
  { name: 'group name of 64 characters', status: 400, code: 'InvalidResourceName', path: P('a'.repeat(64)), body: group(IMG) },
  { name: 'resource group ending in a period', status: 400, code: 'InvalidResourceName', path: P().replace('rg1', 'rg.'), body: group(IMG) },
  { name: 'resource group with a star', status: 400, code: 'InvalidResourceName', path: P().replace('rg1', 'r*g'), body: group(IMG) },
  { name: 'invalid container name', status: 400, code: 'InvalidContainerName', target: /containers\[0\]\.name/, body: withProps({ containers: [ctr('Main')] }) },
  { name: 'duplicate container names', status: 400, code: 'DuplicateContainerName', body: withProps({ containers: [ctr('a'), ctr('a')] }) },
  { name: 'missing container name', status: 400, code: 'MissingRequiredProperty', body: withProps({ containers: [{ properties: ctr('x').properties }] }) },
  // image
  { name: 'missing image', status: 400, code: 'MissingRequiredProperty', target: /image/, body: withContainer({ image: undefined }) },
  { name: 'empty image', status: 400, code: 'InvalidImage', body: withContainer({ image: '' }) },
  { name: 'image with spaces', status: 400, code: 'InvalidImage', body: withContainer({ image: 'busy box' }) },
  { name: 'image not a string', status: 400, code: 'InvalidRequestContent', body: withContainer({ image: 42 }) },
  // resources
  { name: 'cpu 0', status: 400, code: 'InvalidCpuRequest', body: withContainer({}, { requests: { cpu: 0, memoryInGB: 1 } }) },
  { name: 'cpu 100', status: 400, code: 'InvalidCpuRequest', body: withContainer({}, { requests: { cpu: 100, memoryInGB: 1 } }) },
  { name: 'negative cpu', status: 400, code: 'InvalidCpuRequest', body: withContainer({}, { requests: { cpu: -1, memoryInGB: 1 } }) },
  { name: 'cpu as a string', status: 400, code: 'InvalidCpuRequest', body: withContainer({}, { requests: { cpu: 'lots', memoryInGB: 1 } }) },
  { name: 'missing cpu', status: 400, code: 'InvalidCpuRequest', body: withContainer({}, { requests: { memoryInGB: 1 } }) },
  { name: 'memory 0', status: 400, code: 'InvalidMemoryRequest', body: withContainer({}, { requests: { cpu: 1, memoryInGB: 0 } }) },
  { name: 'memory 1000 GB', status: 400, code: 'InvalidMemoryRequest', body: withContainer({}, { requests: { cpu: 1, memoryInGB: 1000 } }) },
  { name: 'missing resources', status: 400, code: 'MissingRequiredProperty', body: withContainer({}, null) },
  { name: 'missing requests', status: 400, code: 'MissingRequiredProperty', body: withContainer({}, { limits: { cpu: 1 } }) },
  { name: 'cpu limit below request', status: 400, code: 'InvalidCpuLimit', body: withContainer({}, { requests: { cpu: 2, memoryInGB: 1 }, limits: { cpu: 1 } }) },
  { name: 'memory limit above maximum', status: 400, code: 'InvalidMemoryLimit', body: withContainer({}, { requests: { cpu: 1, memoryInGB: 1 }, limits: { memoryInGB: 99 } }) },
  { name: 'GPU request', status: 400, code: 'UnsupportedFeature', body: withContainer({}, { requests: { cpu: 1, memoryInGB: 1, gpu: { count: 1, sku: 'K80' } } }) },
  // ports
  { name: 'port 70000', status: 400, code: 'InvalidPort', body: withContainer({ ports: [{ port: 70000 }] }) },
  { name: 'port 0', status: 400, code: 'InvalidPort', body: withContainer({ ports: [{ port: 0 }] }) },
  { name: 'port 80.5', status: 400, code: 'InvalidPort', body: withContainer({ ports: [{ port: 80.5 }] }) },
  { name: 'bad port protocol', status: 400, code: 'InvalidPort', body: withContainer({ ports: [{ port: 80, protocol: 'SCTP' }] }) },
  { name: 'same port in two containers', status: 400, code: 'DuplicatePorts', body: withProps({ containers: [ctr('a', { ports: [{ port: 80 }] }), ctr('b', { ports: [{ port: 80 }] })] }) },
  { name: 'IP port no container exposes', status: 400, code: 'InvalidIpAddressPort', body: withProps({ ipAddress: { type: 'Public', ports: [{ port: 81 }] } }) },
  { name: 'IP address without ports', status: 400, code: 'InvalidIpAddressPort', body: withProps({ ipAddress: { type: 'Public', ports: [] } }) },
  { name: 'bad IP address type', status: 400, code: 'InvalidRequestContent', body: withProps({ ipAddress: { type: 'Elastic', ports: [{ port: 80 }] } }) },
  { name: 'DNS name label of 4 characters', status: 400, code: 'InvalidRequestContent', target: /dnsNameLabel/, body: withProps({ containers: [ctr('a', { ports: [{ port: 80 }] })], ipAddress: { type: 'Public', ports: [{ port: 80 }], dnsNameLabel: 'abcd' } }) },
  { name: 'DNS name label starting with a digit', status: 400, code: 'InvalidRequestContent', target: /dnsNameLabel/, body: withProps({ containers: [ctr('a', { ports: [{ port: 80 }] })], ipAddress: { type: 'Public', ports: [{ port: 80 }], dnsNameLabel: '1abcde' } }) },
  { name: 'unknown DNS name label scope', status: 400, code: 'InvalidRequestContent', target: /autoGeneratedDomainNameLabelScope/, body: withProps({ containers: [ctr('a', { ports: [{ port: 80 }] })], ipAddress: { type: 'Public', ports: [{ port: 80 }], dnsNameLabel: 'abcde', autoGeneratedDomainNameLabelScope: 'Anyone' } }) },
  { name: 'provisioning timeout of 0', status: 400, code: 'InvalidRequestContent', target: /provisioningTimeoutInSeconds/, body: withProps({ provisioningTimeoutInSeconds: 0 }) },
  { name: 'provisioning timeout not a number', status: 400, code: 'InvalidRequestContent', target: /provisioningTimeoutInSeconds/, body: withProps({ provisioningTimeoutInSeconds: '60' }) },
  // group properties
  { name: 'no containers', status: 400, code: 'MissingRequiredProperty', body: withProps({ containers: [] }) },
  { name: 'no properties', status: 400, code: 'MissingRequiredProperty', body: { location: 'local' } },
  { name: 'bad restart policy', status: 400, code: 'InvalidRestartPolicy', body: withProps({ restartPolicy: 'Sometimes' }) },
  { name: 'Windows osType', status: 400, code: 'UnsupportedFeature', body: withProps({ osType: 'Windows' }) },
  { name: 'bad env var name', status: 400, code: 'InvalidEnvironmentVariable', body: withContainer({ environmentVariables: [{ name: '1X', value: 'a' }] }) },
  { name: 'env var with value and secureValue', status: 400, code: 'InvalidEnvironmentVariable', body: withContainer({ environmentVariables: [{ name: 'X', value: 'a', secureValue: 'b' }] }) },
  { name: 'mount of an undefined volume', status: 400, code: 'InvalidVolumeMount', body: withContainer({ volumeMounts: [{ name: 'nope', mountPath: '/data' }] }) },
  { name: 'secret not base64', status: 400, code: 'InvalidVolume', body: withProps({ volumes: [{ name: 'v', secret: { f: 'not base64!' } }] }) },
  { name: 'azureFile volume', status: 400, code: 'UnsupportedFeature', body: withProps({ volumes: [{ name: 'v', azureFile: { shareName: 's', storageAccountName: 'a' } }] }) },
  // newer api-versions' features berth does not have yet: refused by name, never dropped
  { name: 'confidential containers', status: 400, code: 'UnsupportedFeature', target: /^properties\.confidentialComputeProperties$/, body: withProps({ confidentialComputeProperties: { ccePolicy: 'eyJ9' } }) },
  { name: 'Spot priority', status: 400, code: 'UnsupportedFeature', target: /^properties\.priority$/, body: withProps({ priority: 'Spot' }), apiVersion: '2026-06-01-preview' },
  { name: 'a standby pool', status: 400, code: 'UnsupportedFeature', target: /^properties\.standbyPoolProfile$/, body: withProps({ standbyPoolProfile: { id: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.StandbyPool/standbyContainerGroupPools/p' } }), apiVersion: '2025-09-01' },
  { name: 'a container group profile that is no profile', status: 400, code: 'InvalidRequestContent', target: /^properties\.containerGroupProfile\.id$/, body: { location: 'local', properties: { containerGroupProfile: { id: '/subscriptions/s/p', revision: 1 } } } },
  { name: 'a container group profile that is not there', status: 404, code: 'ContainerGroupProfileNotFound', target: /^properties\.containerGroupProfile\.id$/, body: { location: 'local', properties: { containerGroupProfile: { id: '/subscriptions/val-sub/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroupProfiles/none' } } } },
  { name: 'availability zones on a single-host berth', status: 400, code: 'UnsupportedFeature', target: /^zones$/, body: { ...withProps({}), zones: ['1'] } },
  { name: 'placement rules on a single-host berth', status: 400, code: 'UnsupportedFeature', target: /^properties\.placement$/, body: withProps({ placement: { strategy: 'Spread' } }) },
  { name: 'a placement rule that cannot mean anything', status: 400, code: 'InvalidPlacement', target: /^properties\.placement\.antiAffinity\[0\]\.selector$/, body: withProps({ placement: { antiAffinity: [{ selector: {} }] } }) },
  { name: 'a config map', status: 400, code: 'UnsupportedFeature', target: /configMap$/, body: withContainer({ configMap: { keyValuePairs: { a: 'b' } } }) },
  { name: 'a Key Vault secret reference', status: 400, code: 'UnsupportedFeature', target: /secureValueReference$/, body: withContainer({ environmentVariables: [{ name: 'S', secureValueReference: 'kv' }] }) },
  // probes, init containers, gitRepo
  { name: 'probe with exec and httpGet', status: 400, code: 'InvalidProbe', target: /livenessProbe/, body: withContainer({ livenessProbe: { exec: { command: ['true'] }, httpGet: { port: 80 } } }) },
  { name: 'probe with neither exec nor httpGet', status: 400, code: 'InvalidProbe', body: withContainer({ readinessProbe: { periodSeconds: 1 } }) },
  { name: 'exec probe without command', status: 400, code: 'InvalidProbe', body: withContainer({ livenessProbe: { exec: { command: [] } } }) },
  { name: 'httpGet probe on port 0', status: 400, code: 'InvalidProbe', body: withContainer({ readinessProbe: { httpGet: { port: 0 } } }) },
  { name: 'probe period 0', status: 400, code: 'InvalidProbe', target: /periodSeconds/, body: withContainer({ readinessProbe: { exec: { command: ['true'] }, periodSeconds: 0 } }) },
  { name: 'liveness successThreshold 2', status: 400, code: 'InvalidProbe', body: withContainer({ livenessProbe: { exec: { command: ['true'] }, successThreshold: 2 } }) },
  { name: 'httpGet probe scheme ftp', status: 400, code: 'InvalidProbe', body: withContainer({ readinessProbe: { httpGet: { port: 80, scheme: 'ftp' } } }) },
  { name: 'httpGet header with newline', status: 400, code: 'InvalidProbe', body: withContainer({ readinessProbe: { httpGet: { port: 80, httpHeaders: [{ name: 'X', value: 'a\r\nB: c' }] } } }) },
  { name: 'init container named like a container', status: 400, code: 'DuplicateContainerName', body: withProps({ initContainers: [{ name: 'main', properties: { image: IMG } }] }) },
  { name: 'init container without image', status: 400, code: 'MissingRequiredProperty', target: /initContainers\[0\]\.properties\.image/, body: withProps({ initContainers: [{ name: 'i', properties: {} }] }) },
  { name: 'init container mounting an undefined volume', status: 400, code: 'InvalidVolumeMount', body: withProps({ initContainers: [{ name: 'i', properties: { image: IMG, volumeMounts: [{ name: 'v', mountPath: '/v' }] } }] }) },
  { name: 'gitRepo without repository', status: 400, code: 'MissingRequiredProperty', body: withProps({ volumes: [{ name: 'v', gitRepo: {} }] }) },
  { name: 'gitRepo from a local path', status: 400, code: 'InvalidVolume', body: withProps({ volumes: [{ name: 'v', gitRepo: { repository: '/etc' } }] }) },
  { name: 'gitRepo directory with ..', status: 400, code: 'InvalidVolume', body: withProps({ volumes: [{ name: 'v', gitRepo: { repository: 'https://example.invalid/r.git', directory: '../x' } }] }) },
  { name: 'gitRepo revision starting with -', status: 400, code: 'InvalidVolume', body: withProps({ volumes: [{ name: 'v', gitRepo: { repository: 'https://example.invalid/r.git', revision: '--upload-pack=x' } }] }) },
  // location and image, checked at admission
  { name: 'a location berth does not serve', status: 400, code: 'LocationNotAvailableForResourceType', target: /^location$/, body: { ...group(IMG), location: 'westeurope' } },
  { name: 'a location of 100000 characters', status: 400, code: 'LocationNotAvailableForResourceType', body: { ...group(IMG), location: 'x'.repeat(100_000) } },
  { name: 'a location that is a lone surrogate', status: 400, code: 'LocationNotAvailableForResourceType', raw: JSON.stringify(group(IMG)).replace('"local"', '"\\uD800"') },
  { name: 'an image with upper case', status: 400, code: 'InvalidImage', target: /image$/, body: withContainer({ image: 'Example/Web:1' }) },
  { name: 'an image with a bad digest', status: 400, code: 'InvalidImage', body: withContainer({ image: 'web@sha256:xyz' }) },
  { name: 'usage of a location berth does not serve', status: 400, code: 'LocationNotAvailableForResourceType', method: 'GET', path: '/subscriptions/val-sub/providers/Microsoft.ContainerInstance/locations/mars/usages' },
  // nesting and size, refused before any recursive work
  { name: 'an array nested 10000 deep in a scalar field', status: 400, code: 'RequestContentTooComplex', raw: JSON.stringify(group(IMG)).replace('"Linux"', `${'['.repeat(10_000)}${']'.repeat(10_000)}`) },
  // request targets
  { name: 'a bad percent-escape in the path', status: 400, code: 'InvalidRequestUri', method: 'GET', path: '/subscriptions/val-sub/resourcegroups/%zz' },
  { name: 'an encoded slash in a segment', status: 400, code: 'InvalidRequestUri', method: 'GET', path: '/subscriptions/val-sub%2Fother/resourcegroups' },
  { name: 'an over-long path segment', status: 414, code: 'RequestUriTooLong', method: 'GET', path: `/subscriptions/val-sub/resourcegroups/${'r'.repeat(5000)}` },
  // transport
  { name: 'bad JSON', status: 400, code: 'InvalidRequestContent', raw: '{"properties": ' },
  { name: 'JSON array body', status: 400, code: 'InvalidRequestContent', raw: '[1,2]' },
  { name: 'text/plain body', status: 415, code: 'UnsupportedMediaType', raw: 'hello', contentType: 'text/plain' },
  { name: 'unknown api-version', status: 400, code: 'InvalidApiVersionParameter', body: group(IMG), apiVersion: '2099-01-01' },
  { name: 'missing api-version', status: 400, code: 'MissingApiVersionParameter', body: group(IMG), apiVersion: null },
  { name: 'no token', status: 401, code: 'AuthenticationFailed', body: group(IMG), token: null },
  { name: 'wrong token', status: 401, code: 'InvalidAuthenticationToken', body: group(IMG), token: 'not-the-token' },
  { name: 'GET of a missing group', status: 404, code: 'ResourceNotFound', method: 'GET', path: P('missing') },
  { name: 'logs of a missing container', status: 404, code: 'ResourceNotFound', method: 'GET', path: `${P('missing')}/containers/x/logs` },
  { name: 'unknown route', status: 404, code: 'NotFound', method: 'GET', path: '/subscriptions/val-sub/nope' },
];

test(`${cases.length} malformed or out-of-limit requests each get their ARM error, and nothing is created`, async () => {
  assert.ok(cases.length >= 50);
  for (const c of cases) {
    const r = await api.req(c.method ?? 'PUT', c.path ?? P(), c.body, { rawBody: c.raw, token: c.token, apiVersion: c.apiVersion, contentType: c.contentType });
    assert.equal(r.status, c.status, `${c.name}: status ${r.status} ${r.text}`);
    assert.equal(r.body?.error?.code, c.code, `${c.name}: ${r.text}`);
    assert.equal(typeof r.body.error.message, 'string', c.name);
    assert.ok(r.body.error.message.length > 10, c.name);
    if (c.target) assert.match(r.body.error.target ?? '', c.target, c.name);
  }
  const list = await api.req('GET', '/subscriptions/val-sub/providers/Microsoft.ContainerInstance/containerGroups');
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.value, []);
  assert.equal(berth.child.exitCode, null, 'the server is still up');
  assert.equal((await fetch(`${berth.url}/healthz`)).status, 200);
});

test('what the HTTP parser refuses (oversized headers, malformed requests) is answered in an ARM envelope too', async () => {
  const { connect } = await import('node:net');
  const u = new URL(berth.url);
  const send = (bytes: string) => new Promise<string>((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname, () => sock.end(bytes));
    let out = '';
    sock.on('data', (d) => (out += d)).on('end', () => resolve(out)).on('error', reject);
  });
  const cases: [string, string, number, string][] = [
    ['headers over 16 KiB', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'RequestHeaderFieldsTooLarge'],
    ['not HTTP at all', 'HELLO THERE\r\n\r\n', 400, 'InvalidRequestContent'],
    ['a space in the target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'InvalidRequestContent'],
  ];
  for (const [what, bytes, status, code] of cases) {
    const res = await send(bytes);
    assert.match(res, new RegExp(`^HTTP/1\\.1 ${status} `), what);
    const body = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
    assert.equal(body.error.code, code, what);
  }
  // an absolute-form target is refused, never routed (fetch cannot send one: http.request can)
  const { rawRequest } = await import('../helpers/raw-http.js');
  const abs = await rawRequest(berth.url, 'GET', `http://${u.host}/subscriptions/val-sub/resourcegroups?api-version=2023-05-01`, { token: berth.token });
  assert.equal(abs.status, 400);
  assert.equal(JSON.parse(abs.text).error.code, 'InvalidRequestUri');
});

test('an update that changes what ACI cannot update in place is refused with its message, and changes nothing', async () => {
  const base = () => withProps({
    restartPolicy: 'OnFailure',
    containers: [ctr('app', { environmentVariables: [{ name: 'A', value: '1' }], resources: { requests: { cpu: 0.5, memoryInGB: 0.5 }, limits: { cpu: 1, memoryInGB: 1 } } })],
  }) as { location: string; properties: { restartPolicy: string; containers: { name: string; properties: Record<string, any> }[] } };
  const created = await api.req('PUT', P('imm'), base());
  assert.equal(created.status, 201, created.text);
  const before = (await api.req('GET', P('imm'))).body;

  const changes: [string, (b: ReturnType<typeof base>) => void, RegExp][] = [
    ['restart policy', (b) => (b.properties.restartPolicy = 'Always'), /restartPolicy/],
    ['CPU request', (b) => (b.properties.containers[0].properties.resources.requests.cpu = 1), /resources/],
    ['memory request', (b) => (b.properties.containers[0].properties.resources.requests.memoryInGB = 1), /resources/],
    ['CPU limit', (b) => (b.properties.containers[0].properties.resources.limits.cpu = 2), /resources/],
    ['memory limit dropped', (b) => delete b.properties.containers[0].properties.resources.limits.memoryInGB, /resources/],
    ['a container added', (b) => b.properties.containers.push(ctr('sidecar')), /containers/],
    ['a container renamed', (b) => (b.properties.containers[0].name = 'app2'), /containers\[0\]\.name/],
  ];
  for (const [what, change, target] of changes) {
    const b = base();
    change(b);
    const r = await api.req('PUT', P('imm'), b);
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(r.body.error.code, 'InvalidContainerGroupUpdate', what);
    assert.equal(r.body.error.message, "The updates on container group 'imm' are invalid. If you are going to update the os type, restart policy, network profile, CPU, memory or GPU resources for a container group, you must delete it first and then create a new one.");
    assert.match(r.body.error.target, target, what);
  }
  const after = (await api.req('GET', P('imm'))).body;
  assert.deepEqual(after.properties.containers.map((c: any) => c.properties.resources), before.properties.containers.map((c: any) => c.properties.resources));
  assert.equal(after.properties.restartPolicy, 'OnFailure');

  // What ACI updates in place: image, command, environment, ports, labels, tags.
  const ok = base();
  ok.properties.containers[0].properties.image = '127.0.0.1:5999/never-pulled:2';
  ok.properties.containers[0].properties.environmentVariables = [{ name: 'A', value: '2' }];
  ok.properties.containers[0].properties.command = ['sleep', '1'];
  const updated = await api.req('PUT', P('imm'), ok);
  assert.equal(updated.status, 200, updated.text);
  assert.equal(updated.body.properties.containers[0].properties.image, '127.0.0.1:5999/never-pulled:2');
  await api.deleteAndWait('rg1', 'imm');
});
