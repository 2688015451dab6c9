// The real Azure CLI (Debian's azure-cli) against berth: custom cloud, service-principal login, az group/container.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { endE2e, hostFootprint, startBerth, type BerthProcess } from '../helpers/berth.js';

const run = promisify(execFile);
const BRIDGE = 'btaz0';
const SP = { clientId: '8f4e2b6c-1d3a-4c5e-9f7b-2a6d8c0e1f35', clientSecret: 'az-test-secret-9', tenantId: '3c1b5d7e-9a2f-4e6b-8d0c-7f1a3e5b9c24', subscriptions: ['5d2c8e1a-7b4f-4a9c-b6e3-1f0d9a8c7b62'] };
const SUB = SP.subscriptions[0];
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;
const configDir = mkdtempSync(join(tmpdir(), 'berth-az-'));

// az talks only to berth: no telemetry, no update checks, berth's CA for HTTPS and WebSockets.
const env = () => ({
  ...process.env,
  AZURE_CONFIG_DIR: configDir,
  AZURE_CORE_COLLECT_TELEMETRY: 'false',
  AZURE_CORE_SURVEY_MESSAGE: 'false',
  AZURE_CORE_NO_COLOR: 'true',
  AZURE_CORE_OUTPUT: 'json',
  REQUESTS_CA_BUNDLE: berth.caCert,
  WEBSOCKET_CLIENT_CA_BUNDLE: berth.caCert,
});
const az = async (...args: string[]) => {
  try {
    return (await run('az', args, { env: env(), timeout: 120_000 })).stdout;
  } catch (e) {
    throw new Error(`az ${args.join(' ')}: ${(e as { stderr?: string }).stderr ?? e}`);
  }
};

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'web', '1', { cmd: ['sh', '-c', 'echo az says hi; exec httpd -f -p 8093 -h /www'] })).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.72.0/24', config: { servicePrincipals: [SP], subscriptions: [SUB] } });
});
after(() => endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE, cleanup: () => rmSync(configDir, { recursive: true, force: true }) }));

test('az cloud register, login --service-principal, group create, container create/show/list/logs/exec/delete', async () => {
  const arm = `${berth.httpsUrl}/`;
  await az('config', 'set', 'core.collect_telemetry=false', 'core.only_show_errors=true');
  await az('cloud', 'register', '-n', 'berth', '--endpoint-resource-manager', arm, '--endpoint-active-directory', `${berth.httpsUrl}/adfs`,
    '--endpoint-active-directory-resource-id', arm, '--endpoint-active-directory-graph-resource-id', arm);
  await az('cloud', 'set', '-n', 'berth');
  const login = JSON.parse(await az('login', '--service-principal', '-u', SP.clientId, '-p', SP.clientSecret, '--tenant', SP.tenantId));
  assert.deepEqual(login.map((s: { id: string; tenantId: string }) => [s.id, s.tenantId]), [[SUB, SP.tenantId]]);

  const rg = JSON.parse(await az('group', 'create', '-n', 'azrg', '-l', 'local'));
  assert.equal(rg.properties.provisioningState, 'Succeeded');

  const before = hostFootprint(berth.runcRoot, berth.dataDir);
  const t0 = Date.now();
  const created = JSON.parse(await az('container', 'create', '-g', 'azrg', '-n', 'web', '--image', image, '--ports', '8093', '--ip-address', 'Public',
    '--cpu', '0.5', '--memory', '0.5', '--environment-variables', 'MODE=az', '--secure-environment-variables', 'TOKEN=az-secret'));
  const createMs = Date.now() - t0;
  assert.equal(created.provisioningState, 'Succeeded');
  assert.equal(created.instanceView.state, 'Running');
  assert.doesNotMatch(JSON.stringify(created), /az-secret/);
  assert.ok(createMs < 3000, `az container create took ${createMs} ms`);
  assert.equal((await fetch('http://127.0.0.1:8093/')).status, 200);

  const shown = JSON.parse(await az('container', 'show', '-g', 'azrg', '-n', 'web'));
  assert.equal(shown.containers[0].instanceView.currentState.state, 'Running');
  const listed = JSON.parse(await az('container', 'list', '-g', 'azrg'));
  assert.deepEqual(listed.map((g: { name: string }) => g.name), ['web']);
  assert.match(await az('container', 'logs', '-g', 'azrg', '-n', 'web'), /az says hi/);

  // az container exec wants a terminal on stdin: script(1) gives it one, sized by stty. az sends
  // that size as terminalSize and the command runs under a terminal of that size.
  const cmd = `stty rows 30 cols 90; exec az container exec -g azrg -n web --exec-command 'sh -c "tty; stty size; cat /www/index.html"'`;
  const exec = await run('script', ['-qfec', cmd, '/dev/null'], { env: env(), timeout: 60_000 });
  const screen = exec.stdout.replace(/\r/g, '');
  assert.match(screen, /^\/dev\/pts\/\d+\n30 90\n/m);
  assert.ok(screen.includes(await (await fetch('http://127.0.0.1:8093/')).text()), screen);

  await az('container', 'delete', '-g', 'azrg', '-n', 'web', '--yes');
  assert.deepEqual(JSON.parse(await az('container', 'list', '-g', 'azrg')), []);
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), before);
  process.stderr.write(`az container create returned in ${createMs} ms\n`);
});
