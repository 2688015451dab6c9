// Unit tests of the pod -> group translation (status: pod-status.test.ts); test/k8s/kubernetes.test.ts runs the same code against a real API server and berth.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogFilter } from './kubelet.js';
import { expand, groupForPod, groupNameFor, parseQuantity, registryCredentials, Unmappable, type Resolver } from './pods.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

// A resolver over fixed objects: the real one reads the API server (exercised end to end).
const resolver: Resolver = {
  configMap: async (_ns, name) => (name === 'cm' ? { data: { a: 'A', 'file.txt': 'hello' }, binaryData: { 'bin.dat': b64('\x01\x02') } } : undefined),
  secret: async (_ns, name): Promise<{ type?: string; data?: Record<string, string> } | undefined> =>
    name === 's' ? { data: { pw: b64('hunter2') } }
      : name === 'pull' ? { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': b64(JSON.stringify({ auths: { 'https://127.0.0.1:5000': { auth: b64('u:p:w') } } })) } }
        : undefined,
  serviceAccountToken: async () => 'tok',
};
const opts = { nodeName: 'n', nodeIP: '10.0.0.1', location: 'local', defaultCpu: 0.25, defaultMemoryGB: 0.25 };
const pod = (spec: any, meta: any = {}) => ({ metadata: { name: 'p', namespace: 'ns', uid: 'u1', labels: { app: 'x' }, ...meta }, spec });

describe('pod translation', () => {
  it('names groups <namespace>-<pod>, or a safe hashed name when that is no DNS label', () => {
    assert.equal(groupNameFor('default', 'web-1'), 'default-web-1');
    const long = groupNameFor('default', 'a'.repeat(70));
    assert.ok(long.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(long), long);
    assert.notEqual(groupNameFor('a-b', 'c.d'), groupNameFor('a', 'b-c.d'));
    assert.ok(!groupNameFor('x', 'y.z').includes('.'));
    assert.ok(!groupNameFor('my-ns', '-x').includes('--'));
  });

  it('parses quantities and expands $(VAR)', () => {
    assert.equal(parseQuantity('250m'), 0.25);
    assert.equal(parseQuantity('64Mi'), 64 * 2 ** 20);
    assert.equal(parseQuantity('1G'), 1e9);
    assert.equal(parseQuantity('2'), 2);
    assert.throws(() => parseQuantity('lots'), Unmappable);
    assert.equal(expand('$(A)-$(B)-$$(A)', new Map([['A', '1']])), '1-$(B)-$(A)');
  });

  it('maps containers, env sources, resources, volumes and pull secrets', async () => {
    const { name, body } = await groupForPod(pod({
      restartPolicy: 'OnFailure',
      imagePullSecrets: [{ name: 'pull' }],
      containers: [{
        name: 'c', image: 'img', command: ['sh'], args: ['-c', 'echo $(X)'],
        env: [
          { name: 'X', value: 'x' },
          { name: 'CM', valueFrom: { configMapKeyRef: { name: 'cm', key: 'a' } } },
          { name: 'PW', valueFrom: { secretKeyRef: { name: 's', key: 'pw' } } },
          { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        ],
        ports: [{ containerPort: 80 }, { containerPort: 53, protocol: 'UDP' }],
        resources: { requests: { cpu: '500m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } },
        volumeMounts: [{ name: 'cfg', mountPath: '/cfg' }, { name: 'tmp', mountPath: '/tmp/x', readOnly: true }],
        readinessProbe: { httpGet: { path: '/ready', port: 80 }, periodSeconds: 5 },
      }],
      volumes: [{ name: 'cfg', configMap: { name: 'cm' } }, { name: 'tmp', emptyDir: {} }],
    }), resolver, opts);
    assert.equal(name, 'ns-p');
    const p = body.properties;
    assert.equal(p.restartPolicy, 'OnFailure');
    const c = p.containers[0].properties;
    assert.deepEqual(c.command, ['sh', '-c', 'echo x']);
    assert.deepEqual(c.environmentVariables, [
      { name: 'X', value: 'x' }, { name: 'CM', value: 'A' }, { name: 'PW', secureValue: 'hunter2' }, { name: 'POD', value: 'p' }, { name: 'APP', value: 'x' },
    ]);
    assert.deepEqual(c.resources, { requests: { cpu: 0.5, memoryInGB: 0.135 }, limits: { cpu: 1, memoryInGB: 0.269 } });
    assert.deepEqual(c.readinessProbe, { httpGet: { path: '/ready', port: 80, scheme: 'http' }, periodSeconds: 5 });
    assert.deepEqual(p.ipAddress, { type: 'Private', ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] });
    assert.deepEqual(p.volumes[0], { name: 'cfg', secret: { a: b64('A'), 'file.txt': b64('hello'), 'bin.dat': b64('\x01\x02') } });
    assert.deepEqual(p.volumes[1], { name: 'tmp', emptyDir: {} });
    assert.deepEqual(p.imageRegistryCredentials, [{ server: '127.0.0.1:5000', username: 'u', password: 'p:w' }]);
    assert.equal(body.tags['k8s-uid'], 'u1');
  });

  it('refuses what berth cannot run, saying what', async () => {
    const refuse = (spec: any) => assert.rejects(groupForPod(pod(spec), resolver, opts), Unmappable);
    await refuse({ containers: [{ name: 'c', image: 'i' }], volumes: [{ name: 'h', hostPath: { path: '/' } }] });
    await refuse({ containers: [{ name: 'c', image: 'i', livenessProbe: { tcpSocket: { port: 80 } } }] });
    await refuse({ containers: [{ name: 'c', image: 'i', volumeMounts: [{ name: 'v', mountPath: '/v', subPath: 'x' }] }], volumes: [{ name: 'v', emptyDir: {} }] });
    await refuse({ hostNetwork: true, containers: [{ name: 'c', image: 'i' }] });
    await refuse({ containers: [{ name: 'c', image: 'i', env: [{ name: 'E', valueFrom: { secretKeyRef: { name: 'missing', key: 'k' } } }] }] });
    await assert.rejects(groupForPod(pod({ containers: [{ name: 'c', image: 'i' }], volumes: [{ name: 'h', hostPath: { path: '/' } }] }), resolver, opts), /hostPath volumes are not supported/);
  });

  it('gives a pod without ports an address placeholder so berth reports its IP', async () => {
    const { body } = await groupForPod(pod({ containers: [{ name: 'c', image: 'i' }] }), resolver, opts);
    assert.equal(body.properties.ipAddress.ports.length, 1);
    assert.deepEqual(body.properties.containers[0].properties.resources.requests, { cpu: 0.25, memoryInGB: 0.25 });
  });

  it('reads docker config secrets with username/password or auth', () => {
    const s = { data: { '.dockerconfigjson': b64(JSON.stringify({ auths: { 'reg.local:5000': { username: 'a', password: 'b' } } })) } };
    assert.deepEqual(registryCredentials(s), [{ server: 'reg.local:5000', username: 'a', password: 'b' }]);
  });

  it('filters kubelet log lines by time, strips timestamps and limits bytes', () => {
    const lines = '2026-01-01T00:00:00.000000001Z old\n2026-01-01T00:01:00.5Z new\n2026-01-01T00:02:00Z par';
    const f = new LogFilter({ sinceMs: Date.parse('2026-01-01T00:00:30Z'), timestamps: false });
    assert.equal(f.push(lines), 'new\n');
    assert.equal(f.push('tial\n'), 'partial\n');
    const lim = new LogFilter({ timestamps: true, limitBytes: 10 });
    assert.equal(lim.push(lines, true), '2026-01-01');
    assert.ok(lim.exhausted);
  });
});
