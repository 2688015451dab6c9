// A real cluster on this machine (scripts/dev-cluster.sh up 3: etcd, two control plane replicas, three hosts in network
// namespaces with their own agents): groups run on every host with logs, follow, exec and attach; an agent's crash re-adopts its
// containers; kill -9 of the leading replica during 100 creates loses and doubles nothing; a host's power loss and
// partition; and `down` leaves nothing behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { Election } from '../../src/store/election.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { Api, group } from '../helpers/berth.js';
import { onDevCluster, hostContainers, hostMountNamespace, hostProcesses, recordedProcesses, stillRuns, type DevCluster } from '../helpers/cluster.js';
import { execSession } from '../helpers/exec.js';
import { INDEX_HTML } from '../helpers/images.js';

const REGISTRY_PORT = 25000;
const RG = 'cluster';
const HOSTS = ['devh1', 'devh2', 'devh3'];
const HOST_IP: Record<string, string> = { devh1: '10.250.0.11', devh2: '10.250.0.12', devh3: '10.250.0.13' };

let cluster: DevCluster | undefined;
let api: Api;
let image: string;
let etcd: EtcdStore;

const onCluster = onDevCluster({ replicas: 2, sub: 'cluster-sub', registryPort: REGISTRY_PORT, image: { name: 'cluster/web', cmd: ['httpd', '-f', '-p', '80', '-h', '/www'] }, etcd: true });
before(async () => ({ cluster, api, image, etcd } = await onCluster));
const rootRulesBefore = execFileSync('iptables-save', { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('-A'));

const httpGet = async (url: string) => {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: r.status, text: await r.text() };
};

/** The replica (1-based) that leads the reconcilers now, by the election's record and the script's PID files. */
async function leaderIndex(): Promise<number | undefined> {
  const leader = await new Election(etcd, '/elections/reconcilers/').leader();
  const pid = Number(String((leader?.value as { replica?: string } | undefined)?.replica ?? '').split('/')[1]);
  for (let i = 1; i <= cluster!.replicas.length; i++)
    if (Number(readFileSync(join(cluster!.dir, `cp${i}`, 'server.pid'), 'utf8')) === pid) return i;
  return undefined;
}

/** What the store says of a subscription's groups (for a failure's message): placed or not, their specs and statuses. */
async function storeSummary(sub: string) {
  const records = await etcd.list<{ uid: string; name: string; host?: string; generation: number }>(`/groups/${sub}/`);
  const specs = new Map((await etcd.list<{ uid: string; generation: number }>('/hostspecs/')).map((kv) => [kv.value.uid, kv.key]));
  const statuses = new Map((await etcd.list<{ uid: string; state: string; generation: number; host: string }>('/status/')).map((kv) => [kv.value.uid, kv.value]));
  const odd = records.filter((r) => statuses.get(r.value.uid)?.state !== 'Running').map((r) => ({
    name: r.value.name, uid: r.value.uid, host: r.value.host, gen: r.value.generation, spec: specs.get(r.value.uid), status: statuses.get(r.value.uid),
  }));
  return JSON.stringify({ records: records.length, notRunning: odd.slice(0, 10), notRunningCount: odd.length });
}

