// A burst of concurrent creates on a dev cluster of three hosts (etcd, one control plane replica, three agents in network
// namespaces): every PUT sent at once, then the time until every group is Running, where they landed, and the deletes.
// Run inside scripts/isolated.sh (the dev cluster's bridge and addresses are fixed): bash bench/cluster.sh --burst [N]
import { writeFileSync } from 'node:fs';
import { Api, group } from '../test/helpers/berth.js';
import { devClusterUp, UNDERLAY, type DevCluster } from '../test/helpers/cluster.js';
import { buildImage } from '../test/helpers/images.js';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';

const REGISTRY_PORT = 25000;
const RG = 'burst';
const log = (s: string) => console.error(`bench: ${s}`);
const seconds = (t0: number) => Math.round((performance.now() - t0) / 100) / 10;

interface Listed {
  name: string;
  properties: { provisioningState: string; placement?: { host?: string } };
}

/** Every group of the resource group, through the API's paged list. */
async function listAll(api: Api): Promise<Listed[]> {
  const out: Listed[] = [];
  for (let url: string | undefined = `${api.groupPath(RG, '').replace(/\/$/, '')}?$top=1000`; url; ) {
    let r = await api.req('GET', url);
    // a store that is overwhelmed answers 503 for a while: a client tries again, as ARM clients do
    for (let tries = 0; r.status === 503 && tries < 30; tries++) {
      log(`list: 503 (${JSON.parse(r.text)?.error?.message?.slice(0, 80)}), again in 1 s`);
      await new Promise((res) => setTimeout(res, 1000));
      r = await api.req('GET', url);
    }
    if (r.status !== 200) throw new Error(`list: ${r.status} ${r.text}`);
    out.push(...(r.body.value as Listed[]));
    url = r.body.nextLink ? new URL(r.body.nextLink).pathname + new URL(r.body.nextLink).search : undefined;
  }
  return out;
}

export async function burst(argv: string[]) {
  const n = argv.includes('--burst') ? Number(argv[argv.indexOf('--burst') + 1]) || 1000 : 1000;
  const json = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : undefined;
  // room for the burst on three hosts (the machine's own cores are shared: the groups only sleep)
  process.env.BERTH_DEV_CLUSTER_HOST_CPU ??= String(Math.ceil((n * 0.05) / 3) + 4);
  process.env.BERTH_DEV_CLUSTER_HOST_MEMORY_GB ??= String(Math.ceil((n * 0.1) / 3) + 8);
  let registry: TestRegistry | undefined;
  let cluster: DevCluster | undefined;
  try {
    cluster = await devClusterUp({ hosts: 3, replicas: 1, insecureRegistries: [`${UNDERLAY}:${REGISTRY_PORT}`] });
    registry = await startRegistry({ listen: { host: UNDERLAY, port: REGISTRY_PORT } });
    const image = (await buildImage(registry.host, 'burst', '1', { cmd: ['sleep', '3600'] })).reference;
    const api = new Api({ url: cluster.http, token: cluster.token }, 'burst');
    const body = group(image, { cpu: 0.05, memoryInGB: 0.1 });
    // warm-up: every host pulls the image once (spread puts one on each)
    await Promise.all([0, 1, 2].map((i) => api.createAndWait(RG, `warm${i}`, { ...body, properties: { ...body.properties, placement: { antiAffinity: [{ selector: { names: ['warm0', 'warm1', 'warm2'].filter((_, k) => k !== i) }, scope: 'Host' }] } } })));
    for (const i of [0, 1, 2]) await api.deleteAndWait(RG, `warm${i}`);

    log(`${n} creates at once`);
    const t0 = performance.now();
    const puts = await Promise.all(Array.from({ length: n }, (_, i) => api.req('PUT', api.groupPath(RG, `b${i}`), body)));
    const accepted = seconds(t0);
    const refused = puts.filter((r) => r.status !== 201);
    if (refused.length > 0) throw new Error(`${refused.length} creates refused, e.g. ${refused[0].status} ${refused[0].text}`);
    log(`all ${n} accepted after ${accepted} s`);
    let groups: Listed[] = [];
    for (let last = -1; ; await new Promise((r) => setTimeout(r, 500))) {
      groups = await listAll(api);
      const done = groups.filter((g) => g.properties.provisioningState === 'Succeeded').length;
      const failed = groups.filter((g) => g.properties.provisioningState === 'Failed');
      if (done !== last) log(`${done}/${n} Running, ${failed.length} failed after ${seconds(t0)} s`);
      last = done;
      if (done + failed.length === n) {
        if (failed.length > 0) {
          // what went wrong, by reason: the group's events say it
          const reasons = new Map<string, number>();
          for (const f of failed.slice(0, 50)) {
            const g = (await api.req('GET', api.groupPath(RG, f.name))).body;
            const events = [...(g.properties.instanceView?.events ?? []), ...g.properties.containers.flatMap((c: { properties: { instanceView?: { events?: unknown[] } } }) => c.properties.instanceView?.events ?? [])] as { type: string; name: string; message: string }[];
            const why = events.filter((e) => e.type === 'Warning').map((e) => `${e.name}: ${e.message.slice(0, 200)}`).join(' | ') || 'no warning event';
            reasons.set(why, (reasons.get(why) ?? 0) + 1);
          }
          throw new Error(`${failed.length} of ${n} groups failed; reasons of the first 50: ${JSON.stringify([...reasons])}`);
        }
        break;
      }
      if (performance.now() - t0 > 600_000) throw new Error(`only ${done}/${n} Running after 10 minutes`);
    }
    const allRunning = seconds(t0);
    const perHost: Record<string, number> = {};
    for (const g of groups) perHost[g.properties.placement?.host ?? '?'] = (perHost[g.properties.placement?.host ?? '?'] ?? 0) + 1;
    const t1 = performance.now();
    await Promise.all(groups.map((g) => api.req('DELETE', api.groupPath(RG, g.name))));
    await api.waitFor('every group deleted', async () => (await listAll(api)).length === 0, 600_000);
    const deleted = seconds(t1);
    const result = { groups: n, hosts: 3, acceptedSeconds: accepted, allRunningSeconds: allRunning, perHost, deleteSeconds: deleted };
    if (json) writeFileSync(json, JSON.stringify(result, null, 2));
    return result;
  } finally {
    await cluster?.down().catch((e) => log(`down: ${(e as Error).message}`));
    await registry?.stop();
  }
}

if (process.argv[1]?.endsWith('cluster-burst.js')) {
  burst(process.argv.slice(2)).then(
    (r) => {
      console.log(JSON.stringify(r));
      process.exit(0);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
