// The translation of a container group record into its host spec: what the host must run, with nothing of ACI's resource model left.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostSpecOf, placeOps, segmentOf, unplaceOps } from './host-specs.js';
import { parseGroupSpec } from './model.js';
import type { GroupRecord } from './records.js';

const GiB = 1024 ** 3;

const record = (body: unknown, o: Partial<GroupRecord> = {}): GroupRecord => ({
  uid: '0123456789ab', subscriptionId: 'Sub-A', resourceGroup: 'rg', name: 'web', location: 'local', tags: {}, spec: parseGroupSpec(body).spec,
  generation: 4, state: 'Running', deleting: false, host: 'h1', createdAt: '2026-01-01T00:00:00.000Z', ...o,
});

const probe = { httpGet: { path: '/healthz', port: 8080, scheme: 'http', httpHeaders: [{ name: 'X-A', value: 'b' }] }, periodSeconds: 5 };

test('a group record becomes what its host runs: limits, environment, probes, volumes, published ports, the subscription\'s segment', () => {
  const rec = record({
    location: 'local',
    properties: {
      osType: 'Linux', sku: 'Standard', restartPolicy: 'OnFailure', provisioningTimeoutInSeconds: 90,
      ipAddress: { type: 'Public', dnsNameLabel: 'web-label', ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] },
      imageRegistryCredentials: [{ server: 'reg.example', username: 'u', password: 'p' }],
      volumes: [{ name: 'data', emptyDir: {} }, { name: 'creds', secret: { token: 'czM=' } }, { name: 'src', gitRepo: { repository: 'https://git.example/r.git', revision: 'main' } }],
      initContainers: [{ name: 'setup', properties: { image: 'reg.example/setup:1', command: ['sh', '-c', 'true'], environmentVariables: [{ name: 'S', secureValue: 'x' }], volumeMounts: [{ name: 'data', mountPath: '/d' }] } }],
      containers: [
        { name: 'app', properties: {
          image: 'reg.example/app:1', command: ['/app'], ports: [{ port: 80 }, { port: 53, protocol: 'UDP' }],
          environmentVariables: [{ name: 'PLAIN', value: '1' }, { name: 'SECRET', secureValue: 's3' }],
          resources: { requests: { cpu: 1, memoryInGB: 1.5 }, limits: { cpu: 2, memoryInGB: 2 } },
          volumeMounts: [{ name: 'data', mountPath: '/data' }, { name: 'creds', mountPath: '/creds', readOnly: true }],
          livenessProbe: { exec: { command: ['check'] } }, readinessProbe: probe,
        } },
        { name: 'side', properties: { image: 'reg.example/side:1', resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } } } },
      ],
    },
  });
  const placed = hostSpecOf(rec);
  assert.equal(placed.uid, rec.uid);
  assert.equal(placed.generation, 4);
  const { spec } = placed;
  assert.deepEqual(
    { hostname: spec.hostname, state: spec.state, restartPolicy: spec.restartPolicy, ports: spec.ports, network: spec.network, timeout: spec.provisioningTimeoutSeconds, creds: spec.registryCredentials },
    { hostname: 'web', state: 'Running', restartPolicy: 'OnFailure', ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }], network: { key: segmentOf('sub-a') }, timeout: 90, creds: [{ server: 'reg.example', username: 'u', password: 'p' }] },
  );
  const [app, side] = spec.containers;
  assert.deepEqual({ cpu: app.cpu, memoryBytes: app.memoryBytes, command: app.command, env: app.env }, { cpu: 2, memoryBytes: 2 * GiB, command: ['/app'], env: [{ name: 'PLAIN', value: '1' }, { name: 'SECRET', value: 's3' }] }, 'ACI limits are the limits');
  assert.deepEqual({ cpu: side.cpu, memoryBytes: side.memoryBytes, command: side.command }, { cpu: 0.5, memoryBytes: 0.5 * GiB, command: [] }, 'without limits, the requests');
  assert.deepEqual(app.volumeMounts, [{ name: 'data', mountPath: '/data', readOnly: false }, { name: 'creds', mountPath: '/creds', readOnly: true }]);
  assert.deepEqual(app.livenessProbe?.exec, { command: ['check'] });
  assert.deepEqual(app.readinessProbe?.httpGet, { path: '/healthz', port: 8080, scheme: 'http', headers: [{ name: 'X-A', value: 'b' }] });
  assert.equal(app.readinessProbe?.periodSeconds, 5);
  assert.equal(side.livenessProbe, undefined);
  const [setup] = spec.initContainers;
  assert.deepEqual({ cpu: setup.cpu, memoryBytes: setup.memoryBytes, env: setup.env }, { cpu: 1.5, memoryBytes: 2 * GiB, env: [{ name: 'S', value: 'x' }] }, "an init container may use what the group's containers request");
  assert.deepEqual(spec.volumes, [{ name: 'data', emptyDir: {} }, { name: 'creds', secret: { token: 'czM=' } }, { name: 'src', gitRepo: { repository: 'https://git.example/r.git', revision: 'main' } }]);
  const text = JSON.stringify(placed);
  for (const aci of ['dnsNameLabel', 'web-label', 'osType', 'sku', 'ipAddress', 'Public', 'requests', 'memoryInGB', 'secureValue', 'httpHeaders', 'subscriptions', 'Sub-A'])
    assert.ok(!text.includes(aci), `no ACI concept in a host spec: ${aci}`);
});

test('a Private group publishes nothing on its host; a stopped one says so; defaults fill in', () => {
  const body = { location: 'local', properties: { containers: [{ name: 'c', properties: { image: 'i:1', ports: [{ port: 80 }], resources: { requests: { cpu: 1, memoryInGB: 1 } } } }], ipAddress: { type: 'Private', ports: [{ port: 80 }] } } };
  const spec = hostSpecOf(record(body, { state: 'Stopped' })).spec;
  assert.deepEqual(spec.ports, []);
  assert.equal(spec.state, 'Stopped');
  assert.equal(spec.provisioningTimeoutSeconds, 1800, "ACI's default");
  assert.deepEqual(spec.initContainers, []);
  assert.equal(spec.restartPolicy, 'Always');
});

test("the writer's ops: placed under its host, and taken off with its removal awaited", () => {
  const rec = record({ location: 'local', properties: { containers: [{ name: 'c', properties: { image: 'i:1', resources: { requests: { cpu: 1, memoryInGB: 1 } } } }] } });
  assert.deepEqual(placeOps(rec), [{ put: '/hostspecs/h1/0123456789ab', value: hostSpecOf(rec) }]);
  assert.deepEqual(unplaceOps(rec), [{ delete: '/hostspecs/h1/0123456789ab' }, { put: '/removing/h1/0123456789ab', value: { groupKey: '/groups/sub-a/rg/web' } }]);
});
