// Unit tests of the overlay's plan: peers checked, and the commands that take a given kernel state to what the peers need (overlay.test.ts runs them on the real kernel).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBerthError } from '../../lib/errors.js';
import { parseCidr } from '../../lib/ipv4.js';
import { checkPeers, parseKernel, planPeers, teardownCommands, vtepMacFor, type OverlayKernel, type OverlayPeer, type OverlayShape } from './overlay-plan.js';

const shape: OverlayShape = {
  device: 'vx0',
  bridge: 'br0',
  underlayAddress: '10.250.0.11',
  localSubnet: parseCidr('10.252.1.0/24')!,
  clusterCidr: parseCidr('10.252.0.0/16')!,
  routeTable: 2130,
  rulePriority: 2130,
};
const peer = (i: number): OverlayPeer => ({ name: `h${i}`, underlayAddress: `10.250.0.${10 + i}`, subnet: `10.252.${i}.0/24`, vtepMac: vtepMacFor(`10.250.0.${10 + i}`) });
const empty: OverlayKernel = { routes: [], neighbours: [], fdb: [], rules: [] };

/** The kernel as it is once `commands` ran on `before` (enough of ip's and bridge's semantics for these tests). */
function applied(before: OverlayKernel, commands: { bridge: string[]; ip: string[] }): OverlayKernel {
  const k: OverlayKernel = { routes: [...before.routes], neighbours: [...before.neighbours], fdb: [...before.fdb], rules: [...before.rules] };
  for (const c of commands.bridge) {
    const [verb, mac, , , , dst] = c.split(' ').slice(1);
    k.fdb = k.fdb.filter((e) => !(e.mac === mac && (verb === 'replace' || e.dst === dst)));
    if (verb === 'replace') k.fdb.push({ mac, dst });
  }
  for (const c of commands.ip) {
    const w = c.split(' ');
    const arg = (name: string) => w[w.indexOf(name) + 1];
    if (w[0] === 'neigh') {
      k.neighbours = k.neighbours.filter((n) => n.dst !== w[2]);
      if (w[1] === 'replace') k.neighbours.push({ dst: w[2], lladdr: arg('lladdr') });
    } else if (w[0] === 'route') {
      const type = w[2] === 'unreachable' ? 'unreachable' : 'unicast';
      const dst = type === 'unicast' ? w[2] : w[3];
      k.routes = k.routes.filter((r) => !(r.dst === dst && r.table === arg('table')));
      if (w[1] === 'replace') k.routes.push({ table: arg('table'), type, dst, ...(type === 'unicast' && { gateway: arg('via'), dev: arg('dev') }), onlink: w.includes('onlink') });
    } else if (w[0] === 'rule') {
      const pref = Number(arg('pref'));
      if (w[1] === 'add') k.rules.push({ priority: pref, iif: arg('iif'), table: arg('lookup') });
      else k.rules = k.rules.filter((r) => !(r.priority === pref && r.iif === (w.includes('iif') ? arg('iif') : undefined)));
    }
  }
  return k;
}

const count = (c: { bridge: string[]; ip: string[] }) => c.bridge.length + c.ip.length;

