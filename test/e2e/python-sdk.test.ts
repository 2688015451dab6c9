// The official Python SDK (azure-mgmt-containerinstance 10.2.0b2, at its default api-version) drives every container group operation over HTTPS.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { PYTHON_SDK, repo, venvProgram } from '../helpers/python-clients.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { endE2e, hostFootprint, startBerth, type BerthProcess } from '../helpers/berth.js';

const run = promisify(execFile);
const BRIDGE = 'btpysdk0';
const SUB = 'py-sub';
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'web', '1', { cmd: ['sh', '-c', 'echo hello from python; exec httpd -f -p 8094 -h /www'] })).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.74.0/24' });
});
after(() => endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE }));

test('the Python SDK creates, reads, lists, updates, runs commands in, restarts, stops, starts and deletes a group', async () => {
  const footprint = hostFootprint(berth.runcRoot, berth.dataDir);
  const python = venvProgram(PYTHON_SDK.venv, 'python');
  const r = await run(python, [join(repo, 'test/e2e/python/sdk_scenario.py')], {
    timeout: 300_000,
    env: { PATH: process.env.PATH, REQUESTS_CA_BUNDLE: berth.caCert, BERTH_ENDPOINT: berth.httpsUrl, BERTH_TOKEN: berth.token, BERTH_SUBSCRIPTION: SUB, BERTH_IMAGE: image },
  }).catch((e: { stderr?: string; message: string }) => assert.fail(`the SDK scenario failed: ${e.stderr ?? e.message}`));
  const seen = JSON.parse(r.stdout);
  assert.equal(seen.apiVersion, '2026-06-01-preview', 'the SDK sent its own default api-version');
  assert.deepEqual(seen.created, { provisioningState: 'Succeeded', state: 'Running', ip: '127.0.0.1' });
  assert.deepEqual(seen.got, {
    id: `/subscriptions/${SUB}/resourceGroups/py-rg/providers/Microsoft.ContainerInstance/containerGroups/web`,
    env: [{ name: 'MODE', value: 'python' }, { name: 'SECRET' }], tags: { team: 'py' }, container: 'Running',
  });
  assert.deepEqual(seen.list, ['web']);
  assert.deepEqual(seen.listByResourceGroup, ['web']);
  assert.deepEqual(seen.updatedTags, { team: 'py', env: 'test' });
  assert.equal(seen.logs, 'hello from python\n');
  assert.match(seen.exec.webSocketUri, /^wss:\/\/127\.0\.0\.1:\d+\/exec\//);
  assert.match(seen.attach.webSocketUri, /^wss:\/\/127\.0\.0\.1:\d+\/attach\//);
  assert.ok(seen.exec.hasPassword && seen.attach.hasPassword);
  assert.deepEqual(seen.outbound, []);
  assert.deepEqual([seen.afterRestart, seen.afterStop, seen.afterStart], ['Running', 'Stopped', 'Running']);
  assert.deepEqual(seen.usage.find((u: { name: { value: string } }) => u.name.value === 'ContainerGroups'), { unit: 'Count', currentValue: 1, limit: 1000, name: { value: 'ContainerGroups', localizedValue: 'Container Groups' } });
  assert.ok(seen.capabilities.some((c: { osType: string }) => c.osType === 'Linux'));
  assert.ok(seen.cachedImages.includes(image));
  assert.ok(seen.operations.includes('Microsoft.ContainerInstance/containerGroups/write'));
  assert.deepEqual(seen.afterDelete, { status: 404, code: 'ResourceNotFound' });
  assert.deepEqual(seen.badName, { status: 400, code: 'InvalidResourceName' });
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), footprint);
});
