// The berth CLI against a real server: az container's verbs and flags give the API's results.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { Resolver } from 'node:dns/promises';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { endE2e, hostFootprint, startBerth, type BerthProcess } from '../helpers/berth.js';

const run = promisify(execFile);
const cli = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'bin/berth');
const BRIDGE = 'btcli0';
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'web', '1')).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.67.0/24' });
  env = { ...process.env, BERTH_ENDPOINT: berth.url, BERTH_TOKEN: berth.token, BERTH_SUBSCRIPTION: 'cli-sub', BERTH_CONFIG_DIR: mkdtempSync(join(tmpdir(), 'berth-cli-')) };
});
after(() => endE2e({
  berth, subscriptions: ['cli-sub'], registry, bridge: BRIDGE,
  cleanup: () => env?.BERTH_CONFIG_DIR && rmSync(env.BERTH_CONFIG_DIR, { recursive: true, force: true }),
}));

const berthCli = async (...args: string[]) => (await run(cli, args, { env, timeout: 60_000 })).stdout;

test('create, show, list, logs, exec, restart, stop, start and delete through the CLI', async () => {
  const before = hostFootprint(berth.runcRoot, berth.dataDir);
  const created = JSON.parse(await berthCli('container', 'create', '-g', 'cli', '-n', 'hello', '--image', image, '--cpu', '0.25', '--memory', '0.25',
    '--ports', '8088', '--ip-address', 'Public', '--environment-variables', 'GREETING=hi there', '--secure-environment-variables', 'PASSWORD=topsecret',
    '--command-line', 'sh -c "echo $GREETING; exec httpd -f -p 8088 -h /www"', '--restart-policy', 'OnFailure'));
  assert.equal(created.provisioningState, 'Succeeded');
  assert.equal(created.instanceView.state, 'Running');
  assert.doesNotMatch(JSON.stringify(created), /topsecret/);
  assert.equal((await fetch('http://127.0.0.1:8088/')).status, 200);

  const shown = JSON.parse(await berthCli('container', 'show', '-g', 'cli', '-n', 'hello'));
  assert.equal(shown.name, 'hello');
  assert.deepEqual(shown.ipAddress.ports, [{ port: 8088, protocol: 'TCP' }]);
  // -o arm: the REST resource as the API returns it.
  assert.equal(JSON.parse(await berthCli('container', 'show', '-g', 'cli', '-n', 'hello', '-o', 'arm')).properties.ipAddress.ports[0].port, 8088);
  const listed = JSON.parse(await berthCli('container', 'list', '-g', 'cli'));
  assert.deepEqual(listed.map((g: { name: string }) => g.name), ['hello']);

  assert.equal(await berthCli('container', 'logs', '-g', 'cli', '-n', 'hello'), 'hi there\n');
  assert.equal(await berthCli('container', 'exec', '-g', 'cli', '-n', 'hello', '--exec-command', 'cat /www/index.html'), await (await fetch('http://127.0.0.1:8088/')).text());
  const secret = await berthCli('container', 'exec', '-g', 'cli', '-n', 'hello', '--exec-command', 'env');
  assert.match(secret, /^PASSWORD=topsecret$/m);
  assert.match(secret, /^GREETING=hi there$/m);
  // Quoted arguments reach the command whole; its exit code is the CLI's.
  const failed = await berthCli('container', 'exec', '-g', 'cli', '-n', 'hello', '--exec-command', `sh -c 'echo "a  b"; exit 3'`).then(() => undefined, (e) => e);
  assert.equal(failed?.code, 3);
  assert.equal(failed?.stdout, 'a  b\n');
  // Under a terminal (script(1), sized by stty) the command gets one of the same size.
  const tty = await run('script', ['-qfec', `stty rows 20 cols 70; exec ${cli} container exec -g cli -n hello --exec-command 'sh -c "tty; stty size"'`, '/dev/null'], { env, timeout: 60_000 });
  assert.match(tty.stdout.replace(/\r/g, ''), /^\/dev\/pts\/\d+\n20 70\n$/);

  await berthCli('container', 'restart', '-g', 'cli', '-n', 'hello');
  await berthCli('container', 'stop', '-g', 'cli', '-n', 'hello');
  await berthCli('container', 'start', '-g', 'cli', '-n', 'hello');
  assert.equal(JSON.parse(await berthCli('container', 'show', '-g', 'cli', '-n', 'hello')).instanceView.state, 'Running');

  await berthCli('container', 'delete', '-g', 'cli', '-n', 'hello', '--yes');
  assert.deepEqual(JSON.parse(await berthCli('container', 'list')), []);
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), before);
  await assert.rejects(berthCli('container', 'show', '-g', 'cli', '-n', 'hello'), /ResourceNotFound/);
});