describe('overlay plan', () => {
  it('derives a stable, unicast, locally administered VTEP MAC from the underlay address', () => {
    assert.equal(vtepMacFor('10.250.0.11'), '02:be:0a:fa:00:0b');
    assert.equal(vtepMacFor('192.168.255.1'), '02:be:c0:a8:ff:01');
  });

  it('programs a route, a neighbour and an FDB entry per peer, its underlay address for the bridge, and the rest of the cluster CIDR unreachable', () => {
    const peers = checkPeers(shape, [peer(2), peer(3)]);
    const c = planPeers(shape, peers, empty);
    assert.deepEqual(c.bridge, [
      'fdb replace 02:be:0a:fa:00:0c dev vx0 dst 10.250.0.12 self permanent',
      'fdb replace 02:be:0a:fa:00:0d dev vx0 dst 10.250.0.13 self permanent',
    ]);
    assert.deepEqual(c.ip, [
      'neigh replace 10.252.2.0 lladdr 02:be:0a:fa:00:0c dev vx0 nud permanent',
      'neigh replace 10.252.3.0 lladdr 02:be:0a:fa:00:0d dev vx0 nud permanent',
      'route replace unreachable 10.252.0.0/16 table main proto 213',
      'route replace 10.252.2.0/24 via 10.252.2.0 dev vx0 onlink table main proto 213',
      'route replace 10.250.0.12/32 via 10.252.2.0 dev vx0 onlink table 2130 proto 213',
      'route replace 10.252.3.0/24 via 10.252.3.0 dev vx0 onlink table main proto 213',
      'route replace 10.250.0.13/32 via 10.252.3.0 dev vx0 onlink table 2130 proto 213',
      'rule add iif br0 lookup 2130 pref 2130',
    ]);
    // once applied, the same peers need nothing
    assert.equal(count(planPeers(shape, peers, applied(empty, c))), 0);
  });

  it('converges from any state: removes what a gone peer had, replaces what changed, adds what is missing', () => {
    const before = applied(empty, planPeers(shape, checkPeers(shape, [peer(2), peer(3), peer(4)]), empty));
    // h3 leaves, h4 moves to another underlay address, h5 joins
    const moved = { ...peer(4), underlayAddress: '10.250.0.44' };
    const peers = checkPeers(shape, [peer(2), moved, peer(5)]);
    const c = planPeers(shape, peers, before);
    assert.ok(c.bridge.includes(`fdb del ${peer(3).vtepMac} dev vx0 dst 10.250.0.13 self`));
    assert.ok(c.bridge.includes(`fdb del ${peer(4).vtepMac} dev vx0 dst 10.250.0.14 self`));
    assert.ok(c.bridge.includes(`fdb replace ${peer(4).vtepMac} dev vx0 dst 10.250.0.44 self permanent`));
    assert.ok(c.ip.includes('route del 10.252.3.0/24 table main proto 213'));
    assert.ok(c.ip.includes('route del 10.250.0.13/32 table 2130 proto 213'));
    assert.ok(c.ip.includes('neigh del 10.252.3.0 dev vx0'));
    assert.ok(c.ip.includes('route del 10.250.0.14/32 table 2130 proto 213'));
    assert.ok(!c.ip.some((l) => l.includes('10.252.2.')), 'h2 is left alone');
    const after = applied(before, c);
    assert.equal(count(planPeers(shape, peers, after)), 0);
    assert.deepEqual(after, applied(empty, planPeers(shape, peers, empty)), 'the same state as made from nothing');
  });

  it('leaves alone what is not the overlay\'s, and puts its own rule right', () => {
    const foreign: OverlayKernel = {
      routes: [{ table: 'main', type: 'unicast', dst: '10.9.0.0/16', gateway: '10.0.0.1', dev: 'eth9', onlink: false }],
      neighbours: [],
      fdb: [],
      rules: [{ priority: 100, table: '7' }, { priority: 2130, iif: 'old0', table: '2130' }],
    };
    const c = planPeers(shape, checkPeers(shape, [peer(2)]), foreign);
    assert.ok(!c.ip.some((l) => l.includes('10.9.0.0') || l.includes('pref 100')));
    assert.ok(c.ip.includes('rule del pref 2130 iif old0 lookup 2130'));
    assert.ok(c.ip.includes('rule add iif br0 lookup 2130 pref 2130'));
    const made = applied(empty, planPeers(shape, checkPeers(shape, [peer(2)]), empty));
    const down = teardownCommands(shape, { ...made, routes: [...made.routes, ...foreign.routes] });
    assert.ok(!down.some((l) => l.includes('10.9.0.0')));
    assert.equal(down.filter((l) => l.startsWith('route del')).length, 3);
    assert.ok(down.includes('rule del pref 2130 iif br0 lookup 2130'));
  });

  it('refuses peers that would break routing, before anything is changed', () => {
    const refused = (peers: OverlayPeer[], target: RegExp) =>
      assert.throws(() => checkPeers(shape, peers), (e) => isBerthError(e) && e.code === 'NetworkError' && e.status === 400 && target.test(e.target ?? ''));
    refused([{ ...peer(2), subnet: '10.253.2.0/24' }], /peers\[0\]\.subnet/);
    refused([{ ...peer(2), subnet: '10.252.1.0/25' }], /subnet/);
    refused([peer(2), { ...peer(3), subnet: '10.252.2.128/25' }], /peers\[1\]\.subnet/);
    refused([{ ...peer(2), subnet: '10.252.2.7/24' }], /subnet/);
    refused([{ ...peer(2), underlayAddress: 'h2.example' }], /underlayAddress/);
    refused([peer(2), { ...peer(3), underlayAddress: peer(2).underlayAddress }], /peers\[1\]\.underlayAddress/);
    refused([{ ...peer(2), vtepMac: '03:00:00:00:00:01' }], /vtepMac/);
    refused([{ ...peer(2), vtepMac: 'zz' }], /vtepMac/);
    refused([peer(2), { ...peer(3), vtepMac: peer(2).vtepMac }], /peers\[1\]\.vtepMac/);
    refused([{ ...peer(1), subnet: '10.252.9.0/24' }], /peers\[0\]\.subnet/);
    // this host among the peers (every Ready host listed) is left out, not refused
    assert.deepEqual(checkPeers(shape, [peer(1), peer(2)]).map((p) => p.name), ['h2']);
  });

  it('reads what ip -j and bridge -j print', () => {
    const k = parseKernel(
      'vx0',
      '[{"type":"unicast","dst":"10.250.0.12","gateway":"10.252.2.0","dev":"vx0","table":"2130","scope":"global","flags":["onlink"]},{"type":"unreachable","dst":"10.252.0.0/16","table":"main","scope":"global","flags":[]}]',
      '[{"dst":"10.252.2.0","lladdr":"02:BE:0A:FA:00:0C","state":["PERMANENT"]},{"dst":"10.252.9.9","state":["FAILED"]}]',
      '[{"priority":0,"src":"all","table":"local"},{"priority":2130,"src":"all","iif":"br0","table":"2130"}]',
      '[{"mac":"02:be:0a:fa:00:0c","dst":"10.250.0.12","flags":["self"],"state":"permanent"},{"mac":"33:33:00:00:00:01","flags":["self"],"state":"permanent"}]',
    );
    assert.deepEqual(k.routes, [
      { table: '2130', type: 'unicast', dst: '10.250.0.12/32', gateway: '10.252.2.0', dev: 'vx0', onlink: true },
      { table: 'main', type: 'unreachable', dst: '10.252.0.0/16', onlink: false },
    ]);
    assert.deepEqual(k.neighbours, [{ dst: '10.252.2.0', lladdr: '02:BE:0A:FA:00:0C' }]);
    assert.deepEqual(k.fdb, [{ mac: '02:be:0a:fa:00:0c', dst: '10.250.0.12' }]);
    assert.deepEqual(k.rules[1], { priority: 2130, iif: 'br0', table: '2130' });
  });
});
