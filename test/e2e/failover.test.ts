// Failover on a real cluster (scripts/dev-cluster.sh up 3): a host's power loss has its 10 groups Running on the other hosts within seconds (same names, new IPs, events that say so; the time printed), a 3 s partition moves nothing, a 20 s one moves its groups and after the heal no group runs twice, and a host back after its groups moved runs nothing stale.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { before, describe, test } from 'node:test';
import { EtcdStore } from '../../src/store/etcd.js';
import { Api, group } from '../helpers/berth.js';
import { onDevCluster, hostContainers, type DevCluster } from '../helpers/cluster.js';

const REGISTRY_PORT = 25001;
const SUB = 'failover-sub';
const RG = 'failover';
const HOSTS = ['devh1', 'devh2', 'devh3'];
const HOST_IP: Record<string, string> = { devh1: '10.250.0.11', devh2: '10.250.0.12', devh3: '10.250.0.13' };
const NAMES = Array.from({ length: 10 }, (_, i) => `f${i}`);
const IP_HOST = Object.fromEntries(Object.entries(HOST_IP).map(([h, ip]) => [ip, h]));

let cluster: DevCluster | undefined;
let api: Api;
let image: string;
let etcd: EtcdStore;

const onCluster = onDevCluster({ replicas: 2, sub: SUB, registryPort: REGISTRY_PORT, image: { name: 'failover/sleep', cmd: ['sleep', '100000'] }, etcd: true });
before(async () => ({ cluster, api, image, etcd } = await onCluster));

const ready = async (host: string) => !!(await etcd.get(`/hostleases/${host}`));

/** Each group as the API shows it: where it runs (its Public IP is its host's address), its state, its events. */
async function groups() {
  return Promise.all(NAMES.map(async (name) => {
    const g = await api.client.containerGroups.get(RG, name);
    const ip = g.properties.ipAddress?.ip as string | undefined;
    return { name, ip, host: ip ? IP_HOST[ip] : undefined, state: g.properties.instanceView?.state, events: g.properties.instanceView?.events ?? [] };
  }));
}

/** Group uid -> the hosts running a container of it now (counted in each host's mount namespace). */
async function copies(): Promise<Map<string, string[]>> {
  const uids = (await etcd.list<{ uid: string }>(`/groups/${SUB}/${RG}/`)).map((kv) => kv.value.uid);
  const out = new Map(uids.map((u) => [u, [] as string[]]));
  for (const host of HOSTS) for (const id of hostContainers(cluster!, host).keys()) out.get(id.split('-')[0])?.push(host);
  return out;
}

const runningOnce = async () => [...(await copies()).values()].every((hosts) => hosts.length === 1);

