// The scheduler's filters and scores, decision by decision, on hosts and groups made up for each case.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Scheduler } from './scheduler.js';
import type { GroupDemand, HostInfo, PlacementRules } from './types.js';

const host = (name: string, o: Partial<HostInfo> = {}): HostInfo => ({ name, labels: {}, allocatable: { cpu: 4, memoryGB: 8 }, ready: true, ...o });
let uids = 0;
const group = (name: string, o: Partial<GroupDemand> & { rules?: PlacementRules } = {}): GroupDemand =>
  ({ uid: `u${++uids}`, subscriptionId: 'sub-a', name, tags: {}, cpu: 1, memoryGB: 1, ports: [], zones: [], ...o });
/** Decides and assumes the decision, as the service does once its write succeeded. */
const place = (s: Scheduler, g: GroupDemand) => {
  const d = s.decide(g);
  if ('host' in d) s.setPlaced(d.host, g);
  return d;
};
const hostOf = (s: Scheduler, g: GroupDemand) => {
  const d = place(s, g);
  return 'host' in d ? d.host : d.unschedulable;
};

test("a host's subnet is a resource too: each group takes one of its addresses, and one with none left takes no more (FailedScheduling says so)", () => {
  const s = new Scheduler();
  s.setHost(host('h1', { allocatable: { cpu: 100, memoryGB: 100, addresses: 2 } }));
  s.setHost(host('h2', { allocatable: { cpu: 100, memoryGB: 100, addresses: 1 } }));
  const placed = ['a', 'b', 'c'].map((n) => group(n, { cpu: 0.1, memoryGB: 0.1 }));
  const hosts = placed.map((g) => hostOf(s, g));
  assert.deepEqual([...hosts].sort(), ['h1', 'h1', 'h2']);
  assert.deepEqual(s.decide(group('d', { cpu: 0.1, memoryGB: 0.1 })), { unschedulable: '0/2 hosts are available: 2 no free address.' });
  // a group that goes gives its address back
  s.forget(placed[0].uid);
  assert.equal(hostOf(s, group('e', { cpu: 0.1, memoryGB: 0.1 })), hosts[0]);
});

test('resources filter hosts; Spread takes the emptiest, BinPack the fullest that fits', () => {
  const s = new Scheduler();
  s.setHost(host('h1'));
  s.setHost(host('h2', { allocatable: { cpu: 8, memoryGB: 16 } }));
  s.setHost(host('h3', { ready: false }));
  assert.equal(hostOf(s, group('a', { cpu: 3 })), 'h2', 'spread: the bigger host is emptier');
  assert.equal(hostOf(s, group('b', { cpu: 3 })), 'h1');
  assert.equal(hostOf(s, group('c', { cpu: 2 })), 'h2', 'h1 has 1 cpu left');
  const d = s.decide(group('d', { cpu: 4 }));
  assert.deepEqual(d, { unschedulable: '0/3 hosts are available: 2 insufficient cpu, 1 not ready.' });

  const b = new Scheduler({ strategy: 'BinPack' });
  b.setHost(host('h1'));
  b.setHost(host('h2'));
  const first = hostOf(b, group('x', { cpu: 1 }));
  assert.equal(hostOf(b, group('y', { cpu: 1 })), first, 'bin-pack fills the host it began');
  assert.notEqual(hostOf(b, group('z', { cpu: 1, rules: { strategy: 'Spread' } })), first, "a group's own strategy wins");
});

test('required anti-affinity puts 3 groups on 3 hosts and the 4th waits with its reason; affinity keeps two together', () => {
  const s = new Scheduler();
  for (const h of ['h1', 'h2', 'h3']) s.setHost(host(h));
  const apart: PlacementRules = { antiAffinity: [{ selector: { tags: { app: 'web' } }, scope: 'Host', required: true }] };
  const hosts = ['w1', 'w2', 'w3'].map((n) => hostOf(s, group(n, { tags: { app: 'web' }, rules: apart })));
  assert.deepEqual([...hosts].sort(), ['h1', 'h2', 'h3']);
  assert.deepEqual(s.decide(group('w4', { tags: { app: 'web' }, rules: apart })),
    { unschedulable: "0/3 hosts are available: 3 didn't match the group's anti-affinity rules." });
  // another subscription's groups are invisible to the rule: a tenant's placement never depends on another's
  assert.equal('host' in s.decide(group('w4', { subscriptionId: 'sub-b', tags: { app: 'web' }, rules: apart })), true);

  const near: PlacementRules = { affinity: [{ selector: { names: ['w2'] }, scope: 'Host', required: true }] };
  assert.equal(hostOf(s, group('cache', { rules: near })), hosts[1]);
  // the first of a set that must run together goes anywhere; the others follow it
  const together: PlacementRules = { affinity: [{ selector: { tags: { set: 'db' } }, scope: 'Host', required: true }] };
  const first = hostOf(s, group('db1', { tags: { set: 'db' }, rules: together }));
  assert.equal(hostOf(s, group('db2', { tags: { set: 'db' }, rules: together })), first);
  // a required affinity to groups that do not exist (and does not select itself) cannot be met
  assert.match(JSON.stringify(s.decide(group('lonely', { rules: { affinity: [{ selector: { names: ['ghost'] }, scope: 'Host', required: true }] } }))), /unschedulable/);
});