test('logs --follow streams lines as the container writes them, and create shows image pull progress', async () => {
  const fresh = (await buildImage(registry.host, 'ticker', '1')).reference;
  const created = await run(cli, ['container', 'create', '-g', 'cli', '-n', 'ticker', '--image', fresh, '--cpu', '0.1', '--memory', '0.1',
    '--command-line', 'sh -c "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"'], { env, timeout: 60_000 });
  assert.match(created.stderr, /ticker: Pulling: pulling image/);
  assert.match(created.stderr, /ticker: Pulled: Successfully pulled image/);
  const follow = spawn(cli, ['container', 'logs', '-g', 'cli', '-n', 'ticker', '--follow'], { env });
  let out = '';
  follow.stdout.on('data', (d) => (out += d));
  const t0 = Date.now();
  while (!/tick 15\n/.test(out) && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 100));
  process.kill(follow.pid!, 'SIGTERM');
  assert.match(out, /^tick 1\ntick 2\n/);
  assert.match(out, /tick 15\n/, 'lines written after the follow began arrived');
  // attach: only what is written from now on
  const attach = spawn(cli, ['container', 'attach', '-g', 'cli', '-n', 'ticker'], { env });
  let attached = '';
  attach.stdout.on('data', (d) => (attached += d));
  const t1 = Date.now();
  while ((attached.match(/tick \d+\n/g) ?? []).length < 3 && Date.now() - t1 < 15_000) await new Promise((r) => setTimeout(r, 100));
  process.kill(attach.pid!, 'SIGTERM');
  const seen = (attached.match(/tick (\d+)\n/g) ?? []).map((l) => Number(l.slice(5)));
  assert.ok(seen.length >= 3, attached);
  assert.ok(seen[0] > 15, `attach began at tick ${seen[0]}, after what follow saw`);
  await berthCli('container', 'delete', '-g', 'cli', '-n', 'ticker');
});

// The scenario of test/e2e/az.test.ts, flag for flag, through berth's own CLI: the same results, in az's output shape.
test("az's scenario through berth's CLI: group create, container create/show/list/logs/exec/delete give az's results", async () => {
  const azImage = (await buildImage(registry.host, 'azweb', '1', { cmd: ['sh', '-c', 'echo az says hi; exec httpd -f -p 8093 -h /www'] })).reference;
  const rg = JSON.parse(await berthCli('group', 'create', '-n', 'azrg', '-l', 'local'));
  assert.equal(rg.properties.provisioningState, 'Succeeded');
  assert.equal(rg.name, 'azrg');

  const before = hostFootprint(berth.runcRoot, berth.dataDir);
  const t0 = Date.now();
  const created = JSON.parse(await berthCli('container', 'create', '-g', 'azrg', '-n', 'web', '--image', azImage, '--ports', '8093', '--ip-address', 'Public',
    '--cpu', '0.5', '--memory', '0.5', '--environment-variables', 'MODE=az', '--secure-environment-variables', 'TOKEN=az-secret', '--dns-name-label', 'az-parity'));
  const createMs = Date.now() - t0;
  assert.equal(created.provisioningState, 'Succeeded');
  assert.equal(created.instanceView.state, 'Running');
  assert.equal(created.resourceGroup, 'azrg');
  assert.doesNotMatch(JSON.stringify(created), /az-secret/);
  assert.ok(createMs < 3000, `berth container create took ${createMs} ms`);
  assert.equal((await fetch('http://127.0.0.1:8093/')).status, 200);
  assert.equal(created.ipAddress.fqdn, 'az-parity.local.berth.internal');
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers([berth.dnsAddress!]);
  assert.deepEqual(await resolver.resolve4(created.ipAddress.fqdn), ['127.0.0.1']);

  const shown = JSON.parse(await berthCli('container', 'show', '-g', 'azrg', '-n', 'web'));
  assert.equal(shown.containers[0].instanceView.currentState.state, 'Running');
  assert.deepEqual(shown.containers[0].environmentVariables, [{ name: 'MODE', value: 'az' }, { name: 'TOKEN' }]);
  const listed = JSON.parse(await berthCli('container', 'list', '-g', 'azrg'));
  assert.deepEqual(listed.map((g: { name: string }) => g.name), ['web']);
  assert.match(await berthCli('container', 'logs', '-g', 'azrg', '-n', 'web'), /az says hi/);

  // az always asks for a terminal; berth's CLI only when it runs in one: piped, the output is the command's bytes.
  const exec = await berthCli('container', 'exec', '-g', 'azrg', '-n', 'web', '--exec-command', 'cat /www/index.html');
  assert.equal(exec, await (await fetch('http://127.0.0.1:8093/')).text());

  const deleted = JSON.parse(await berthCli('container', 'delete', '-g', 'azrg', '-n', 'web', '--yes'));
  assert.equal(deleted.name, 'web');
  assert.deepEqual(JSON.parse(await berthCli('container', 'list', '-g', 'azrg')), []);
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), before);
  await assert.rejects(resolver.resolve4('az-parity.local.berth.internal'), { code: 'ENOTFOUND' });
  await berthCli('group', 'delete', '-n', 'azrg', '--yes');
  await assert.rejects(berthCli('group', 'show', '-n', 'azrg'), /ResourceGroupNotFound/);
});