describe('a dev cluster of three hosts', () => {
  test('groups created through the API run on all 3 hosts (real containers), their ports on their host, with logs, follow, exec and attach', async () => {
    const names = ['g1', 'g2', 'g3'];
    const groups = await Promise.all(names.map((name, i) => api.createAndWait(RG, name, group(image, {
      command: ['sh', '-c', `echo started in $(hostname); exec httpd -f -p ${8001 + i} -h /www`], ports: [8001 + i], publish: true, cpu: 0.1, memoryInGB: 0.1,
    }))));
    const ipOf = new Map(groups.map((g, i) => [names[i], g.properties.ipAddress.ip as string]));
    // round-robin over the Ready hosts: one each, and each reports its host's address
    assert.deepEqual([...ipOf.values()].sort(), Object.values(HOST_IP).sort());
    for (const host of HOSTS) {
      const ids = [...hostContainers(cluster!, host).keys()];
      assert.equal(ids.length, 1, `${host} runs one container: ${ids}`);
      const name = names[[...ipOf.values()].indexOf(HOST_IP[host])];
      const pid = hostContainers(cluster!, host).get(ids[0])!;
      assert.ok(existsSync(`/proc/${pid}`), `${host}: the container's process lives`);
      // its published port answers on its host's address (through the host's own namespace and rules)
      const port = 8001 + names.indexOf(name);
      const page = await api.waitFor(`${name} on ${HOST_IP[host]}:${port}`, () => httpGet(`http://${HOST_IP[host]}:${port}/`).catch(() => undefined), 15_000);
      assert.equal(page.text, INDEX_HTML);
      assert.match(await api.client.containers.logs(RG, name, 'main'), new RegExp(`started in ${name}\\n`));
      const s = await execSession(api, RG, name, 'main', 'cat /etc/hostname');
      await s.waitFor(new RegExp(name));
      assert.deepEqual(await s.closed, { code: 1000, reason: 'exit 0' });
      // follow and attach reach the host's agent too: a line the container writes from now on arrives on both
      const ac = new AbortController();
      let followed = '';
      let attached = '';
      const following = (async () => {
        for await (const chunk of await api.client.containers.followLogs(RG, name, 'main', { tail: 0, signal: ac.signal })) followed += chunk.toString();
      })().catch((e) => (ac.signal.aborted ? undefined : Promise.reject(e)));
      const attach = await api.client.containers.openAttach(RG, name, 'main', { onOutput: (d) => (attached += d) });
      const w = await execSession(api, RG, name, 'main', `sh -c 'echo written on ${host} > /proc/1/fd/1'`);
      assert.deepEqual(await w.closed, { code: 1000, reason: 'exit 0' });
      await api.waitFor(`${name}'s line followed and attached`, async () => followed.includes(`written on ${host}\n`) && attached.includes(`written on ${host}\n`), 15_000);
      ac.abort();
      await following;
      attach.close();
      await attach.ended;
    }
  });

  test('kill -9 of an agent and its restart: its groups keep running and are re-adopted (same PIDs)', async () => {
    const before = hostContainers(cluster!, 'devh1');
    assert.equal(before.size, 1);
    const [name] = (await api.client.containerGroups.listByResourceGroup(RG).toArray()).filter((g) => g.properties.ipAddress?.ip === HOST_IP.devh1).map((g) => g.name!);
    await cluster!.run('kill-agent', 'devh1');
    assert.deepEqual(hostContainers(cluster!, 'devh1'), before, 'the containers run on without their agent');
    await cluster!.run('start-host', 'devh1');
    // the new agent knows the running container (exec reaches it through the agent's own API) and made no other
    const s = await execSession(api, RG, name, 'main', 'echo adopted');
    await s.waitFor(/adopted/);
    assert.deepEqual(await s.closed, { code: 1000, reason: 'exit 0' });
    const g = await api.client.containerGroups.get(RG, name);
    assert.equal(g.properties.instanceView?.state, 'Running');
    assert.equal(g.properties.containers[0].properties.instanceView?.restartCount, 0);
    assert.deepEqual(hostContainers(cluster!, 'devh1'), before, 'same containers, same PIDs');
  });

  test('kill -9 of the leading replica during 100 creates: every accepted create runs exactly once, and the other replica keeps answering', async (t) => {
    const leader = await api.waitFor('a leader', leaderIndex, 10_000);
    const other = leader === 1 ? 2 : 1;
    const viaOther = new Api({ url: cluster!.replicas[other - 1], token: cluster!.token }, 'burst-sub');
    const before = new Set(HOSTS.flatMap((h) => [...hostContainers(cluster!, h).keys()]));
    const statuses: number[] = [];
    let next = 0;
    // the kill starts as the 26th create goes out; the 51st and later go out once the leader is dead
    let killStarted = 0;
    let killing: Promise<void> | undefined;
    let handedOver: Promise<number> | undefined;
    const kill = async () => {
      killStarted = Date.now();
      // the next leader, as the election's record says (polled apart from the creates, from the kill's start)
      handedOver = (async () => {
        while ((await leaderIndex()) !== other) {
          if (Date.now() - killStarted > 30_000) throw new Error('no other leader within 30 s');
          await new Promise((r) => setTimeout(r, 20));
        }
        return Date.now() - killStarted;
      })();
      await cluster!.run('kill-replica', String(leader));
    };
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 100) {
        const i = next++;
        if (i === 25) killing = kill();
        if (i >= 50) await killing;
        const r = await viaOther.req('PUT', viaOther.groupPath('burst', `b${i}`), group(image, { command: ['sleep', '100000'], cpu: 0.05, memoryInGB: 0.05 }));
        statuses[i] = r.status;
      }
    }));
    assert.deepEqual(statuses.map((s, i) => [i, s]).filter(([, s]) => s !== 201), [], 'the other replica accepted every create, during and after the kill');
    // the next leader: within the election lease's TTL (3 s) and the time to notice it
    const handover = await handedOver!;
    t.diagnostic(`leader handover: ${handover} ms from the kill -9 to the other replica leading`);
    assert.ok(handover <= 5000, `handed over in ${handover} ms`);
    await viaOther.waitFor('all 100 Running', async () => {
      const all = await viaOther.client.containerGroups.listByResourceGroup('burst').toArray();
      const running = await Promise.all(all.map((g) => viaOther.client.containerGroups.get('burst', g.name!)));
      return all.length === 100 && running.every((g) => g.properties.instanceView?.state === 'Running');
    }, 120_000).catch(async (e) => assert.fail(`${e.message}: ${await storeSummary('burst-sub')}`));
    const made = HOSTS.flatMap((h) => [...hostContainers(cluster!, h).keys()]).filter((id) => !before.has(id));
    const uids = made.map((id) => id.split('-')[0]);
    assert.equal(made.length, 100, `one container per accepted create: ${made.length}`);
    assert.equal(new Set(uids).size, 100, 'no group runs twice');
    await cluster!.run('start-replica', String(leader));
  });

  test("a host's power loss ends all its processes; its group runs on another host, and the host comes back like a rebooted machine running nothing stale", async () => {
    const [name] = (await api.client.containerGroups.listByResourceGroup(RG).toArray()).filter((g) => g.properties.ipAddress?.ip === HOST_IP.devh3).map((g) => g.name!);
    const ns = hostMountNamespace(cluster!, 'devh3')!;
    const procs = hostProcesses(cluster!, 'devh3');
    assert.ok(procs.length > 3);
    await cluster!.run('kill-host', 'devh3');
    assert.deepEqual(procs.filter(stillRuns).map((p) => `${p.pid} ${p.cmdline.join(' ')}`), [], 'nothing of it runs');
    assert.ok(!readdirSync('/proc').some((e) => /^\d+$/.test(e) && (() => { try { return execFileSync('readlink', [`/proc/${e}/ns/mnt`], { encoding: 'utf8' }).trim() === ns; } catch { return false; } })()));
    // NotReady once its lease runs out (4 s without heartbeats), and its group placed again elsewhere (failover.test.ts times it)
    await api.waitFor('devh3 NotReady', async () => !(await etcd.get('/hostleases/devh3')), 20_000);
    const moved = await api.waitFor(`${name} Running on another host`, async () => {
      const g = await api.client.containerGroups.get(RG, name);
      return g.properties.instanceView?.state === 'Running' && g.properties.ipAddress?.ip !== HOST_IP.devh3 && g;
    }, 30_000);
    const port = 8001 + ['g1', 'g2', 'g3'].indexOf(name);
    const page = await api.waitFor(`${name} answering on its new host`, () => httpGet(`http://${moved.properties.ipAddress!.ip}:${port}/`).catch(() => undefined), 15_000);
    assert.equal(page.text, INDEX_HTML);
    await cluster!.run('start-host', 'devh3');
    await api.waitFor('devh3 Ready', async () => !!(await etcd.get('/hostleases/devh3')), 20_000);
    await api.waitFor('devh3 reported its removals', async () => (await etcd.list('/removing/devh3/')).length === 0, 30_000);
    assert.deepEqual([...hostContainers(cluster!, 'devh3').keys()], [], 'the rebooted host runs nothing stale');
  });

  test("a partition cuts a host's underlay link for the time asked, then it is back", async () => {
    const { stderr } = await cluster!.run('partition', 'devh2', '2');
    assert.match(stderr, /devh2 is cut off until \d\d:\d\d:\d\d \(2 s\)/);
    const state = () => execFileSync('ip', ['-o', 'link', 'show', 'bdev-h2'], { encoding: 'utf8' });
    assert.match(state(), /state DOWN/);
    await assert.rejects(httpGet(`http://${HOST_IP.devh2}:1/`), 'unreachable while cut');
    await api.waitFor('the link back up', async () => /state UP/.test(state()), 10_000);
    await api.waitFor('devh2 answering again', async () => (await etcd.get('/hostleases/devh2')) && httpGet(`http://${HOST_IP.devh2}:${8002}/`).then(() => true, () => true), 10_000);
  });

  test('down leaves no namespace, link, mount, process or rule', async () => {
    const procs = HOSTS.flatMap((h) => hostProcesses(cluster!, h));
    const recorded = recordedProcesses(cluster!);
    const dir = cluster!.dir;
    // every container the hosts ever made (a moved group's too), by the cgroup it runs in: one whose monitor a kill
    // took away is no longer any host process's child
    const containerIds = HOSTS.flatMap((h) => {
      try {
        return readdirSync(join(dir, 'hosts', h, 'data', 'containers'));
      } catch {
        return [];
      }
    });
    assert.ok(containerIds.length > 0);
    await etcd.close();
    await cluster!.down();
    cluster = undefined;
    const alive = recorded.filter(stillRuns).map((p) => p.pid);
    assert.deepEqual(alive, [], 'no process the script started lives');
    assert.deepEqual(procs.filter(stillRuns).map((p) => `${p.pid} ${p.cmdline.join(' ')}`), [], "no host's process lives");
    const cgroups = containerIds.filter((id) => existsSync(`/sys/fs/cgroup/pids/berth/${id}`));
    assert.deepEqual(cgroups, [], 'no cgroup of a container is left, nor any process in one');
    assert.deepEqual(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('devh')), []);
    assert.deepEqual(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').filter((l) => /bdev/.test(l)), []);
    assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(dir) && !readFileSync('/proc/mounts', 'utf8').includes('berth-devhost'));
    const loops = readdirSync('/sys/block').filter((d) => {
      try {
        return readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').includes(dir);
      } catch {
        return false;
      }
    });
    assert.deepEqual(loops, [], 'no loop device of a group disk');
    assert.deepEqual(execFileSync('iptables-save', { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('-A')), rootRulesBefore);
    assert.ok(!existsSync(dir));
  });
});
