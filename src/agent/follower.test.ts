// The spec follower between a link the test drives and a real agent over a fake runtime (the real links run the agent contract suite: src/server-agent.test.ts, test/cluster/agent-contract.test.ts): fencing by generation, resets, statuses in order across failed reports, removals and registrations retried until they land.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BerthError, Codes } from '../lib/errors.js';
import { Agent } from './agent.js';
import { SpecFollower } from './follower.js';
import { containerId } from './ids.js';
import type { ControlPlaneLink, HostRegistration, HostResume, SpecEvent } from './link.js';
import type { PlacedHostSpec, PublishedPort } from './spec.js';
import { fakeRuntime, placedSpec, waitFor } from './testing.js';
import type { GroupStatus } from './types.js';

const unavailable = () => new BerthError(Codes.ServiceUnavailable, 'the replica went away', 503);

/** A control plane the test plays: it sends spec events, and sees reports (refusing the next `failReports`). */
class ScriptedLink implements ControlPlaneLink {
  onEvent?: (e: SpecEvent) => void;
  reports: GroupStatus[][] = [];
  removed: string[] = [];
  registered = 0;
  /** Each report waits for this (a slow replica) before it lands or fails. */
  gate: Promise<void> = Promise.resolve();
  failReports = 0;
  failRemovals = 0;
  failRegistrations = 0;
  resumeWith: HostResume = { statuses: [], removing: [] };
  /** A link of a remote host takes its held ports (set by the tests that look at them). */
  reportHeldPorts?: (ports: PublishedPort[]) => Promise<void>;
  async register(_h: HostRegistration) {
    this.registered++;
    if (this.failRegistrations-- > 0) throw unavailable();
    return { leaseTtlMs: 60_000 };
  }
  async heartbeat() {}
  async resume() {
    return this.resumeWith;
  }
  watchSpecs(_from: number, onEvent: (e: SpecEvent) => void) {
    this.onEvent = onEvent;
    return () => {};
  }
  async reportStatuses(s: GroupStatus[]) {
    await this.gate;
    if (this.failReports-- > 0) throw unavailable();
    this.reports.push(s);
  }
  async reportRemoved(uid: string) {
    if (this.failRemovals-- > 0) throw unavailable();
    this.removed.push(uid);
  }
  async close() {}
  /** The last state each group was reported in. */
  lastStates() {
    return Object.fromEntries(this.reports.flat().map((s) => [s.uid, `${s.state} g${s.generation}`]));
  }
}

const registration = { name: 'h1', address: '10.0.0.1', labels: {}, allocatable: { cpu: 1, memoryGB: 1 }, agentVersion: 't' };
const A = 'f00000000001';
const B = 'f00000000002';
const C = 'f00000000003';
const D = 'f00000000004';

/** A follower of `link` for a real agent over a fake runtime; started once the test sends the first set. */
function follow(link: ScriptedLink) {
  const fake = fakeRuntime();
  const agent = new Agent({ runtime: fake.runtime, backoffMs: 20, retryMs: 20, stopGraceSeconds: 0, pollMs: 60_000 });
  const follower = new SpecFollower(link, agent, () => registration, { log: () => {}, statusBatchMs: 5, retryMs: 5 });
  const started = follower.start();
  return { fake, agent, follower, started, close: async () => (await agent.close(), await follower.close()) };
}

/** A follower of `link` that has adopted `specs`, its first set (sent at `revision`). */
async function followFrom(link: ScriptedLink, specs: PlacedHostSpec[], revision = 1) {
  const f = follow(link);
  await waitFor('following', () => link.onEvent);
  link.onEvent!({ type: 'reset', revision, specs });
  await f.started;
  return f;
}

