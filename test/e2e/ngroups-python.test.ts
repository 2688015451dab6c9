// The official Python SDK (azure-mgmt-containerinstance 10.2.0b2, its default api-version) drives profiles and NGroups over HTTPS:
// a profile, an NGroup of 3, scaled to 6 and to 2, and a rolling update to a new revision that never replaces more than maxBatchPercent at once.
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
const BRIDGE = 'btpyng0';
const SUB = 'py-ng-sub';
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'pyng', '1')).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.131.0/24' });
});
after(() => endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE }));

test('the Python SDK makes a profile and an NGroup of 3 on it, scales it to 6 and 2, and rolls it to a new revision batch by batch', async () => {
  const footprint = hostFootprint(berth.runcRoot, berth.dataDir);
  const python = venvProgram(PYTHON_SDK.venv, 'python');
  const r = await run(python, [join(repo, 'test/e2e/python/ngroups_scenario.py')], {
    timeout: 400_000, maxBuffer: 64 << 20,
    env: { PATH: process.env.PATH, REQUESTS_CA_BUNDLE: berth.caCert, BERTH_ENDPOINT: berth.httpsUrl, BERTH_TOKEN: berth.token, BERTH_SUBSCRIPTION: SUB, BERTH_IMAGE: image },
  }).catch((e: { stderr?: string; message: string }) => assert.fail(`the SDK scenario failed: ${e.stderr ?? e.message}`));
  const seen = JSON.parse(r.stdout);
  assert.equal(seen.apiVersion, '2026-06-01-preview', 'the SDK sent its own default api-version');
  assert.deepEqual(seen.profile, { revision: 1, type: 'Microsoft.ContainerInstance/containerGroupProfiles' });
  assert.deepEqual(seen.created, { provisioningState: 'Succeeded', type: 'Microsoft.ContainerInstance/ngroups', revisions: [1, 1, 1] });
  assert.deepEqual(seen.scaled6, { desiredCount: 6, members: 6 });
  assert.deepEqual(seen.scaled2, { desiredCount: 2, members: 2 });
  assert.equal(seen.newRevision, 2);
  assert.deepEqual(seen.final, [[2, true], [2, true]], 'every member runs revision 2, ready');
  assert.equal(seen.rollingUpdate.state, 'Completed');
  assert.deepEqual([seen.rollingUpdate.fromRevision, seen.rollingUpdate.toRevision], [1, 2]);
  // maxBatchPercent 50 of 2 members: at no moment more than one member being replaced
  const snapshots = seen.snapshots as { revision: number; ready: boolean; deleting: boolean }[][];
  // two batches 2 s apart (pauseTimeBetweenBatches): the update lasts long enough to be watched at every step
  assert.ok(snapshots.length > 5, `${snapshots.length} snapshots`);
  assert.ok(snapshots.some((s) => s.some((m) => m.revision === 2)) && snapshots.some((s) => s.some((m) => m.revision === 1)), 'the update was seen under way');
  for (const s of snapshots) {
    const members = s.filter((m) => !m.deleting);
    // replaced by a new member made beside it: one member more than desired per member being replaced
    assert.ok(members.length - 2 <= 1, `more than 50% being replaced: ${JSON.stringify(s)}`);
    assert.ok(members.filter((m) => m.ready).length >= 1, `fewer than 50% ready: ${JSON.stringify(s)}`);
  }
  assert.deepEqual(seen.got, { desiredCount: 2, revision: 2, instanceView: 2 });
  assert.deepEqual(seen.list, ['pyng']);
  assert.deepEqual(seen.listByResourceGroup, ['pyng']);
  assert.deepEqual(seen.revisions, [1, 2]);
  assert.equal(seen.profileByRevision, '1');
  assert.deepEqual(seen.afterDelete, { ngroups: [], members: 0 });
  assert.deepEqual(seen.profilesAfterDelete, []);
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), footprint);
});
