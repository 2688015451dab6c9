// Unit tests of the agent's reconcile against fakes of the runtime: placed specs in, runtime actions and statuses out (test/e2e runs the real runtime).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Codes, isBerthError } from '../lib/errors.js';
import { Agent } from './agent.js';
import { containerId, sandboxId } from './ids.js';
import { fakeRuntime, placedSpec, testContainer, waitFor, type FakeRuntime } from './testing.js';
import type { GroupStatus } from './types.js';

const U1 = 'a00000000001';
const U2 = 'a00000000002';

/** An agent over a fake runtime, with what it reported (latest status per group, removals). */
async function agentOn(fake: FakeRuntime = fakeRuntime(), o: { backoffMs?: number; retryMs?: number } = {}) {
  const agent = new Agent({ runtime: fake.runtime, backoffMs: o.backoffMs ?? 20, maxBackoffMs: 200, retryMs: o.retryMs ?? 20, stopGraceSeconds: 0, pollMs: 60_000 });
  const statuses = new Map<string, GroupStatus>();
  const reports: GroupStatus[] = [];
  const removed: string[] = [];
  agent.onStatus((s) => {
    statuses.set(s.uid, s);
    reports.push(s);
  });
  agent.onRemoved((uid) => removed.push(uid));
  await agent.adopt([]);
  return { agent, fake, statuses, reports, removed, status: (uid: string) => statuses.get(uid) };
}

const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e) => (isBerthError(e) ? e.code : String(e)));

