// kill -9 of berth at 10 moments during 40 concurrent creates: after a restart every group runs (or failed, saying
// why) within 20 s, every acknowledged create is there, and nothing on the host belongs to no group.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Api, endE2e, group, hostFootprint, ociContainers, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'btcrash1';
const SUBNET = '10.213.73.0/24';
const N = 40;
/** When berth is killed, in ms after the 40 PUTs were sent: from before any is answered to while containers start. */
const MOMENTS_MS = [0, 25, 50, 100, 150, 220, 300, 420, 600, 850];
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'ticker', '1')).reference;
});
after(() => endE2e({ berth, subscriptions: ['crash-sub'], registry, bridge: BRIDGE }));

interface Seen {
  name: string;
  state?: string;
  provisioningState?: string;
  why?: string;
  /** Its container was found half-started after the restart, and started again. */
  recovered: boolean;
}

test(`kill -9 at ${MOMENTS_MS.length} moments during ${N} concurrent creates: every group ends Running or Failed with a reason, nothing orphaned`, async () => {
  berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET });
  const footprint = hostFootprint(berth.runcRoot, berth.dataDir);
  const body = group(image, { command: ['sh', '-c', 'while true; do echo tick; sleep 1; done'], cpu: 0.05, memoryInGB: 0.05, restartPolicy: 'Never' });
  const report: string[] = [];
  for (const [round, moment] of MOMENTS_MS.entries()) {
    let api = new Api(berth, 'crash-sub');
    const names = Array.from({ length: N }, (_, i) => `r${round}-g${i}`);
    const answers = names.map((n) => api.req('PUT', api.groupPath('crash', n), body).then((r) => r.status, () => 0));
    await new Promise((r) => setTimeout(r, moment)); // the fault's moment, not a wait for a condition
    await berth.stop('SIGKILL');
    const statuses = await Promise.all(answers);
    const acked = names.filter((_, i) => statuses[i] === 201);

    berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET, dataDir: berth.dataDir, runcRoot: berth.runcRoot });
    api = new Api(berth, 'crash-sub');
    const t0 = Date.now();
    const settled = await api.waitFor(`round ${round}: every group of the round Running or Failed with a reason`, async () => {
      const seen: Seen[] = [];
      for (const name of names) {
        const r = await api.req('GET', api.groupPath('crash', name));
        if (r.status === 404) continue;
        const p = r.body.properties;
        const events = [...(p.instanceView?.events ?? []), ...(p.containers?.[0]?.properties?.instanceView?.events ?? [])] as { type: string; message: string }[];
        seen.push({
          name, state: p.instanceView?.state, provisioningState: p.provisioningState, why: events.find((e) => e.type === 'Warning')?.message,
          recovered: events.some((e) => (e as { name?: string }).name === 'Recovering'),
        });
      }
      const done = seen.every((g) => g.state === 'Running' || (g.state === 'Failed' && g.why));
      return done && seen;
    }, 20_000);
    const ms = Date.now() - t0;
    for (const name of acked) assert.ok(settled.some((g) => g.name === name), `round ${round}: ${name} was acknowledged (201) and must not be lost`);
    const running = settled.filter((g) => g.state === 'Running').length;
    report.push(`kill at ${moment} ms: ${acked.length} acked, ${settled.length} exist, ${running} Running (${settled.filter((g) => g.recovered).length} of them restarted from a half-made start), ${settled.length - running} Failed; settled ${ms} ms after restart`);

    // nothing on the host belongs to no group: one container per running group, one sandbox each
    assert.equal(ociContainers(berth.runcRoot).size, running, `round ${round}: containers on the host`);
    assert.equal(hostFootprint(berth.runcRoot, berth.dataDir).netns - footprint.netns, running, `round ${round}: network namespaces`);
    await Promise.all(settled.map((g) => api.deleteAndWait('crash', g.name)));
    assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), footprint, `round ${round}: all gone after the deletes`);
  }
  for (const line of report) console.log(`# ${line}`);
});
