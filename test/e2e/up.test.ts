// The README's way in: `berth up` starts a background server and configures the CLI; one curl PUT runs a web server.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { INDEX_HTML, buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Api, cleanupDir, hostFootprint } from '../helpers/berth.js';

const run = promisify(execFile);
const cli = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'bin/berth');
const BRIDGE = 'btup0';
const dataDir = mkdtempSync(join(tmpdir(), 'berth-up-'));
const configDir = mkdtempSync(join(tmpdir(), 'berth-up-cli-'));
// Only what `berth up` saved may tell the CLI where berth is.
const { BERTH_ENDPOINT: _e, BERTH_TOKEN: _t, ...inherited } = process.env;
const env = { ...inherited, BERTH_CONFIG_DIR: configDir };
let registry: TestRegistry;
let image: string;

const freePort = () => new Promise<number>((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => res(p));
  });
});

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'web', '1', { cmd: ['httpd', '-f', '-p', '80', '-h', '/www'] })).reference;
});
after(async () => {
  try {
    const pidFile = join(dataDir, 'server.pid');
    if (existsSync(pidFile)) await run(cli, ['down', '--data-dir', dataDir], { env });
    cleanupDir(dataDir);
  } finally {
    rmSync(configDir, { recursive: true, force: true });
    await registry?.stop();
    execFileSync('bash', ['-c', `ip link del ${BRIDGE} 2>/dev/null || true`]);
  }
});

test('berth up, one curl PUT of a web server, HTTP on the published port, logs, delete, berth down', async () => {
  const port = await freePort();
  const runcRoot = '/run/berth/runc'; // berth up uses the default runc root, as a user's would
  // of what will be the server's data dir: other servers' group disks (other runs on this host) do not count
  const before = hostFootprint(runcRoot, dataDir);
  const up = await run(cli, ['up', '--skip-install', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--bridge', BRIDGE, '--subnet', '10.213.68.0/24', '--advertise-address', '127.0.0.1'], { env });
  assert.match(up.stdout, new RegExp(`berth is running: http://127.0.0.1:${port}`));
  const token = JSON.parse(readFileSync(join(dataDir, 'config.json'), 'utf8')).tokens[0] as string;
  assert.ok(token.length >= 32, 'a generated token');
  assert.deepEqual(JSON.parse(readFileSync(join(configDir, 'cli.json'), 'utf8')), { endpoint: `http://127.0.0.1:${port}`, token, subscription: 'default' });

  const url = `http://127.0.0.1:${port}/subscriptions/default/resourceGroups/demo/providers/Microsoft.ContainerInstance/containerGroups/hello?api-version=2023-05-01`;
  const body = JSON.stringify({
    location: 'local',
    properties: {
      osType: 'Linux',
      containers: [{ name: 'hello', properties: { image, ports: [{ port: 80 }], resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } } } }],
      ipAddress: { type: 'Public', ports: [{ port: 80, protocol: 'TCP' }] },
    },
  });
  const put = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '-H', `Authorization: Bearer ${token}`, '-H', 'content-type: application/json', url, '-d', body]);
  assert.equal(put.stdout, '201');

  const api = new Api({ url: `http://127.0.0.1:${port}`, token }, 'default');
  const g = await api.waitFor('Running', async () => {
    const r = await api.req('GET', api.groupPath('demo', 'hello'));
    return r.body.properties.instanceView.state === 'Running' && r.body;
  }, 30_000);
  assert.equal(g.properties.provisioningState, 'Succeeded');
  const page = await api.waitFor('HTTP', async () => fetch('http://127.0.0.1:80/').then((r) => r.text(), () => undefined), 10_000);
  assert.equal(page, INDEX_HTML);

  // The CLI finds the endpoint and token that `berth up` saved.
  const shown = JSON.parse((await run(cli, ['container', 'show', '-g', 'demo', '-n', 'hello'], { env })).stdout);
  assert.equal(shown.instanceView.state, 'Running');
  assert.equal((await run(cli, ['container', 'logs', '-g', 'demo', '-n', 'hello'], { env })).stdout, '');

  await run(cli, ['container', 'delete', '-g', 'demo', '-n', 'hello', '--yes'], { env });
  assert.deepEqual(hostFootprint(runcRoot, dataDir), before);
  const pid = Number(readFileSync(join(dataDir, 'server.pid'), 'utf8'));
  await run(cli, ['down', '--data-dir', dataDir], { env });
  assert.throws(() => process.kill(pid, 0), 'the server process is gone');
});
