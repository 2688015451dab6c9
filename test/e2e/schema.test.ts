// Every response of every ACI operation validates against the 2023-05-01 spec's declared schema.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { allOperations, responseSchema, validate } from '../helpers/swagger.js';
import { Api, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'btschema0';
const SUB = 'schema-sub';
let registry: TestRegistry;
let berth: BerthProcess;
let api: Api;
let image: string;
const covered = new Set<string>();

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'web', '1', { cmd: ['sh', '-c', 'echo up; exec httpd -f -p 8091 -h /www'] })).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.71.0/24' });
  api = new Api(berth, SUB);
});
after(async () => {
  try {
    await berth?.destroy([SUB]);
  } finally {
    await registry?.stop();
    execFileSync('bash', ['-c', `ip link del ${BRIDGE} 2>/dev/null || true`]);
  }
});

/** Calls the API and checks the body against what the spec declares for that operation and status. */
async function call(method: string, path: string, body?: unknown) {
  const r = await api.req(method, path, body);
  const declared = responseSchema(method, path, r.status);
  assert.ok(declared, `${method} ${path} is an operation of the spec`);
  assert.ok(!declared.operationId.includes('not declared'), `${declared.operationId} for ${method} ${path}: ${r.text}`);
  covered.add(declared.operationId);
  if (declared.schema) {
    const errors = validate(r.body, declared.schema);
    assert.deepEqual(errors, [], `${declared.operationId} ${r.status}: ${r.text.slice(0, 2000)}`);
  } else assert.equal(r.text, '', `${declared.operationId} ${r.status} declares no body`);
  return r;
}

const G = (name: string) => api.groupPath('rg', name);
const full = () => ({
  location: 'local',
  tags: { app: 'schema' },
  properties: {
    osType: 'Linux',
    restartPolicy: 'OnFailure',
    containers: [
      {
        name: 'web',
        properties: {
          image, command: [], ports: [{ port: 8091, protocol: 'TCP' }],
          environmentVariables: [{ name: 'A', value: '1' }, { name: 'S', secureValue: 'hidden' }],
          resources: { requests: { cpu: 0.5, memoryInGB: 0.25 }, limits: { cpu: 1, memoryInGB: 0.5 } },
          volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }, { name: 'creds', mountPath: '/creds', readOnly: true }],
          livenessProbe: { httpGet: { path: '/', port: 8091, scheme: 'http', httpHeaders: [{ name: 'X-A', value: 'b' }] }, periodSeconds: 5 },
          readinessProbe: { exec: { command: ['true'] }, periodSeconds: 1 },
        },
      },
      { name: 'sidecar', properties: { image, command: ['sleep', '1000'], resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } } },
    ],
    initContainers: [{ name: 'init', properties: { image, command: ['sh', '-c', 'echo init > /scratch/x'], environmentVariables: [{ name: 'S', secureValue: 'x' }], volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] } }],
    volumes: [{ name: 'scratch', emptyDir: {} }, { name: 'creds', secret: { token: Buffer.from('t0k3n').toString('base64') } }],
    ipAddress: { type: 'Public', ports: [{ port: 8091, protocol: 'TCP' }] },
  },
});

test('every operation answers in the shape the ACI spec declares', async () => {
  const put = await call('PUT', G('full'), full());
  assert.equal(put.status, 201);
  assert.equal((await api.waitOp(put.headers.get('azure-asyncoperation')!)).status, 'Succeeded');
  assert.equal((await call('PUT', G('full'), full())).status, 200);
  // The init container runs first: the group is Pending until it has completed.
  await api.waitFor('the group Running', async () => (await api.req('GET', G('full'))).body.properties.instanceView.state === 'Running', 20_000);
  const got = await call('GET', G('full'));
  assert.equal(got.body.properties.instanceView.state, 'Running');
  assert.equal(got.body.properties.containers.length, 2);
  assert.equal(got.body.properties.initContainers[0].properties.instanceView.currentState.detailStatus, 'Completed');
  await call('PATCH', G('full'), { tags: { app: 'schema', more: 'yes' } });
  await call('GET', `/subscriptions/${SUB}/providers/Microsoft.ContainerInstance/containerGroups`);
  await call('GET', `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups`);
  await call('GET', `${G('full')}/containers/web/logs?tail=10&timestamps=true`);
  await call('POST', `${G('full')}/containers/web/exec`, { command: '/bin/sh', terminalSize: { rows: 24, cols: 80 } });
  await call('POST', `${G('full')}/containers/web/attach`);
  await call('GET', `${G('full')}/outboundNetworkDependenciesEndpoints`);
  await call('GET', `/subscriptions/${SUB}/providers/Microsoft.ContainerInstance/locations/local/usages`);
  await call('GET', `/subscriptions/${SUB}/providers/Microsoft.ContainerInstance/locations/local/capabilities`);
  await call('GET', `/subscriptions/${SUB}/providers/Microsoft.ContainerInstance/locations/local/cachedImages`);
  await call('GET', '/providers/Microsoft.ContainerInstance/operations');
  await call('DELETE', `/subscriptions/${SUB}/resourcegroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/s1/providers/Microsoft.ContainerInstance/serviceAssociationLinks/default`);
  const restart = await call('POST', `${G('full')}/restart`);
  await api.waitOp(restart.headers.get('azure-asyncoperation')!);
  await call('POST', `${G('full')}/stop`);
  const start = await call('POST', `${G('full')}/start`);
  await api.waitOp(start.headers.get('azure-asyncoperation')!);
  // Errors are CloudError envelopes.
  await call('GET', G('missing'));
  await call('PUT', G('bad'), { properties: { containers: [] } });
  await call('GET', `${G('full')}/containers/nope/logs`);
  const del = await call('DELETE', G('full'));
  assert.equal(del.status, 202);
  await api.waitOp(del.headers.get('azure-asyncoperation')!);
  assert.equal((await call('DELETE', G('full'))).status, 204);

  const all = allOperations();
  assert.deepEqual(all.filter((op) => !covered.has(op)), [], 'every operation of the spec was exercised');
});