test('zones: ACI zones filter, zone-scoped rules spread or gather across zones', () => {
  const s = new Scheduler();
  for (const [h, z] of [['a1', '1'], ['a2', '1'], ['b1', '2'], ['c1', '3']]) s.setHost(host(h, { zone: z }));
  assert.equal(hostOf(s, group('pinned', { zones: ['2'] })), 'b1');
  assert.deepEqual(s.decide(group('nowhere', { zones: ['9'] })), { unschedulable: '0/4 hosts are available: 4 not in the requested zones.' });
  const spread: PlacementRules = { antiAffinity: [{ selector: { tags: { tier: 'api' } }, scope: 'Zone', required: true }] };
  const zonesUsed = ['x', 'y', 'z'].map((n) => {
    const d = place(s, group(n, { tags: { tier: 'api' }, rules: spread }));
    return 'zone' in d ? d.zone : undefined;
  });
  assert.deepEqual([...zonesUsed].sort(), ['1', '2', '3']);
  const sameZone: PlacementRules = { affinity: [{ selector: { names: ['pinned'] }, scope: 'Zone', required: true }] };
  assert.equal(hostOf(s, group('near-pinned', { rules: sameZone })), 'b1');
});

test('host labels and host ports filter; preferred rules weigh in the score', () => {
  const s = new Scheduler();
  s.setHost(host('gpu', { labels: { accel: 'gpu' } }));
  s.setHost(host('plain'));
  assert.equal(hostOf(s, group('needs', { rules: { hostLabels: { accel: 'gpu' } } })), 'gpu');
  assert.equal(hostOf(s, group('web1', { ports: ['TCP/80'] })), 'plain');
  assert.equal(hostOf(s, group('web2', { ports: ['TCP/80'] })), 'gpu', 'port 80 is taken on plain');
  assert.deepEqual(s.decide(group('web3', { ports: ['TCP/80'] })), { unschedulable: '0/2 hosts are available: 2 host port already in use.' });
  assert.equal(hostOf(s, group('web4', { ports: ['UDP/80'] })) !== undefined, true, 'another protocol is another port');

  const p = new Scheduler();
  p.setHost(host('h1'));
  p.setHost(host('h2', { allocatable: { cpu: 64, memoryGB: 128 } }));
  hostOf(p, group('anchor', { cpu: 1 }));
  const anchorHost = p.hostOf('u' + uids)!;
  const prefers: PlacementRules = { affinity: [{ selector: { names: ['anchor'] }, scope: 'Host', required: false, weight: 100 }] };
  assert.equal(hostOf(p, group('follower', { rules: prefers })), anchorHost, 'a heavy preference beats spreading');
  p.forget('u' + uids);
  assert.equal(p.groupsOn(anchorHost).length, 1, 'forgetting a decision frees its place');
});

test('a large cluster is searched in part, yet a single feasible host is always found', () => {
  const s = new Scheduler();
  for (let i = 0; i < 5000; i++) s.setHost(host(`h${i}`, { allocatable: { cpu: i === 4321 ? 8 : 1, memoryGB: 8 } }));
  assert.equal(hostOf(s, group('big', { cpu: 4 })), 'h4321');
  // with many feasible hosts, successive decisions start where the last search stopped: no host is favoured
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(hostOf(s, group(`small${i}`, { cpu: 0.5 })));
  assert.ok(seen.size > 150, `${seen.size} distinct hosts`);
});

test("the ports a host keeps for its own sockets keep groups publishing them away; they take none of its room, and a group's own port stays its own when they change", () => {
  const s = new Scheduler();
  s.setHost(host('h1', { allocatable: { cpu: 4, memoryGB: 8, addresses: 1 } }));
  s.setHost(host('h2', { allocatable: { cpu: 1, memoryGB: 8 } }));
  s.setHeldPorts('h1', ['TCP/22', 'TCP/80']);
  assert.equal(hostOf(s, group('a', { ports: ['TCP/80'] })), 'h2', 'the emptier host keeps the port');
  assert.deepEqual(s.decide(group('b', { ports: ['TCP/80'] })), { unschedulable: '0/2 hosts are available: 1 host port already in use, 1 insufficient cpu.' });
  // held ports count no address: the only one of h1 is still free
  assert.equal(hostOf(s, group('c', { ports: ['UDP/80'] })), 'h1');
  s.setHeldPorts('h1', []);
  s.setHeldPorts('h2', ['TCP/80']);
  // h2's group keeps its port: a host socket there now changes nothing of it, and taking it back frees nothing
  s.setHeldPorts('h2', []);
  assert.deepEqual(s.decide(group('d', { cpu: 0, ports: ['TCP/80'] })), { unschedulable: '0/2 hosts are available: 1 no free address, 1 host port already in use.' });
});
