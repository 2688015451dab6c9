// Unit tests of request validation: what is accepted is normalised, what is not names its property.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BerthError } from '../lib/errors.js';
import { parseGroupSpec, redactSpec, specToBody } from './model.js';

const body = (props: Record<string, unknown> = {}, container: Record<string, unknown> = {}) => ({
  location: 'local',
  properties: {
    containers: [{ name: 'web', properties: { image: 'nginx', resources: { requests: { cpu: 1, memoryInGB: 1.5 } }, ...container } }],
    ...props,
  },
});

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (e instanceof BerthError) return [e.code, e.target];
    throw e;
  }
  return undefined;
};

test('a minimal group gets the defaults ACI applies', () => {
  const { spec, location } = parseGroupSpec(body());
  assert.equal(location, 'local');
  assert.equal(spec.restartPolicy, 'Always');
  assert.equal(spec.osType, 'Linux');
  assert.deepEqual(spec.containers[0], {
    name: 'web', image: 'nginx', command: [], ports: [], environmentVariables: [], requests: { cpu: 1, memoryInGB: 1.5 }, volumeMounts: [],
  });
});

test('enums are case-insensitive on input and canonical after', () => {
  const { spec } = parseGroupSpec(body({ restartPolicy: 'onfailure', osType: 'linux' }, { ports: [{ port: 80, protocol: 'tcp' }] }));
  assert.equal(spec.restartPolicy, 'OnFailure');
  assert.equal(spec.containers[0].ports[0].protocol, 'TCP');
});

test('errors carry the code and the JSON path of what is wrong', () => {
  assert.deepEqual(code(() => parseGroupSpec(body({}, { resources: { requests: { cpu: 0, memoryInGB: 1 } } }))), ['InvalidCpuRequest', 'properties.containers[0].properties.resources.requests.cpu']);
  assert.deepEqual(code(() => parseGroupSpec(body({}, { ports: [{ port: 70000 }] }))), ['InvalidPort', 'properties.containers[0].properties.ports[0].port']);
  assert.deepEqual(code(() => parseGroupSpec(body({ restartPolicy: 'Sometimes' }))), ['InvalidRestartPolicy', 'properties.restartPolicy']);
  assert.deepEqual(code(() => parseGroupSpec(body({}, { volumeMounts: [{ name: 'v', mountPath: '/x' }] }))), ['InvalidVolumeMount', 'properties.containers[0].properties.volumeMounts[0].name']);
});

test('secrets are kept for the agent but never rendered back', () => {
  const { spec } = parseGroupSpec(body(
    { volumes: [{ name: 'creds', secret: { token: Buffer.from('hunter2').toString('base64') } }], imageRegistryCredentials: [{ server: 'r.example', username: 'u', password: 'pw-123' }] },
    { environmentVariables: [{ name: 'A', value: '1' }, { name: 'S', secureValue: 'sv-456' }], volumeMounts: [{ name: 'creds', mountPath: '/creds', readOnly: true }] },
  ));
  assert.equal(spec.containers[0].environmentVariables[1].secureValue, 'sv-456');
  assert.equal(spec.volumes[0].secret?.token, Buffer.from('hunter2').toString('base64'));
  const shown = JSON.stringify(redactSpec(spec));
  assert.doesNotMatch(shown, /sv-456|pw-123|aHVudGVyMg/);
  assert.match(shown, /"name":"S"/);
  assert.match(shown, /"username":"u"/);
});

