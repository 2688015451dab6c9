// The real Azure CLIs against berth, unchanged: today's from PyPI (2.91) and Debian's (2.45), the whole `az container` scenario each.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { AZ_PYPI, venvProgram } from '../helpers/python-clients.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { endE2e, hostFootprint, startBerth, type BerthProcess } from '../helpers/berth.js';

const run = promisify(execFile);
const BRIDGE = 'btaz0';
const SP = { clientId: '8f4e2b6c-1d3a-4c5e-9f7b-2a6d8c0e1f35', clientSecret: 'az-test-secret-9', tenantId: '3c1b5d7e-9a2f-4e6b-8d0c-7f1a3e5b9c24', subscriptions: ['5d2c8e1a-7b4f-4a9c-b6e3-1f0d9a8c7b62'] };
const SUB = SP.subscriptions[0];
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;
const work = mkdtempSync(join(tmpdir(), 'berth-az-'));

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'web', '1', { cmd: ['sh', '-c', 'echo az says hi; exec httpd -f -p 8093 -h /www'] })).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.72.0/24', config: { servicePrincipals: [SP], subscriptions: [SUB] } });
});
after(() => endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE, cleanup: () => rmSync(work, { recursive: true, force: true }) }));

/** One az CLI with a config dir of its own, talking only to berth: no telemetry, berth's CA for HTTPS and WebSockets. */
function azCli(program: string, python: string, name: string) {
  const configDir = join(work, name);
  const env = () => ({
    ...process.env, AZURE_CONFIG_DIR: configDir, AZURE_CORE_COLLECT_TELEMETRY: 'false', AZURE_CORE_SURVEY_MESSAGE: 'false',
    AZURE_CORE_NO_COLOR: 'true', AZURE_CORE_OUTPUT: 'json', AZURE_CORE_ONLY_SHOW_ERRORS: 'true',
    REQUESTS_CA_BUNDLE: berth.caCert, WEBSOCKET_CLIENT_CA_BUNDLE: berth.caCert,
  });
  const az = async (...args: string[]) => {
    try {
      return (await run(program, args, { env: env(), timeout: 180_000 })).stdout;
    } catch (e) {
      throw new Error(`${program} ${args.join(' ')}: ${(e as { stderr?: string }).stderr ?? e}`);
    }
  };
  const json = async (...args: string[]) => JSON.parse(await az(...args));
  return { program, python, name, env, az, json, dir: configDir };
}
type Az = ReturnType<typeof azCli>;

