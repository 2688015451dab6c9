// The unmodified Azure SDK (@azure/arm-containerinstance 9.x, api-version 2023-05-01) drives berth over HTTPS.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ContainerGroup, ContainerInstanceManagementClient } from '@azure/arm-containerinstance';
import WebSocket from 'ws';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { sdkClient } from '../helpers/sdk.js';
import { wsSession } from '../helpers/exec.js';
import { childProcesses, endE2e, execProcesses, hostFootprint, ociContainers, startBerth, type BerthProcess } from '../helpers/berth.js';

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
  client = sdkClient(berth, SUB);
});
after(() => endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE }));

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
  // terminalSize (the SDK and az always send one) makes a terminal: its output ends lines with \r\n
  assert.equal(out, (await (await fetch('http://127.0.0.1:8090/')).text()).replace(/\n/g, '\r\n'));

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


async function until(what: string, fn: () => boolean, ms = 15_000) {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('exec gives a terminal of the requested size that resizes, ends with the exit code and leaves nothing running; attach streams output', async () => {
  const g: ContainerGroup = {
    location: 'local', osType: 'Linux', restartPolicy: 'Always',
    containers: [{
      name: 'tick', image, command: ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'],
      resources: { requests: { cpu: 0.25, memoryInGB: 0.25 } },
    }],
  };
  await client.containerGroups.beginCreateOrUpdateAndWait('sdk-rg', 'tty', g, poll);
  const [id] = ociContainers(berth.runcRoot).keys();
  const children = childProcesses(berth.child.pid!);
  assert.deepEqual(execProcesses(berth.runcRoot, id), []);
  const exec = async (command: string, terminalSize?: { rows: number; cols: number }) => {
    const r = await client.containers.executeCommand('sdk-rg', 'tty', 'tick', { command, ...(terminalSize && { terminalSize }) });
    const s = wsSession(r.webSocketUri!, r.password!);
    await s.opened;
    return s;
  };

  // A command under a terminal of the requested size; the close frame carries its exit code.
  const once = await exec('sh -c "tty; stty size; exit 3"', { rows: 33, cols: 101 });
  assert.deepEqual(await once.closed, { code: 1000, reason: 'exit 3' });
  assert.match(once.output(), /^\/dev\/pts\/\d+\r\n33 101\r\n$/);

  // An interactive shell: keystrokes as binary frames (as az sends them), berth's resize message.
  const sh = await exec('/bin/sh', { rows: 10, cols: 40 });
  sh.ws.send(Buffer.from('stty size\n'));
  await sh.waitFor(/\r\n10 40\r\n/);
  sh.ws.send(JSON.stringify({ resize: { rows: 50, cols: 160 } }));
  sh.ws.send(Buffer.from('stty size\n'));
  await sh.waitFor(/\r\n50 160\r\n/);
  sh.ws.send(Buffer.from('exit 7\n'));
  assert.deepEqual(await sh.closed, { code: 1000, reason: 'exit 7' });

  // Hanging up kills everything the session started, with and without a terminal.
  const hang = await exec('/bin/sh', { rows: 24, cols: 80 });
  hang.ws.send(Buffer.from('sleep 1000 & sleep 1001\n'));
  const piped = await exec("sh -c 'sleep 1002 & exec sleep 1003'");
  await until('3 + 2 exec processes', () => execProcesses(berth.runcRoot, id).length === 3 + 2);
  hang.ws.close();
  piped.ws.close();
  await until('no exec process left', () => execProcesses(berth.runcRoot, id).length === 0);
  await until('no exec helper left', () => JSON.stringify(childProcesses(berth.child.pid!)) === JSON.stringify(children));

  // Without terminalSize: pipes; quoted arguments survive; an empty frame is end of input.
  const cat = await exec(`sh -c 'cat; echo "a  b" >&2'`);
  cat.ws.send(Buffer.from('hello\n'));
  cat.ws.send(Buffer.alloc(0));
  assert.deepEqual(await cat.closed, { code: 1000, reason: 'exit 0' });
  assert.equal(cat.output(), 'hello\na  b\n');
  const missing = await exec('no-such-command');
  const closed = await missing.closed;
  assert.equal(closed.code, 4000);
  assert.match(closed.reason, /^exec failed: .*no-such-command/);

  // attach: the output from now on, as it is written; the password as Authorization (as ACI
  // documents it for attach) or as the first frame.
  for (const header of [true, false]) {
    const a = await client.containers.attach('sdk-rg', 'tty', 'tick');
    const s = wsSession(a.webSocketUri!, a.password!, { header });
    const text = await s.waitFor(/tick (\d+)\n(.|\n)*tick \d+\n/);
    const seen = [...text.matchAll(/tick (\d+)\n/g)].map((m) => Number(m[1]));
    assert.deepEqual(seen, seen.map((_, i) => seen[0] + i), 'consecutive lines, as written');
    assert.ok(seen[0] > 0, 'nothing from before the attach');
    s.ws.close();
    await s.closed;
  }

  await client.containerGroups.beginDeleteAndWait('sdk-rg', 'tty', poll);
});