test('what berth cannot honour yet is refused by name, in any version\'s field, never dropped', () => {
  const refused = (props: Record<string, unknown>, container: Record<string, unknown> = {}, root: Record<string, unknown> = {}) =>
    code(() => parseGroupSpec({ ...body(props, container), ...root }));
  assert.deepEqual(refused({ confidentialComputeProperties: { ccePolicy: 'x' } }), ['UnsupportedFeature', 'properties.confidentialComputeProperties']);
  assert.deepEqual(refused({ priority: 'Spot' }), ['UnsupportedFeature', 'properties.priority']);
  assert.deepEqual(refused({ standbyPoolProfile: { id: '/subscriptions/s/pool' } }), ['UnsupportedFeature', 'properties.standbyPoolProfile']);
  assert.deepEqual(refused({ sku: 'Confidential' }), ['UnsupportedFeature', 'properties.sku']);
  assert.deepEqual(refused({ dnsConfig: { nameServers: ['10.0.0.10'] } }), ['UnsupportedFeature', 'properties.dnsConfig']);
  assert.deepEqual(refused({}, { configMap: { keyValuePairs: { a: 'b' } } }), ['UnsupportedFeature', 'properties.containers[0].properties.configMap']);
  assert.deepEqual(refused({}, { environmentVariables: [{ name: 'A', value: '1' }, { name: 'S', secureValueReference: 'kv' }] }),
    ['UnsupportedFeature', 'properties.containers[0].properties.environmentVariables[1].secureValueReference']);
  assert.deepEqual(refused({ volumes: [{ name: 'v', secretReference: { a: 'kv' } }] }), ['UnsupportedFeature', 'properties.volumes[0].secretReference']);
  assert.deepEqual(refused({ sku: 'Large' }), ['InvalidRequestContent', 'properties.sku']);
  // what clients send as defaults or empties changes nothing and passes
  for (const ok of [{ priority: 'Regular', sku: 'Standard' }, { priority: null, dnsConfig: null, confidentialComputeProperties: {}, subnetIds: [], extensions: [] }])
    assert.equal(refused(ok), undefined, JSON.stringify(ok));
  assert.equal(refused({}, { configMap: { keyValuePairs: {} } }, { zones: [] }), undefined);
});

test("ACI's zones and berth's placement rules are parsed into the spec and shown back, with where the group runs", () => {
  const { spec } = parseGroupSpec({ ...body({ placement: { strategy: 'spread', antiAffinity: [{ selector: { tags: { app: 'web' } }, scope: 'Zone' }], host: 'h1', zone: '2' } }), zones: ['1', '2'] });
  assert.deepEqual(spec.zones, ['1', '2']);
  // the enum's canonical spelling; a term is required unless it says not; read-only host and zone sent back are ignored
  assert.deepEqual(spec.placement, { strategy: 'Spread', antiAffinity: [{ selector: { tags: { app: 'web' } }, scope: 'Zone', required: true }] });
  const plain = parseGroupSpec(body({ placement: { host: 'h1' } }));
  assert.equal(plain.spec.placement, undefined, 'only read-only parts: no rules');
  assert.equal(plain.spec.zones, undefined);
});

test('a spec written back unredacted parses into the same spec (a profile revision expanded into a group)', () => {
  const { spec } = parseGroupSpec(body(
    {
      volumes: [{ name: 'creds', secret: { token: Buffer.from('hunter2').toString('base64') } }, { name: 'scratch', emptyDir: {} }],
      imageRegistryCredentials: [{ server: 'r.example', username: 'u', password: 'pw-123' }], restartPolicy: 'OnFailure', provisioningTimeoutInSeconds: 60,
      initContainers: [{ name: 'init', properties: { image: 'busybox', command: ['true'], environmentVariables: [{ name: 'I', secureValue: 'x' }] } }],
    },
    {
      environmentVariables: [{ name: 'A', value: '1' }, { name: 'S', secureValue: 'sv-456' }], ports: [{ port: 80 }],
      volumeMounts: [{ name: 'creds', mountPath: '/creds', readOnly: true }], resources: { requests: { cpu: 0.5, memoryInGB: 0.5 }, limits: { cpu: 1 } },
      readinessProbe: { httpGet: { port: 80, path: '/ready' }, periodSeconds: 2 }, livenessProbe: { exec: { command: ['true'] } },
    },
  ));
  const withIp = { ...spec, ipAddress: { type: 'Private' as const, ports: [{ port: 80, protocol: 'TCP' as const }] } };
  assert.deepEqual(parseGroupSpec({ location: 'local', properties: specToBody(withIp, { redact: false }) }).spec, withIp);
  assert.doesNotMatch(JSON.stringify(specToBody(withIp, { redact: true })), /sv-456|pw-123|aHVudGVyMg|ipAddress|provisioningTimeout/);
});