test('the first set is adopted; later events apply, never an older generation than one seen; a later set removes what it lacks', async () => {
  const link = new ScriptedLink();
  const f = await followFrom(link, [placedSpec(A, 2), placedSpec(B, 1)], 5);
  await waitFor('A and B running', () => link.lastStates()[A] === 'Running g2' && link.lastStates()[B] === 'Running g1');
  link.onEvent!({ type: 'put', revision: 6, placed: placedSpec(A, 3) });
  link.onEvent!({ type: 'put', revision: 7, placed: placedSpec(A, 2) }); // a stale copy (a replica behind): fenced
  link.onEvent!({ type: 'put', revision: 8, placed: placedSpec(C, 1) });
  link.onEvent!({ type: 'delete', revision: 9, uid: B });
  await waitFor('A at g3, C running, B removed', () => link.lastStates()[A] === 'Running g3' && link.lastStates()[C] === 'Running g1' && link.removed.includes(B));
  assert.ok(f.fake.containers.containers.has(containerId(A, 3, 'main')) && !f.fake.containers.containers.has(containerId(A, 2, 'main')), 'generation 2 never ran again');
  // the link could not resume: a whole set again, without C
  link.onEvent!({ type: 'reset', revision: 20, specs: [placedSpec(A, 3), placedSpec(D, 1)] });
  await waitFor('C removed, D running', () => link.removed.includes(C) && link.lastStates()[D] === 'Running g1');
  assert.deepEqual([...f.fake.containers.containers.keys()].sort(), [containerId(A, 3, 'main'), containerId(D, 1, 'main')].sort());
  await f.close();
});

test('the first set adopts what the control plane still holds: the last statuses continue, and groups taken off while the agent was away are removed and reported', async () => {
  const link = new ScriptedLink();
  link.resumeWith = { statuses: [], removing: [B] };
  const f = await followFrom(link, [placedSpec(A, 1)], 3);
  await waitFor('B reported removed', () => link.removed.includes(B));
  assert.equal(link.registered, 1);
  await f.close();
});

test('statuses are sent in batches, one report at a time; a failed one is sent again unless a newer status of its group came meanwhile', async () => {
  const link = new ScriptedLink();
  const f = await followFrom(link, []);
  let open!: () => void;
  link.gate = new Promise((r) => (open = r));
  link.failReports = 1;
  link.onEvent!({ type: 'put', revision: 2, placed: placedSpec(A, 1) });
  link.onEvent!({ type: 'put', revision: 3, placed: placedSpec(B, 1) });
  await new Promise((r) => setTimeout(r, 50)); // A's and B's first statuses are on their way, held at the gate
  link.onEvent!({ type: 'put', revision: 4, placed: placedSpec(A, 2, { state: 'Stopped' }) });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(link.reports.length, 0, 'one report at a time: the newer statuses wait for the first');
  open(); // the first report fails: what it carried of A is older than what came since; B's goes again
  await waitFor('A stopped and B running delivered', () => link.lastStates()[A] === 'Stopped g2' && link.lastStates()[B] === 'Running g1');
  const delivered = link.reports.flat();
  const lastA = delivered.map((s, i) => [s, i] as const).filter(([s]) => s.uid === A).at(-1)![1];
  assert.ok(!delivered.slice(lastA + 1).some((s) => s.uid === A), "nothing older of A lands after its newest");
  await f.close();
});

test('removals are reported until they land', async () => {
  const link = new ScriptedLink();
  const f = await followFrom(link, [placedSpec(A, 1), placedSpec(B, 1)]);
  link.failRemovals = 2;
  link.onEvent!({ type: 'delete', revision: 2, uid: A });
  link.onEvent!({ type: 'delete', revision: 3, uid: B });
  await waitFor('both reported', () => link.removed.length === 2);
  assert.deepEqual(link.removed.sort(), [A, B]);
  await f.close();
});

test('a registration the control plane cannot answer is retried; one it refuses is not', async () => {
  const link = new ScriptedLink();
  link.failRegistrations = 2;
  const f = follow(link);
  await waitFor('following after two failed registrations', () => link.onEvent);
  assert.equal(link.registered, 3);
  link.onEvent!({ type: 'reset', revision: 1, specs: [] });
  await f.started;
  await f.close();
  const refusing = new ScriptedLink();
  refusing.register = async () => {
    throw new BerthError(Codes.AuthenticationFailed, 'not this host', 401);
  };
  const g = follow(refusing);
  await assert.rejects(g.started, /not this host/);
  await g.close();
});