/** Runs `az container attach` until its output shows `line` (it streams until stopped: the group restarts Always), then ends it. */
async function attachUntil(cli: Az, rg: string, name: string, line: string, ms = 60_000) {
  const child = spawn(cli.program, ['container', 'attach', '-g', rg, '-n', name], { env: cli.env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const t0 = Date.now();
    while (!out.includes(line)) {
      if (child.exitCode !== null) throw new Error(`az container attach ended: ${out}`);
      if (Date.now() - t0 > ms) throw new Error(`az container attach did not show '${line}': ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return out;
  } finally {
    if (child.exitCode === null) process.kill(child.pid!, 'SIGTERM');
    await exited;
  }
}

async function scenario(cli: Az, rg: string) {
  const { az, json } = cli;
  await az('config', 'set', 'core.collect_telemetry=false', 'core.only_show_errors=true');
  // Only the ARM endpoint: az reads the rest from berth's cloud metadata (before it has a token).
  await az('cloud', 'register', '-n', 'berth', '--endpoint-resource-manager', `${berth.httpsUrl}/`);
  await az('cloud', 'set', '-n', 'berth');
  const cloud = await json('cloud', 'show', '-n', 'berth');
  assert.equal(cloud.endpoints.activeDirectory, `${berth.httpsUrl}/adfs`);
  const login = await json('login', '--service-principal', '-u', SP.clientId, '-p', SP.clientSecret, '--tenant', SP.tenantId);
  assert.deepEqual(login.map((s: { id: string; tenantId: string }) => [s.id, s.tenantId]), [[SUB, SP.tenantId]]);
  assert.equal((await json('group', 'create', '-n', rg, '-l', 'local')).properties.provisioningState, 'Succeeded');

  const footprint = hostFootprint(berth.runcRoot, berth.dataDir);
  const created = await json('container', 'create', '-g', rg, '-n', 'web', '--image', image, '--os-type', 'Linux', '--ports', '8093', '--ip-address', 'Public',
    '--cpu', '0.5', '--memory', '0.5', '--environment-variables', 'MODE=az', '--secure-environment-variables', 'TOKEN=az-secret');
  assert.equal(created.provisioningState, 'Succeeded');
  assert.equal(created.instanceView.state, 'Running');
  assert.doesNotMatch(JSON.stringify(created), /az-secret/);
  const page = await (await fetch('http://127.0.0.1:8093/')).text();

  assert.equal((await json('container', 'show', '-g', rg, '-n', 'web')).containers[0].instanceView.currentState.state, 'Running');
  assert.deepEqual((await json('container', 'list', '-g', rg)).map((g: { name: string }) => g.name), ['web']);
  assert.match(await az('container', 'logs', '-g', rg, '-n', 'web'), /az says hi/);
  // exec wants a terminal on stdin: script(1) gives it one, sized by stty; az sends that size.
  const cmd = `stty rows 30 cols 90; exec ${cli.program} container exec -g ${rg} -n web --exec-command 'sh -c "tty; stty size; cat /www/index.html"'`;
  const screen = (await run('script', ['-qfec', cmd, '/dev/null'], { env: cli.env(), timeout: 60_000 })).stdout.replace(/\r/g, '');
  assert.match(screen, /^\/dev\/pts\/\d+\n30 90\n/m);
  assert.ok(screen.includes(page), screen);
  assert.match(await attachUntil(cli, rg, 'web', 'az says hi'), /Start streaming logs:/);

  // stop is synchronous: the next read shows it stopped; start and restart wait for their operations
  await az('container', 'stop', '-g', rg, '-n', 'web');
  assert.equal((await json('container', 'show', '-g', rg, '-n', 'web')).instanceView.state, 'Stopped');
  await az('container', 'start', '-g', rg, '-n', 'web');
  assert.equal((await json('container', 'show', '-g', rg, '-n', 'web')).instanceView.state, 'Running');
  await az('container', 'restart', '-g', rg, '-n', 'web');
  const restarted = await json('container', 'show', '-g', rg, '-n', 'web');
  assert.equal(restarted.instanceView.state, 'Running');
  assert.equal((await fetch('http://127.0.0.1:8093/')).status, 200);

  // export to YAML, delete, create from the file: the same group again
  const file = join(work, `${cli.name}.yaml`);
  await az('container', 'export', '-g', rg, '-n', 'web', '-f', file);
  const exported = JSON.parse((await run(cli.python, ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', file])).stdout);
  assert.equal(exported.name, 'web');
  assert.equal(exported.properties.containers[0].properties.image, image);
  assert.doesNotMatch(readFileSync(file, 'utf8'), /az-secret/);
  await az('container', 'delete', '-g', rg, '-n', 'web', '--yes');
  assert.deepEqual(await json('container', 'list', '-g', rg), []);
  const again = await json('container', 'create', '-g', rg, '--file', file);
  assert.equal(again.properties?.provisioningState ?? again.provisioningState, 'Succeeded');
  const shown = await json('container', 'show', '-g', rg, '-n', 'web');
  assert.equal(shown.instanceView.state, 'Running');
  assert.deepEqual(shown.containers.map((c: { image: string; ports: unknown }) => [c.image, c.ports]), [[image, [{ port: 8093, protocol: 'TCP' }]]]);
  assert.equal(shown.containers[0].environmentVariables.find((e: { name: string }) => e.name === 'MODE')?.value, 'az');
  assert.equal((await fetch('http://127.0.0.1:8093/')).status, 200);

  await az('container', 'delete', '-g', rg, '-n', 'web', '--yes');
  assert.deepEqual(await json('container', 'list', '-g', rg), []);
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), footprint);
}

test(`today's az CLI from PyPI (${AZ_PYPI.version}): cloud register, login, group and the whole az container scenario`, async () => {
  await scenario(azCli(venvProgram(AZ_PYPI.venv, 'az'), venvProgram(AZ_PYPI.venv, 'python'), 'pypi'), 'azpypi');
});

test("Debian's az CLI (2.45): the same scenario", async () => {
  await scenario(azCli('/usr/bin/az', '/usr/bin/python3', 'debian'), 'azdebian');
});
