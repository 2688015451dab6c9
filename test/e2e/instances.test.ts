// End to end through the ARM API of a real `berth server`: real registry, runc, conmon and CNI.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { INDEX_HTML, buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Api, endE2e, group, hostFootprint, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'bte2e0';
const SUBNET = '10.213.64.0/24';
const RG = 'e2e';

let registry: TestRegistry;
let berth: BerthProcess;
let api: Api;
let web: string; // busybox-based web server image in the loopback registry
let footprint: ReturnType<typeof hostFootprint>;

const httpGet = async (url: string) => {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: r.status, text: await r.text() };
};

before(async () => {
  registry = await startRegistry();
  web = (await buildImage(registry.host, 'web', '1', { cmd: ['httpd', '-f', '-p', '80', '-h', '/www'] })).reference;
  // taken before the server starts, of what will be its data dir: compared with counts that leave out the
  // server's own pool and network rules (and every other server's group disks)
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-e2e-'));
  footprint = hostFootprint(join_runc(), dataDir);
  // the backstop poll is an hour: every exit, restart and OOM below is seen through conmon's exit files
  berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET, dataDir, config: { agentPollMs: 3_600_000 } });
  api = new Api(berth);
});

function join_runc() {
  return `/run/berth-test-${process.pid}/runc`;
}

after(() => endE2e({ berth, subscriptions: [api?.sub ?? 'e2e-sub', 'list-sub'], registry, bridge: BRIDGE }));