test("the host's held ports are reported before it registers, again whenever they change and only then; a lost registration sends them again", async () => {
  const link = new ScriptedLink();
  const log: string[] = [];
  let failHeld = 1;
  link.register = async () => {
    log.push('register');
    return { leaseTtlMs: 60_000, heartbeatMs: 20 };
  };
  link.reportHeldPorts = async (ports) => {
    if (failHeld-- > 0) throw unavailable();
    log.push(`held ${ports.map((p) => `${p.protocol}/${p.port}`).join(',')}`);
  };
  const fake = fakeRuntime();
  fake.network.hostPorts = [{ protocol: 'TCP', port: 22 }];
  const agent = new Agent({ runtime: fake.runtime, backoffMs: 20, retryMs: 20, stopGraceSeconds: 0, pollMs: 60_000 });
  const follower = new SpecFollower(link, agent, () => registration, { log: () => {}, heldPortsEveryMs: 10 });
  const started = follower.start();
  await waitFor('following', () => link.onEvent);
  link.onEvent!({ type: 'reset', revision: 1, specs: [] });
  await started;
  // the first report failed (the control plane was away): it is sent at the next reading
  await waitFor('held ports reported', () => log.includes('held TCP/22'));
  assert.deepEqual(log.slice(0, 1), ['register']);
  fake.network.hostPorts = [{ protocol: 'TCP', port: 22 }, { protocol: 'UDP', port: 53 }];
  await waitFor('the change reported', () => log.includes('held TCP/22,UDP/53'));
  await new Promise((r) => setTimeout(r, 100)); // ten readings with nothing new
  assert.deepEqual(log, ['register', 'held TCP/22', 'held TCP/22,UDP/53'], 'an unchanged set is not sent again');
  // a control plane that lost the registration (a store started anew) lost the ports too
  link.heartbeat = async () => {
    link.heartbeat = async () => {};
    throw new BerthError(Codes.ResourceNotFound, 'not registered', 404);
  };
  await waitFor('sent again after registering again', () => log.length === 5 && log[3] === 'register' && log[4] === 'held TCP/22,UDP/53');
  await agent.close();
  await follower.close();

  // before the host turns Ready: when the control plane answers at once, the ports land first
  const early = new ScriptedLink();
  const order: string[] = [];
  early.register = async () => (order.push('register'), { leaseTtlMs: 60_000 });
  early.reportHeldPorts = async () => void order.push('held');
  const earlyAgent = new Agent({ runtime: fakeRuntime().runtime, pollMs: 60_000 });
  const f = new SpecFollower(early, earlyAgent, () => registration, { log: () => {} });
  const s = f.start();
  await waitFor('following', () => early.onEvent);
  early.onEvent!({ type: 'reset', revision: 1, specs: [] });
  await s;
  assert.deepEqual(order, ['held', 'register']);
  await earlyAgent.close();
  await f.close();
});

test('a group refused for a port the host keeps is reported, then the held ports are sent again even when unchanged', async () => {
  const link = new ScriptedLink();
  const order: string[] = [];
  link.reportHeldPorts = async (ports) => void order.push(`held ${ports.map((p) => `${p.protocol}/${p.port}`).join(',')}`);
  link.reportStatuses = async (s) => void order.push(...s.map((x) => `status ${x.provisioning} ${x.error?.code ?? ''}`.trim()));
  const fake = fakeRuntime();
  fake.network.hostPorts = [{ protocol: 'TCP', port: 22 }];
  const agent = new Agent({ runtime: fake.runtime, backoffMs: 60_000, retryMs: 60_000, stopGraceSeconds: 0, pollMs: 60_000 });
  const follower = new SpecFollower(link, agent, () => registration, { log: () => {}, statusBatchMs: 5, heldPortsEveryMs: 60_000 });
  const started = follower.start();
  await waitFor('following', () => link.onEvent);
  link.onEvent!({ type: 'reset', revision: 1, specs: [] });
  await started;
  assert.deepEqual(order, ['held TCP/22']);
  // placed here with port 22, which the host's own sockets hold (taken after its last report)
  link.onEvent!({ type: 'put', revision: 2, placed: placedSpec(A, 1, { ports: [{ protocol: 'TCP', port: 22 }] }) });
  await waitFor('the refusal, then the ports', () => order.includes('status Failed PortAlreadyInUse') && order.lastIndexOf('held TCP/22') > order.indexOf('status Failed PortAlreadyInUse'), 3000);
  await agent.close();
  await follower.close();
});
