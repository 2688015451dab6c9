// The unmodified Azure SDK (@azure/arm-containerinstance 9.x, api-version 2023-05-01) drives berth over HTTPS.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { ContainerInstanceManagementClient, type ContainerGroup } from '@azure/arm-containerinstance';
import WebSocket from 'ws';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { hostFootprint, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'btsdk0';
const SUB = 'sdk-sub';
let registry: TestRegistry;
let berth: BerthProcess;
let client: ContainerInstanceManagementClient;
let image: string;
const poll = { updateIntervalInMs: 100 };

before(async () => {
  // The CA must be trusted from process start, as a user's program would through NODE_EXTRA_CA_CERTS.
  assert.ok(process.env.NODE_EXTRA_CA_CERTS, 'run through scripts/test.sh, which trusts the test CA');
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'web', '1', { cmd: ['sh', '-c', 'echo hello from sdk; exec httpd -f -p 8090 -h /www'] })).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.69.0/24' });
  assert.equal(berth.caCert, `${process.env.BERTH_TEST_TLS_DIR}/ca.crt`);
  const credential = { getToken: async () => ({ token: berth.token, expiresOnTimestamp: Date.now() + 3_600_000 }) };
  client = new ContainerInstanceManagementClient(credential, SUB, { endpoint: berth.httpsUrl });
});
after(async () => {
  try {
    await berth?.destroy([SUB]);
  } finally {
    await registry?.stop();
    execFileSync('bash', ['-c', `ip link del ${BRIDGE} 2>/dev/null || true`]);
  }
});

const group = (): ContainerGroup => ({
  location: 'local',
  osType: 'Linux',
  restartPolicy: 'Always',
  containers: [{
    name: 'web', image, ports: [{ port: 8090 }],
    environmentVariables: [{ name: 'MODE', value: 'sdk' }, { name: 'SECRET', secureValue: 'sdk-secret-1' }],
    resources: { requests: { cpu: 0.5, memoryInGB: 0.25 } },
  }],
  ipAddress: { type: 'Public', ports: [{ port: 8090, protocol: 'TCP' }] },
  tags: { team: 'a' },
});

test('the Azure SDK creates, reads, lists, updates, runs commands in, restarts, stops, starts and deletes a group', async () => {
  const before = hostFootprint(berth.runcRoot, berth.dataDir);
  const created = await client.containerGroups.beginCreateOrUpdateAndWait('sdk-rg', 'web', group(), poll);
  assert.equal(created.provisioningState, 'Succeeded');
  assert.equal(created.instanceView?.state, 'Running');
  assert.equal(created.containers[0].instanceView?.currentState?.state, 'Running');
  assert.equal(created.ipAddress?.ip, '127.0.0.1');
  assert.equal((await fetch('http://127.0.0.1:8090/')).status, 200);

  const got = await client.containerGroups.get('sdk-rg', 'web');
  assert.equal(got.id, `/subscriptions/${SUB}/resourceGroups/sdk-rg/providers/Microsoft.ContainerInstance/containerGroups/web`);
  assert.deepEqual(got.containers[0].environmentVariables, [{ name: 'MODE', value: 'sdk' }, { name: 'SECRET' }]);
  assert.deepEqual(got.tags, { team: 'a' });

  const listed: string[] = [];
  for await (const g of client.containerGroups.list()) listed.push(g.name!);
  assert.deepEqual(listed, ['web']);
  const byRg: string[] = [];
  for await (const g of client.containerGroups.listByResourceGroup('sdk-rg')) byRg.push(g.name!);
  assert.deepEqual(byRg, ['web']);

  const updated = await client.containerGroups.update('sdk-rg', 'web', { tags: { team: 'b', env: 'test' } });
  assert.deepEqual(updated.tags, { team: 'b', env: 'test' });

  const logs = await client.containers.listLogs('sdk-rg', 'web', 'web', { tail: 5 });
  assert.equal(logs.content, 'hello from sdk\n');

  const exec = await client.containers.executeCommand('sdk-rg', 'web', 'web', { command: 'cat /www/index.html', terminalSize: { rows: 24, cols: 80 } });
  assert.match(exec.webSocketUri!, /^wss:\/\//);
  const out = await new Promise<string>((res, rej) => {
    const ws = new WebSocket(exec.webSocketUri!);
    let text = '';
    ws.on('open', () => ws.send(exec.password!));
    ws.on('message', (d) => (text += d.toString()));
    ws.on('close', () => res(text));
    ws.on('error', rej);
  });
  assert.equal(out, await (await fetch('http://127.0.0.1:8090/')).text());

  const attach = await client.containers.attach('sdk-rg', 'web', 'web');
  assert.match(attach.webSocketUri!, /^wss:\/\//);

  await client.containerGroups.beginRestartAndWait('sdk-rg', 'web', poll);
  assert.equal((await client.containerGroups.get('sdk-rg', 'web')).instanceView?.state, 'Running');
  await client.containerGroups.stop('sdk-rg', 'web');
  for (let i = 0; i < 100 && (await client.containerGroups.get('sdk-rg', 'web')).instanceView?.state !== 'Stopped'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((await client.containerGroups.get('sdk-rg', 'web')).instanceView?.state, 'Stopped');
  await client.containerGroups.beginStartAndWait('sdk-rg', 'web', poll);
  assert.equal((await client.containerGroups.get('sdk-rg', 'web')).instanceView?.state, 'Running');

  const usage = [];
  for await (const u of client.location.listUsage('local')) usage.push(u);
  assert.deepEqual(usage.find((u) => u.name?.value === 'ContainerGroups'), { unit: 'Count', currentValue: 1, limit: 1000, name: { value: 'ContainerGroups', localizedValue: 'Container Groups' } });
  const caps = [];
  for await (const c of client.location.listCapabilities('local')) caps.push(c);
  assert.ok(caps.some((c) => c.osType === 'Linux' && c.capabilities?.maxCpu === 4));
  const cached = [];
  for await (const c of client.location.listCachedImages('local')) cached.push(c.image);
  assert.ok(cached.includes(image), `cached images ${cached.join(', ')} include ${image}`);
  const ops = [];
  for await (const op of client.operations.list()) ops.push(op.name);
  assert.ok(ops.includes('Microsoft.ContainerInstance/containerGroups/write'));

  await client.containerGroups.beginDeleteAndWait('sdk-rg', 'web', poll);
  await assert.rejects(client.containerGroups.get('sdk-rg', 'web'), (e: { statusCode?: number; code?: string }) => e.statusCode === 404 && e.code === 'ResourceNotFound');
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), before);
});

test('a failed create reaches the SDK as a failed LRO with ACI\'s error code', async () => {
  const bad = group();
  bad.containers[0].image = `${registry.host}/missing:1`;
  bad.ipAddress = undefined;
  await assert.rejects(client.containerGroups.beginCreateOrUpdateAndWait('sdk-rg', 'broken', bad, poll), /InaccessibleImage|not found/i);
  await client.containerGroups.beginDeleteAndWait('sdk-rg', 'broken', poll);
  await assert.rejects(
    client.containerGroups.beginCreateOrUpdateAndWait('sdk-rg', 'Bad_Name', group(), poll),
    (e: { statusCode?: number; code?: string }) => e.statusCode === 400 && e.code === 'InvalidResourceName',
  );
});