describe('container groups through the ARM API', () => {
  test('quickstart: a web server group answers on its published port, logs, and leaves nothing behind on delete', async () => {
    const body = group(web, { command: ['sh', '-c', 'echo web server starting; exec httpd -f -vv -p 80 -h /www'], ports: [80], publish: true });
    const put = await api.create(RG, 'web', body);
    assert.equal(put.status, 201);
    assert.match(put.headers.get('azure-asyncoperation') ?? '', /\/providers\/Microsoft\.ContainerInstance\/locations\/local\/operations\/[0-9a-f-]+\?api-version=2023-05-01$/);
    assert.ok(['Pending', 'Creating'].includes(put.body.properties.provisioningState));
    const op = await api.waitOp(put.headers.get('azure-asyncoperation')!);
    assert.equal(op.status, 'Succeeded', JSON.stringify(op));

    const g = (await api.req('GET', api.groupPath(RG, 'web'))).body;
    assert.equal(g.properties.provisioningState, 'Succeeded');
    assert.equal(g.properties.instanceView.state, 'Running');
    assert.equal(g.id, `/subscriptions/${api.sub}/resourceGroups/${RG}/providers/Microsoft.ContainerInstance/containerGroups/web`);
    assert.equal(g.properties.ipAddress.ip, '127.0.0.1');
    assert.deepEqual(g.properties.placement, { host: 'local' }, 'berth extension: where the group runs (no zone on the embedded host)');
    const c = g.properties.containers[0].properties.instanceView;
    assert.equal(c.currentState.state, 'Running');
    assert.deepEqual(c.events.map((e: { name: string }) => e.name).filter((n: string) => ['Pulling', 'Pulled', 'Created', 'Started'].includes(n)), ['Pulling', 'Pulled', 'Created', 'Started']);

    const page = await api.waitFor('HTTP on the published port', async () => httpGet('http://127.0.0.1:80/').catch(() => undefined), 10_000);
    assert.equal(page.status, 200);
    assert.equal(page.text, INDEX_HTML);

    const logs = await api.waitFor('logs', async () => {
      const r = await api.req('GET', `${api.groupPath(RG, 'web')}/containers/main/logs`);
      return r.body.content.includes('web server starting') && r.body.content;
    });
    assert.match(logs, /web server starting/);
    const tail = await api.req('GET', `${api.groupPath(RG, 'web')}/containers/main/logs`, undefined, {});
    assert.equal(tail.status, 200);
    const ts = await api.req('GET', `${api.groupPath(RG, 'web')}/containers/main/logs?tail=1&timestamps=true`);
    assert.match(ts.body.content, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);

    await api.deleteAndWait(RG, 'web');
    assert.equal((await api.req('GET', api.groupPath(RG, 'web'))).status, 404);
    await assert.rejects(httpGet('http://127.0.0.1:80/'));
    assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), footprint);
  });

  test('a group whose command exits 3 with restartPolicy Never ends Failed with exitCode 3; exit 0 ends Succeeded', async () => {
    await api.createAndWait(RG, 'exit3', group(web, { command: ['sh', '-c', 'echo bye; exit 3'], restartPolicy: 'Never' }));
    await api.createAndWait(RG, 'exit0', group(web, { command: ['true'], restartPolicy: 'Never' }));
    const failed = await api.waitFor('exit3 to end', async () => {
      const g = (await api.req('GET', api.groupPath(RG, 'exit3'))).body;
      return g.properties.instanceView.state !== 'Running' && g.properties.instanceView.state !== 'Pending' && g;
    });
    assert.equal(failed.properties.instanceView.state, 'Failed');
    const cs = failed.properties.containers[0].properties.instanceView;
    assert.equal(cs.currentState.state, 'Terminated');
    assert.equal(cs.currentState.exitCode, 3);
    assert.equal(cs.restartCount, 0);
    const ok = await api.waitFor('exit0 to end', async () => {
      const g = (await api.req('GET', api.groupPath(RG, 'exit0'))).body;
      return g.properties.instanceView.state === 'Succeeded' && g;
    });
    assert.equal(ok.properties.containers[0].properties.instanceView.currentState.exitCode, 0);
    assert.equal((await api.req('GET', `${api.groupPath(RG, 'exit3')}/containers/main/logs`)).body.content, 'bye\n');
    await api.deleteAndWait(RG, 'exit3');
    await api.deleteAndWait(RG, 'exit0');
  });

  test('a container over its memory limit is OOM-killed and restarted per its policy, and the instance view says so', async () => {
    // `tail` keeps the whole newline-free stream in memory: far past the 32 MB limit.
    await api.createAndWait(RG, 'oom', group(web, { command: ['sh', '-c', 'echo filling; head -c 200000000 /dev/zero | tail'], restartPolicy: 'OnFailure', memoryInGB: 0.03 }));
    const g = await api.waitFor('an OOM kill and a restart', async () => {
      const g = (await api.req('GET', api.groupPath(RG, 'oom'))).body;
      const v = g.properties.containers[0].properties.instanceView;
      return v?.restartCount >= 1 && v.previousState && g;
    }, 30_000);
    const v = g.properties.containers[0].properties.instanceView;
    assert.equal(v.previousState.state, 'Terminated');
    assert.equal(v.previousState.detailStatus, 'OOMKilled');
    assert.equal(v.previousState.exitCode, 137);
    assert.ok(v.events.some((e: { name: string }) => e.name === 'OOMKilled'));
    assert.equal(g.properties.instanceView.state, 'Running');
    await api.deleteAndWait(RG, 'oom');
  });

  test('secure environment variables reach the container and are never echoed back', async () => {
    const body = group(web, {
      command: ['sh', '-c', 'echo "plain=$PLAIN secret=$SECRET"; sleep 1000'],
      env: [{ name: 'PLAIN', value: 'p1' }, { name: 'SECRET', secureValue: 's3cr3t' }],
    });
    const created = await api.createAndWait(RG, 'env', body);
    assert.doesNotMatch(JSON.stringify(created), /s3cr3t/);
    assert.deepEqual(created.properties.containers[0].properties.environmentVariables, [{ name: 'PLAIN', value: 'p1' }, { name: 'SECRET' }]);
    const logs = await api.waitFor('env in logs', async () => {
      const c = (await api.req('GET', `${api.groupPath(RG, 'env')}/containers/main/logs`)).body.content;
      return c.includes('plain=') && c;
    });
    assert.equal(logs, 'plain=p1 secret=s3cr3t\n');
    const list = await api.req('GET', `/subscriptions/${api.sub}/resourceGroups/${RG}/providers/Microsoft.ContainerInstance/containerGroups`);
    assert.doesNotMatch(list.text, /s3cr3t/);
    await api.deleteAndWait(RG, 'env');
  });

  test('stop, start and restart', async () => {
    await api.createAndWait(RG, 'cycle', group(web, { command: ['sh', '-c', 'echo up; sleep 1000'] }));
    const stop = await api.req('POST', `${api.groupPath(RG, 'cycle')}/stop`);
    assert.equal(stop.status, 204);
    await api.waitFor('Stopped', async () => (await api.req('GET', api.groupPath(RG, 'cycle'))).body.properties.instanceView.state === 'Stopped');
    assert.equal(hostFootprint(berth.runcRoot, berth.dataDir).runcContainers, 0);
    const start = await api.req('POST', `${api.groupPath(RG, 'cycle')}/start`);
    assert.equal(start.status, 202);
    assert.equal((await api.waitOp(start.headers.get('azure-asyncoperation')!)).status, 'Succeeded');
    assert.equal((await api.req('GET', api.groupPath(RG, 'cycle'))).body.properties.instanceView.state, 'Running');
    const restart = await api.req('POST', `${api.groupPath(RG, 'cycle')}/restart`);
    assert.equal(restart.status, 204); // as ACI: 204, with an Azure-AsyncOperation to poll
    assert.equal((await api.waitOp(restart.headers.get('azure-asyncoperation')!)).status, 'Succeeded');
    assert.equal((await api.req('GET', api.groupPath(RG, 'cycle'))).body.properties.instanceView.state, 'Running');
    assert.equal(hostFootprint(berth.runcRoot, berth.dataDir).runcContainers, 1);
    await api.deleteAndWait(RG, 'cycle');
  });

  test('an image that does not exist fails the create with InaccessibleImage and leaves nothing behind', async () => {
    const r = await api.create(RG, 'noimage', group(`${registry.host}/does-not-exist:1`));
    const op = await api.waitOp(r.headers.get('azure-asyncoperation')!);
    assert.equal(op.status, 'Failed');
    assert.equal(op.error?.code, 'InaccessibleImage');
    const g = (await api.req('GET', api.groupPath(RG, 'noimage'))).body;
    assert.equal(g.properties.provisioningState, 'Failed');
    assert.equal(hostFootprint(berth.runcRoot, berth.dataDir).netns, footprint.netns);
    await api.deleteAndWait(RG, 'noimage');
  });

  test('list by subscription and by resource group, with nextLink paging', async () => {
    const api = new Api(berth, 'list-sub');
    for (const [rg, n] of [['la', 'a1'], ['la', 'a2'], ['lb', 'b1']]) await api.create(rg, n, group(web, { command: ['sleep', '1000'] }));
    const bySub = await api.req('GET', `/subscriptions/list-sub/providers/Microsoft.ContainerInstance/containerGroups`);
    assert.deepEqual(bySub.body.value.map((g: { name: string }) => g.name).sort(), ['a1', 'a2', 'b1']);
    const byRg = await api.req('GET', `/subscriptions/${api.sub}/resourceGroups/la/providers/Microsoft.ContainerInstance/containerGroups`);
    assert.deepEqual(byRg.body.value.map((g: { name: string }) => g.name).sort(), ['a1', 'a2']);
    const p1 = await api.req('GET', `/subscriptions/${api.sub}/providers/Microsoft.ContainerInstance/containerGroups?$top=2`);
    assert.equal(p1.body.value.length, 2);
    const p2 = await api.req('GET', p1.body.nextLink);
    assert.equal(p2.body.value.length, 1);
    assert.equal(p2.body.nextLink, undefined);
    const other = await new Api(berth, 'other-sub').req('GET', `/subscriptions/other-sub/providers/Microsoft.ContainerInstance/containerGroups`);
    assert.deepEqual(other.body.value, []);
    for (const [rg, n] of [['la', 'a1'], ['la', 'a2'], ['lb', 'b1']]) await api.deleteAndWait(rg, n);
  });

  test('a watch on a resource group\'s list streams a line for each change of its groups, and only of its groups', async () => {
    const api = new Api(berth, 'watch-sub');
    const ac = new AbortController();
    const res = await fetch(`${berth.url}/subscriptions/watch-sub/resourceGroups/wa/providers/Microsoft.ContainerInstance/containerGroups?api-version=2023-05-01&watch=true`, {
      headers: { authorization: `Bearer ${berth.token}` }, signal: ac.signal,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const lines: { type: string; resourceGroup?: string; name?: string }[] = [];
    const reading = (async () => {
      let buf = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += Buffer.from(chunk).toString();
          for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) lines.push(JSON.parse(buf.slice(0, i)));
        }
      } catch { /* aborted */ }
    })();
    try {
      await api.waitFor('the first heartbeat', async () => lines.some((l) => l.type === 'HEARTBEAT'), 5000);
      await api.create('other', 'elsewhere', group(web, { command: ['sleep', '1000'] }));
      await api.createAndWait('wa', 'watched', group(web, { command: ['sleep', '1000'] }));
      // Record and status changes of the watched group, as they happen; none of the other resource group.
      await api.waitFor('a change line for the running group', async () => lines.filter((l) => l.type === 'CHANGED').length >= 2, 5000);
      assert.ok(lines.filter((l) => l.type === 'CHANGED').every((l) => l.resourceGroup === 'wa' && l.name === 'watched'), JSON.stringify(lines));
      const n = lines.length;
      await api.deleteAndWait('wa', 'watched');
      await api.waitFor('a change line for the delete', async () => lines.slice(n).some((l) => l.type === 'CHANGED' && l.name === 'watched'), 5000);
      // Without a valid token there is no watch either.
      const denied = await api.req('GET', `/subscriptions/watch-sub/resourceGroups/wa/providers/Microsoft.ContainerInstance/containerGroups?watch=true`, undefined, { token: 'not-the-token' });
      assert.equal(denied.status, 401);
    } finally {
      ac.abort();
      await reading;
      await api.deleteAndWait('other', 'elsewhere');
    }
  });
});