describe('failover on a dev cluster of three hosts', () => {
  test("a host's power loss: its 10 groups Running on the other hosts within seconds, same names, new IPs, events that say so", async (t) => {
    // pinned on devh1: the others are not Ready while the groups are placed (no groups of theirs to move)
    await cluster!.run('kill-agent', 'devh2');
    await cluster!.run('kill-agent', 'devh3');
    await api.waitFor('devh2 and devh3 NotReady', async () => !(await ready('devh2')) && !(await ready('devh3')), 20_000);
    await Promise.all(NAMES.map((name, i) => api.createAndWait(RG, name, group(image, { ports: [8100 + i], publish: true, cpu: 0.05, memoryInGB: 0.05 }))));
    await api.waitFor('10 Running on devh1', async () => (await groups()).every((g) => g.host === 'devh1' && g.state === 'Running'), 60_000);
    await cluster!.run('start-host', 'devh2');
    await cluster!.run('start-host', 'devh3');
    await api.waitFor('devh2 and devh3 Ready', async () => (await ready('devh2')) && (await ready('devh3')), 20_000);

    const killed = Date.now();
    await cluster!.run('kill-host', 'devh1');
    const moved = await api.waitFor('every group Running elsewhere', async () => {
      const now = await groups();
      return now.every((g) => g.state === 'Running' && g.host && g.host !== 'devh1') && now;
    }, 30_000);
    const seconds = (Date.now() - killed) / 1000;
    t.diagnostic(`failover: ${NAMES.length} groups Running elsewhere ${seconds.toFixed(1)} s after the kill`);
    console.log(`failover: ${NAMES.length} groups Running elsewhere ${seconds.toFixed(1)} s after the kill`);
    for (const g of moved) {
      assert.notEqual(g.ip, HOST_IP.devh1, `${g.name}: a new IP`);
      assert.ok(g.events.some((e) => e.name === 'Rescheduled' && e.message?.includes("'devh1' is NotReady")), `${g.name}: why it moved ${JSON.stringify(g.events)}`);
      assert.ok(g.events.some((e) => e.name === 'Scheduled' && e.message?.startsWith(`Placed on host '${g.host}'`)), `${g.name}: where it went`);
    }
    assert.deepEqual(new Set(moved.map((g) => g.host)), new Set(['devh2', 'devh3']), 'spread over the hosts left');
    const counted = await copies();
    assert.deepEqual([...counted.values()].filter((h) => h.length !== 1), [], 'every group runs exactly once');
  });

  test('a host back after its groups moved runs nothing stale', async () => {
    await cluster!.run('start-host', 'devh1');
    await api.waitFor('devh1 Ready', () => ready('devh1'), 20_000);
    // its removals reported: nothing is awaited of it any more
    await api.waitFor('devh1 has reported its removals', async () => (await etcd.list('/removing/devh1/')).length === 0, 30_000);
    assert.deepEqual([...hostContainers(cluster!, 'devh1').keys()], [], 'devh1 runs none of them');
    assert.ok(await runningOnce());
  });

  test('a 3 s partition moves nothing: same hosts, same processes', async () => {
    const before = await groups();
    const host = before[0].host!;
    const pids = hostContainers(cluster!, host);
    assert.ok(pids.size > 0);
    await cluster!.run('partition', host, '3');
    const link = `bdev-h${host.slice(-1)}`;
    await api.waitFor('the link back up', async () => /state UP/.test(execFileSync('ip', ['-o', 'link', 'show', link], { encoding: 'utf8' })), 10_000);
    // longer than a lease after the cut: had it counted as a loss, the groups would have moved by now
    await new Promise((r) => setTimeout(r, 4000));
    assert.ok(await ready(host), `${host} stayed Ready`);
    assert.deepEqual((await groups()).map((g) => [g.name, g.host, g.state]), before.map((g) => [g.name, g.host, g.state]), 'the same hosts');
    assert.deepEqual(hostContainers(cluster!, host), pids, 'the same processes');
  });

  test('a 20 s partition moves its groups; after the heal its stale copies go and every group runs exactly once', async () => {
    const before = await groups();
    const host = before[0].host!;
    const mine = before.filter((g) => g.host === host).map((g) => g.name);
    await cluster!.run('partition', host, '20');
    const cut = Date.now();
    await api.waitFor(`${host}'s groups Running elsewhere`, async () => {
      const now = await groups();
      return now.every((g) => g.state === 'Running' && g.host !== host) && now;
    }, 20_000);
    console.log(`partition: ${mine.length} groups of ${host} Running elsewhere ${((Date.now() - cut) / 1000).toFixed(1)} s after the cut`);
    const link = `bdev-h${host.slice(-1)}`;
    await api.waitFor('the link back up', async () => /state UP/.test(execFileSync('ip', ['-o', 'link', 'show', link], { encoding: 'utf8' })), 30_000);
    await api.waitFor(`${host} Ready again`, () => ready(host), 20_000);
    await api.waitFor('its stale copies gone: every group once', runningOnce, 30_000)
      .catch(async (e) => assert.fail(`${e.message}: ${JSON.stringify([...(await copies())])}`));
    assert.deepEqual([...hostContainers(cluster!, host).keys()], [], `${host} runs none of its old groups`);
    assert.ok((await groups()).every((g) => g.state === 'Running'));
  });
});