describe('Agent', () => {
  it('runs a placed spec as the runtime must: image, storage, network with its ports and segment (and its tag), then the containers as specified', async () => {
    const { agent, fake, status } = await agentOn();
    const spec = placedSpec(U1, 1, {
      ports: [{ port: 8080, protocol: 'TCP' }], network: { key: 'seg1', tag: 7 }, volumes: [{ name: 'data', emptyDir: {} }],
      containers: [testContainer('web', { command: ['httpd', '-f'], env: [{ name: 'A', value: '1' }], cpu: 1.5, memoryBytes: 512 << 20, volumeMounts: [{ name: 'data', mountPath: '/data', readOnly: false }] })],
    });
    agent.apply(spec);
    const s = await waitFor('Running', () => status(U1)?.state === 'Running' && status(U1));
    assert.equal(s.provisioning, 'Succeeded');
    assert.equal(s.ip, '10.0.0.1');
    assert.deepEqual(s.containers.web.events.map((e) => e.name), ['Pulling', 'Pulled', 'Created', 'Started']);
    const sid = sandboxId(U1, 1);
    assert.deepEqual(fake.network.sandboxes.get(sid)?.ports, [{ port: 8080, protocol: 'TCP' }]);
    assert.equal(fake.network.sandboxes.get(sid)?.segment, 'seg1');
    assert.equal(fake.network.sandboxes.get(sid)?.tag, 7, "the segment's cluster-wide tag");
    assert.ok(fake.storage.claimed.has(sid));
    assert.deepEqual(fake.storage.volumes.get(sid), [{ name: 'data', emptyDir: {} }]);
    const run = fake.containers.containers.get(containerId(U1, 1, 'web'))!.spec;
    assert.deepEqual(
      { command: run.command, env: run.env, cpu: run.cpuLimit, mem: run.memoryLimitBytes, hostname: run.hostname, netns: run.netnsPath, ip: run.ip, mounts: run.mounts },
      { command: ['httpd', '-f'], env: { A: '1' }, cpu: 1.5, mem: 512 << 20, hostname: `group-${U1}`, netns: `/run/netns/berth-${sid}`, ip: '10.0.0.1', mounts: [{ source: `/disks/${sid}/volumes/data`, destination: '/data', readOnly: false }] },
    );
    assert.deepEqual(fake.containers.actions, [`prepare ${containerId(U1, 1, 'web')}`, `start ${containerId(U1, 1, 'web')}`]);
    await agent.close();
  });

  it('restarts by policy with a backoff that doubles: Always and OnFailure restart a failure, Never and a clean exit under OnFailure end the group', async () => {
    const { agent, fake, status } = await agentOn();
    agent.apply(placedSpec(U1, 1, { restartPolicy: 'Always' }));
    const id = containerId(U1, 1, 'main');
    await waitFor('running', () => status(U1)?.state === 'Running');
    fake.containers.exit(id, 1);
    await waitFor('a restart', () => status(U1)?.containers.main.restartCount === 1 && status(U1)?.containers.main.currentState.state === 'Running');
    assert.equal(status(U1)!.containers.main.previousState?.exitCode, 1);
    fake.containers.exit(id, 1);
    const twice = await waitFor('a second restart', () => status(U1)?.containers.main.restartCount === 2 && status(U1));
    assert.ok(twice.containers.main.events.some((e) => e.name === 'BackOff'), 'a repeated restart backs off and says so');

    agent.apply(placedSpec(U2, 1, { restartPolicy: 'OnFailure' }));
    await waitFor('U2 running', () => status(U2)?.state === 'Running');
    fake.containers.exit(containerId(U2, 1, 'main'), 0);
    const ok = await waitFor('Succeeded', () => status(U2)?.state === 'Succeeded' && status(U2));
    assert.equal(ok.containers.main.restartCount, 0);
    assert.equal(ok.containers.main.currentState.detailStatus, 'Completed');
    await agent.close();

    const never = await agentOn();
    never.agent.apply(placedSpec(U1, 1, { restartPolicy: 'Never' }));
    await waitFor('running', () => never.status(U1)?.state === 'Running');
    never.fake.containers.exit(containerId(U1, 1, 'main'), 3, { oomKilled: true });
    const failed = await waitFor('Failed', () => never.status(U1)?.state === 'Failed' && never.status(U1));
    assert.equal(failed.containers.main.currentState.detailStatus, 'OOMKilled');
    assert.ok(failed.containers.main.events.some((e) => e.name === 'OOMKilled'));
    assert.equal(never.fake.containers.actions.filter((a) => a.startsWith('start')).length, 1);
    await never.agent.close();
  });

  it('runs init containers one after another before the containers; a failed one is retried under OnFailure and fails the group under Never', async () => {
    const { agent, fake, status } = await agentOn();
    fake.containers.onStart = (id) => {
      if (id.endsWith('-first') || id.endsWith('-second')) setImmediate(() => fake.containers.exit(id, 0));
    };
    agent.apply(placedSpec(U1, 1, { initContainers: [testContainer('first'), testContainer('second')] }));
    const s = await waitFor('Running', () => status(U1)?.state === 'Running' && status(U1));
    assert.deepEqual(fake.containers.actions.filter((a) => a.startsWith('start')).map((a) => a.split('-').pop()), ['first', 'second', 'main']);
    assert.equal(s.initContainers!.first.currentState.exitCode, 0);

    let tries = 0;
    fake.containers.onStart = (id) => {
      if (id.endsWith('-flaky')) setImmediate(() => fake.containers.exit(id, ++tries === 1 ? 1 : 0));
    };
    agent.apply(placedSpec(U2, 1, { restartPolicy: 'OnFailure', initContainers: [testContainer('flaky')] }));
    const retried = await waitFor('Running after a retry', () => status(U2)?.state === 'Running' && status(U2));
    assert.equal(retried.initContainers!.flaky.restartCount, 1);
    assert.equal(retried.initContainers!.flaky.previousState?.exitCode, 1);
    await agent.close();

    const never = await agentOn();
    never.fake.containers.onStart = (id) => {
      if (id.endsWith('-setup')) setImmediate(() => never.fake.containers.exit(id, 4));
    };
    never.agent.apply(placedSpec(U1, 1, { restartPolicy: 'Never', initContainers: [testContainer('setup')] }));
    const failed = await waitFor('Failed', () => never.status(U1)?.state === 'Failed' && never.status(U1));
    assert.equal(failed.containers.main.currentState.state, 'Waiting', 'the containers never start');
    assert.ok(!never.fake.containers.actions.some((a) => a.endsWith('-main')));
    await never.agent.close();
  });

  it('a newer generation replaces everything of the older; an older one placed after it is never run', async () => {
    const { agent, fake, status } = await agentOn();
    agent.apply(placedSpec(U1, 1));
    await waitFor('gen 1 running', () => status(U1)?.state === 'Running');
    agent.apply(placedSpec(U1, 2, { containers: [testContainer('main', { image: 'registry.test/app:2' })] }));
    await waitFor('gen 2 running', () => status(U1)?.generation === 2 && status(U1)?.state === 'Running');
    assert.deepEqual([...fake.containers.containers.keys()], [containerId(U1, 2, 'main')]);
    assert.deepEqual([...fake.network.sandboxes.keys()], [sandboxId(U1, 2)]);
    assert.deepEqual([...fake.storage.claimed], [sandboxId(U1, 2)]);
    agent.apply(placedSpec(U1, 1));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(status(U1)!.generation, 2);
    assert.deepEqual([...fake.containers.containers.keys()], [containerId(U1, 2, 'main')], 'fenced: nothing of generation 1 runs again');
    await agent.close();
  });

  it('a stopped spec stops the containers and says Stopped; removal tears everything down, then tells', async () => {
    const { agent, fake, status, removed } = await agentOn();
    agent.apply(placedSpec(U1, 1, { ports: [{ port: 80, protocol: 'TCP' }] }));
    await waitFor('running', () => status(U1)?.state === 'Running');
    agent.apply(placedSpec(U1, 2, { state: 'Stopped', ports: [{ port: 80, protocol: 'TCP' }] }));
    const stopped = await waitFor('Stopped', () => status(U1)?.generation === 2 && status(U1)?.state === 'Stopped' && status(U1));
    assert.equal(stopped.containers.main.currentState.detailStatus, 'Stopped');
    assert.equal(fake.containers.containers.size, 0);
    assert.equal(fake.network.sandboxes.size, 0, 'a stopped group holds no address and publishes no port');
    agent.apply(placedSpec(U1, 3));
    await waitFor('running again', () => status(U1)?.generation === 3 && status(U1)?.state === 'Running');
    agent.remove(U1);
    await waitFor('removed', () => removed.includes(U1));
    assert.deepEqual([fake.containers.containers.size, fake.network.sandboxes.size, fake.storage.claimed.size], [0, 0, 0]);
    await agent.close();
  });

  it('a provisioning that fails (a pull) or outruns its timeout (a stalled pull) is Failed with why, and leaves nothing', async () => {
    const { agent, fake, status } = await agentOn();
    fake.images.missing.add('registry.test/missing:1');
    agent.apply(placedSpec(U1, 1, { containers: [testContainer('main', { image: 'registry.test/missing:1' })] }));
    const failed = await waitFor('Failed', () => status(U1)?.provisioning === 'Failed' && status(U1));
    assert.equal(failed.error?.code, Codes.InaccessibleImage);
    assert.equal(failed.state, 'Failed');
    fake.images.stalled.add('registry.test/stalled:1');
    agent.apply(placedSpec(U2, 1, { provisioningTimeoutSeconds: 0.2, containers: [testContainer('main', { image: 'registry.test/stalled:1' })] }));
    const late = await waitFor('timed out', () => status(U2)?.provisioning === 'Failed' && status(U2));
    assert.equal(late.error?.code, Codes.ResourceDeploymentFailure);
    assert.match(late.error!.message, /not provisioned within 0.2 s .*still pulling image "registry\.test\/stalled:1"/);
    assert.deepEqual([fake.containers.containers.size, fake.network.sandboxes.size, fake.storage.claimed.size], [0, 0, 0]);
    await agent.close();
  });

  it('adopts what runs (same containers, no restart) and removes what is not placed, or was left half-started by a crash', async () => {
    const fake = fakeRuntime();
    const first = await agentOn(fake);
    first.agent.apply(placedSpec(U1, 1, { containers: [testContainer('a'), testContainer('b')] }));
    first.agent.apply(placedSpec(U2, 1));
    await waitFor('both running', () => first.status(U1)?.state === 'Running' && first.status(U2)?.state === 'Running');
    const last = first.status(U1)!;
    await first.agent.close();
    // a crash in the middle of restarting b: created, never started
    const b = fake.containers.containers.get(containerId(U1, 1, 'b'))!;
    fake.containers.containers.delete(b.spec.id);
    fake.containers.leaveCreated(b.spec);
    fake.containers.actions.length = 0;

    const again = new Agent({ runtime: fake.runtime, stopGraceSeconds: 0, pollMs: 60_000 });
    const statuses = new Map<string, GroupStatus>();
    again.onStatus((s) => statuses.set(s.uid, s));
    await again.adopt([placedSpec(U1, 1, { containers: [testContainer('a'), testContainer('b')] })], new Map([[U1, last]]));
    assert.ok(!fake.containers.containers.has(containerId(U2, 1, 'main')), 'U2 is not placed here any more');
    assert.equal(fake.network.sandboxes.has(sandboxId(U2, 1)), false);
    const s = await waitFor('b started again', () => statuses.get(U1)?.containers.b.currentState.state === 'Running' && statuses.get(U1));
    assert.deepEqual(fake.containers.actions.filter((x) => x.includes(U1)), [`remove ${containerId(U1, 1, 'b')}`, `prepare ${containerId(U1, 1, 'b')}`, `start ${containerId(U1, 1, 'b')}`]);
    assert.ok(s.containers.b.events.some((e) => e.name === 'Recovering'));
    assert.deepEqual(s.containers.a.events, last.containers.a.events, 'a continues where it was: same events, never restarted');
    await again.close();
  });

  it('probes: a failed liveness probe kills the container and the policy restarts it; readiness shows in detailStatus', async () => {
    const { agent, fake, status } = await agentOn();
    const probe = { initialDelaySeconds: 0, periodSeconds: 0.02, timeoutSeconds: 1, failureThreshold: 2, successThreshold: 1 };
    let healthy = true;
    fake.containers.execExitCode = () => (healthy ? 0 : 1);
    agent.apply(placedSpec(U1, 1, { containers: [testContainer('main', { livenessProbe: { ...probe, exec: { command: ['check'] } }, readinessProbe: { ...probe, httpGet: { path: '/', port: 80, scheme: 'http', headers: [] } } })] }));
    await waitFor('Ready', () => status(U1)?.containers.main.currentState.detailStatus === 'Ready');
    fake.probes.answer = () => ({ ok: false, message: 'HTTP probe failed with statuscode: 503' });
    await waitFor('NotReady', () => status(U1)?.containers.main.currentState.detailStatus === 'NotReady');
    healthy = false;
    const s = await waitFor('restarted', () => status(U1)?.containers.main.restartCount === 1 && status(U1));
    assert.ok(s.containers.main.events.some((e) => e.name === 'Killing' && /failed liveness probe/.test(e.message)));
    assert.ok(fake.containers.actions.includes(`stop ${containerId(U1, 1, 'main')}`));
    healthy = true;
    await agent.close();
  });

  it('a reconcile that fails is retried with backoff and says so; a full disk is told once', async () => {
    const { agent, fake, status } = await agentOn();
    fake.containers.failing.set('start', 1);
    agent.apply(placedSpec(U1, 1, { provisioningTimeoutSeconds: 30 }));
    // the start failed inside provisioning: the group failed; a later generation starts afresh
    await waitFor('Failed', () => status(U1)?.provisioning === 'Failed');
    agent.apply(placedSpec(U1, 2));
    await waitFor('gen 2 running', () => status(U1)?.generation === 2 && status(U1)?.state === 'Running');
    // after provisioning, a failing pass is retried
    fake.containers.failing.set('list', 1);
    fake.containers.failing.set('start', 1);
    fake.storage.fullOnes.add(sandboxId(U1, 2));
    fake.containers.exit(containerId(U1, 2, 'main'), 1);
    const s = await waitFor('running again', () => status(U1)?.containers.main.restartCount === 1 && status(U1)?.containers.main.currentState.state === 'Running' && status(U1));
    assert.ok(s.events.some((e) => e.name === 'FailedSync' && /the runtime failed to start/.test(e.message)));
    assert.equal(s.events.filter((e) => e.name === 'DiskFull').length, 1);
    assert.equal(s.events.find((e) => e.name === 'DiskFull')!.count, 1);
    await agent.close();
  });

  it('serves the data plane of what it runs: logs of the current generation, exec only into a running container', async () => {
    const { agent, fake, status } = await agentOn();
    agent.apply(placedSpec(U1, 1, { restartPolicy: 'Never' }));
    await waitFor('running', () => status(U1)?.state === 'Running');
    assert.equal(await agent.logs(U1, 'main', {}), `log of ${containerId(U1, 1, 'main')}\n`);
    assert.equal(await (await agent.exec(U1, 'main', ['true'])).done.then((r) => r.exitCode), 0);
    assert.equal(await code(agent.logs(U1, 'nope', {})), Codes.ContainerNotFound);
    fake.containers.exit(containerId(U1, 1, 'main'), 0);
    await waitFor('Succeeded', () => status(U1)?.state === 'Succeeded');
    assert.equal(await code(agent.exec(U1, 'main', ['true'])), Codes.ContainerGroupNotRunning);
    assert.deepEqual(await agent.cachedImages(), ['registry.test/app:1']);
    fake.network.hostPorts = [{ port: 22, protocol: 'TCP' }];
    assert.deepEqual(await agent.unavailablePorts([{ port: 22, protocol: 'TCP' }, { port: 80, protocol: 'TCP' }]), [{ port: 22, protocol: 'TCP' }]);
    await agent.close();
  });
});
