// The agent's contract suite: specs placed through the control plane in, runtime actions and statuses back at the control plane out. The in-process link and a remote one pass it unchanged.
import assert from 'node:assert/strict';
import { BerthError, Codes } from '../../lib/errors.js';
import { containerId, sandboxId } from '../ids.js';
import { placedSpec, testContainer, waitFor } from '../testing.js';
import { agentTest, statusWhere, type AgentUnderTest } from './harness.js';

export type { AgentHarness, AgentUnderTest } from './harness.js';

const U1 = 'c00000000001';
const U2 = 'c00000000002';
const U3 = 'c00000000003';

export function agentContract(sut: AgentUnderTest) {
  agentTest(sut, 'a placed spec runs, and its status reaches the control plane', async (h, fake) => {
    await h.place(placedSpec(U1, 1, { ports: [{ port: 8080, protocol: 'TCP' }], containers: [testContainer('web', { env: [{ name: 'K', value: 'v' }] })] }));
    const s = await statusWhere(h, U1, 'Running', (x) => x.state === 'Running' && x.provisioning === 'Succeeded');
    assert.equal(s.generation, 1);
    assert.equal(s.ip, fake.network.sandboxes.get(sandboxId(U1, 1))?.sandbox.ip);
    assert.deepEqual(fake.network.sandboxes.get(sandboxId(U1, 1))?.ports, [{ port: 8080, protocol: 'TCP' }]);
    assert.deepEqual(fake.containers.containers.get(containerId(U1, 1, 'web'))?.spec.env, { K: 'v' });
  });

  agentTest(sut, 'a newer generation replaces the older; an older one placed after it is never run', async (h, fake) => {
    await h.place(placedSpec(U1, 1));
    await statusWhere(h, U1, 'Running', (x) => x.state === 'Running');
    await h.place(placedSpec(U1, 3, { state: 'Stopped' }));
    await statusWhere(h, U1, 'Stopped at generation 3', (x) => x.generation === 3 && x.state === 'Stopped');
    assert.equal(fake.containers.containers.size, 0);
    await h.place(placedSpec(U1, 2));
    await h.place(placedSpec(U2, 1));
    await statusWhere(h, U2, 'Running', (x) => x.state === 'Running');
    assert.equal((await h.status(U1))?.generation, 3, 'generation 2 came after 3: fenced');
    assert.deepEqual([...fake.containers.containers.keys()], [containerId(U2, 1, 'main')]);
  });

  agentTest(sut, 'a group taken off the host is torn down, then reported removed', async (h, fake) => {
    await h.place(placedSpec(U1, 1));
    await statusWhere(h, U1, 'Running', (x) => x.state === 'Running');
    await h.unplace(U1);
    await waitFor('the removal reported', () => h.removed().includes(U1));
    assert.deepEqual([fake.containers.containers.size, fake.network.sandboxes.size, fake.storage.claimed.size], [0, 0, 0]);
  });

  agentTest(sut, 'an agent that starts again adopts what runs, continues its statuses, and catches up with what changed while it was away', async (h, fake) => {
    await h.place(placedSpec(U1, 1));
    await h.place(placedSpec(U2, 1));
    await statusWhere(h, U2, 'Running', (x) => x.state === 'Running');
    fake.containers.exit(containerId(U1, 1, 'main'), 1);
    await statusWhere(h, U1, 'restarted', (x) => x.containers.main.restartCount === 1 && x.containers.main.currentState.state === 'Running');
    await h.stopAgent();
    const pid = fake.containers.containers.get(containerId(U1, 1, 'main'))!.status.pid;
    await h.unplace(U2);
    await h.place(placedSpec(U3, 1));
    fake.containers.actions.length = 0;
    await h.startAgent();
    await waitFor('U2 reported removed', () => h.removed().includes(U2));
    await statusWhere(h, U3, 'Running', (x) => x.state === 'Running');
    assert.equal(fake.containers.containers.has(containerId(U2, 1, 'main')), false);
    assert.equal(fake.containers.containers.get(containerId(U1, 1, 'main'))!.status.pid, pid, 'U1 kept running, never restarted');
    assert.ok(!fake.containers.actions.some((a) => a.includes(U1)));
    const s = await statusWhere(h, U1, 'Running', (x) => x.state === 'Running');
    assert.equal(s.containers.main.restartCount, 1, 'the status continues from the last report');
  });

  agentTest(sut, 'statuses of many groups reach the control plane (more than one transaction carries)', async (h) => {
    const uids = Array.from({ length: 150 }, (_, i) => `d${String(i).padStart(11, '0')}`);
    await Promise.all(uids.map((uid) => h.place(placedSpec(uid, 1))));
    for (const uid of uids) await statusWhere(h, uid, 'Running', (x) => x.state === 'Running', 30_000);
  });

  agentTest(sut, "a running group's usage, read from its containers' cgroups at an interval, reaches the control plane through the data plane", async (h, fake) => {
    let cpu = 0;
    fake.containers.usageOf = (id) => ({ cpuNanos: (cpu += 1e6), memoryBytes: 4096, ...(id.endsWith('web') && { rxBytes: 10, txBytes: 20 }) });
    await h.place(placedSpec(U1, 1, { containers: [testContainer('web'), testContainer('side')] }));
    await h.place(placedSpec(U2, 1, { state: 'Stopped' }));
    await statusWhere(h, U1, 'Running', (x) => x.state === 'Running');
    const [first, second] = await waitFor('two readings of U1', async () => {
      const r = await h.dataPlane().usage(U1, 0);
      return r.length >= 2 && r;
    });
    assert.deepEqual(Object.keys(first.containers).sort(), ['side', 'web']);
    assert.equal(first.containers.web.memoryBytes, 4096);
    assert.deepEqual([first.uid, first.rxBytes, first.txBytes], [U1, 10, 20]);
    assert.ok(second.at > first.at && second.containers.web.cpuNanos > first.containers.web.cpuNanos, 'the counters are read afresh each time');
    assert.ok((await h.dataPlane().usage(U1, second.at)).every((r) => r.at >= second.at), 'only the readings since the time asked');
    assert.deepEqual(await h.dataPlane().usage(U2, 0), [], 'a stopped group uses nothing');
    await h.unplace(U1);
    await waitFor('the removal reported', () => h.removed().includes(U1));
    assert.deepEqual(await h.dataPlane().usage(U1, 0), [], 'a group gone is forgotten');
  });

  agentTest(sut, "the data plane's errors reach the control plane as themselves", async (h) => {
    await h.place(placedSpec(U1, 1, { restartPolicy: 'Never', containers: [testContainer('main'), testContainer('side')] }));
    await statusWhere(h, U1, 'Running', (x) => x.state === 'Running');
    assert.match(await h.dataPlane().logs(U1, 'main', {}), new RegExp(containerId(U1, 1, 'main')));
    const caught = async (p: Promise<unknown>) => p.then(() => undefined, (e) => e as BerthError);
    const notFound = await caught(h.dataPlane().logs(U1, 'ghost', {}));
    assert.ok(notFound instanceof BerthError);
    assert.deepEqual([notFound.code, notFound.status, notFound.target], [Codes.ContainerNotFound, 404, 'containerName']);
    await h.place(placedSpec(U1, 2, { state: 'Stopped', restartPolicy: 'Never', containers: [testContainer('main'), testContainer('side')] }));
    await statusWhere(h, U1, 'Stopped', (x) => x.generation === 2 && x.state === 'Stopped');
    const notRunning = await caught(h.dataPlane().exec(U1, 'main', ['true']));
    assert.deepEqual([notRunning?.code, notRunning?.status], [Codes.ContainerGroupNotRunning, 409]);
  });

  agentTest(sut, 'with the control plane out of reach the host runs on; once it is back, what changed meanwhile is caught up with and what happened meanwhile is reported', async (h, fake, t) => {
    if (!h.controlPlaneAway) return t.skip('this link cannot be cut');
    await h.place(placedSpec(U1, 1));
    await h.place(placedSpec(U2, 1));
    await statusWhere(h, U2, 'Running', (x) => x.state === 'Running');
    await statusWhere(h, U1, 'Running', (x) => x.state === 'Running');
    const away = await h.controlPlaneAway();
    fake.containers.exit(containerId(U1, 1, 'main'), 1);
    await waitFor('U1 restarted on the host', () => fake.containers.containers.get(containerId(U1, 1, 'main'))?.status.state === 'running');
    await h.unplace(U2);
    await h.place(placedSpec(U3, 1));
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(fake.containers.containers.has(containerId(U2, 1, 'main')), 'the host knows nothing of what changed while the control plane was away: U2 runs on');
    assert.equal((await h.status(U1))?.containers.main.restartCount, 0, 'nor did its restart reach the control plane');
    await away.back();
    await statusWhere(h, U1, 'restarted, reported once back', (x) => x.containers.main.restartCount === 1);
    await waitFor('U2 reported removed', () => h.removed().includes(U2));
    await statusWhere(h, U3, 'Running', (x) => x.state === 'Running');
    assert.equal(fake.containers.containers.has(containerId(U2, 1, 'main')), false);
  });
}
