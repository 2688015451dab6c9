// The cluster overlay end to end (scripts/dev-cluster.sh up 3, real containers): a group reaches a group on another host at its private IP and is
// seen there from its own address; two subscriptions' groups on two hosts cannot reach each other either way; a restarted agent adopts its overlay;
// a group moved off a host that lost its power answers at its new address from the other host; and `down` leaves no VXLAN device, route, rule or
// table behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { before, describe, test } from 'node:test';
import { parseCidr, cidrHas, ipToNumber } from '../../src/lib/ipv4.js';
import type { EtcdStore } from '../../src/store/etcd.js';
import { Api, group } from '../helpers/berth.js';
import { onDevCluster, type DevCluster } from '../helpers/cluster.js';
import { execSession } from '../helpers/exec.js';

const REGISTRY_PORT = 25002;
const RG = 'overlay';
const SUB = 'overlay-sub';
const OTHER_SUB = 'overlay-other-sub';
/** A CGI (busybox httpd's) that answers the address the request came from. */
const WHO_AM_I = '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"\n';

let cluster: DevCluster | undefined;
let api: Api;
let other: Api;
let image: string;
let etcd: EtcdStore;

const onCluster = onDevCluster({ replicas: 1, sub: SUB, registryPort: REGISTRY_PORT, image: { name: 'overlay/web', cmd: ['httpd', '-f', '-p', '80', '-h', '/www'] }, etcd: true });
before(async () => {
  ({ cluster, api, image, etcd } = await onCluster);
  other = new Api({ url: cluster!.url, token: cluster!.token }, OTHER_SUB);
});

/** A group with a private address answering `/cgi-bin/ip` on port 80, on a host of `zones` (dev-cluster.sh: devhN is in zone-N). */
const server = (zones: string[]) => {
  const b = group(image, {
    command: ['sh', '-c', 'mkdir -p /www/cgi-bin && echo "$CGI" > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www'],
    env: [{ name: 'CGI', value: WHO_AM_I }], ports: [80], cpu: 0.1, memoryInGB: 0.1,
  });
  return { ...b, zones, properties: { ...b.properties, ipAddress: { type: 'Private', ports: [{ port: 80, protocol: 'TCP' }] } } };
};

/** The group's private address and host as the API shows them. */
const where = (g: { properties: { ipAddress: { ip: string }; placement: { host: string } } }) => ({ ip: g.properties.ipAddress.ip, host: g.properties.placement.host });

/** A GET of `http://IP/cgi-bin/ip` from inside group `name`'s container (busybox nc, giving up after 3 s): whether it got an answer, and the address the server saw. */
async function fetchIn(as: Api, name: string, ip: string): Promise<{ ok: boolean; text: string }> {
  const s = await execSession(as, RG, name, 'main', `sh -c 'printf "GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n" | nc -w 3 ${ip} 80'`);
  await s.closed;
  const out = s.output();
  const blank = out.indexOf('\r\n\r\n');
  // busybox httpd listens on IPv6 too, and names an IPv4 client by its mapped address
  const body = (blank < 0 ? out : out.slice(blank + 4)).trim().replace(/^\[::ffff:(.*)\]$/, '$1');
  return { ok: /^HTTP\/1\.[01] 200/.test(out), text: body };
}

/** The subnet the control plane gave `host` (its record in the store). */
async function subnetOf(host: string): Promise<string> {
  return (await etcd.get<{ subnet: string }>(`/hosts/${host}`))!.value.subnet;
}

describe('the overlay of a dev cluster of three hosts', () => {
  const at: Record<string, { ip: string; host: string }> = {};

  test('each host has its own subnet of the cluster CIDR, and a group on one host answers a group on another at its private IP, seeing its real address', async () => {
    const subnets = await Promise.all(['devh1', 'devh2', 'devh3'].map(subnetOf));
    assert.equal(new Set(subnets).size, 3, `three subnets: ${subnets}`);
    for (const s of subnets) assert.match(s, /^10\.252\.\d+\.0\/22$/, 'a /22 of 10.252.0.0/16 (dev-cluster.sh)');
    const [web, client] = await Promise.all([api.createAndWait(RG, 'web', server(['zone-1'])), api.createAndWait(RG, 'client', server(['zone-2']))]);
    at.web = where(web);
    at.client = where(client);
    assert.deepEqual([at.web.host, at.client.host], ['devh1', 'devh2']);
    assert.ok(cidrHas(parseCidr(subnets[0])!, ipToNumber(at.web.ip)), `web's address ${at.web.ip} is in devh1's subnet ${subnets[0]}`);
    assert.ok(cidrHas(parseCidr(subnets[1])!, ipToNumber(at.client.ip)), `client's address ${at.client.ip} is in devh2's subnet ${subnets[1]}`);
    const answer = await api.waitFor('web answering client across hosts', async () => {
      const r = await fetchIn(api, 'client', at.web.ip);
      return r.ok && r;
    }, 30_000);
    assert.equal(answer.text, at.client.ip, 'the server sees the caller\'s own private address (no NAT on the overlay)');
    // and back the other way
    const back = await fetchIn(api, 'web', at.client.ip);
    assert.deepEqual(back, { ok: true, text: at.web.ip });
  });

  test("two subscriptions' groups on two hosts cannot reach each other, either way", async () => {
    const stranger = await other.createAndWait(RG, 'stranger', server(['zone-3']));
    at.stranger = where(stranger);
    assert.equal(at.stranger.host, 'devh3');
    // its own server answers it on its own host: what fails below is the segment, not the group
    assert.deepEqual(await fetchIn(other, 'stranger', at.stranger.ip), { ok: true, text: at.stranger.ip });
    const toWeb = await fetchIn(other, 'stranger', at.web.ip);
    assert.equal(toWeb.ok, false, `stranger (devh3) reached web (devh1): ${toWeb.text}`);
    const fromClient = await fetchIn(api, 'client', at.stranger.ip);
    assert.equal(fromClient.ok, false, `client (devh2) reached stranger (devh3): ${fromClient.text}`);
    // the same subscription's groups still reach each other meanwhile
    assert.equal((await fetchIn(api, 'client', at.web.ip)).ok, true);
    await other.deleteAndWait(RG, 'stranger');
  });

  test("kill -9 of an agent and its restart: the new agent adopts the host's overlay as it was (same device, same entries) and traffic goes on", async () => {
    const ip = (...args: string[]) => execFileSync('ip', ['-n', 'devh2', ...args], { encoding: 'utf8' });
    const kernel = () => ({
      device: ip('-o', 'link', 'show', 'dev', 'berth-vxlan').split(':')[0],
      routes: ip('route', 'show', 'table', 'all', 'proto', '213'),
      neighbours: ip('neigh', 'show', 'dev', 'berth-vxlan'),
      fdb: execFileSync('ip', ['netns', 'exec', 'devh2', 'bridge', 'fdb', 'show', 'dev', 'berth-vxlan'], { encoding: 'utf8' }),
    });
    const before = kernel();
    assert.match(before.routes, /10\.252\.\d+\.0\/22 via/, 'routes to the peers');
    await cluster!.run('kill-agent', 'devh2');
    // back within the host lease (else its groups would move): the fetch goes on meanwhile
    const [whileDown] = await Promise.all([fetchIn(api, 'web', at.client.ip), cluster!.run('start-host', 'devh2')]);
    assert.equal(whileDown.text, at.web.ip, 'the overlay carries traffic while the agent restarts');
    assert.deepEqual(kernel(), before, 'nothing made again, duplicated or flushed');
    assert.deepEqual(await fetchIn(api, 'client', at.web.ip), { ok: true, text: at.client.ip });
  });

  test("a host's power loss: its group runs on another host and answers there at its new address, across the overlay", async (t) => {
    const moving = where(await api.createAndWait(RG, 'mover', server(['zone-1', 'zone-3'])));
    assert.ok(['devh1', 'devh3'].includes(moving.host));
    assert.equal((await api.waitFor('mover answering client', async () => (await fetchIn(api, 'client', moving.ip)).ok || undefined, 30_000)), true);
    const killedAt = Date.now();
    await cluster!.run('kill-host', moving.host);
    const moved = await api.waitFor('mover Running on the other host', async () => {
      const g = (await api.req('GET', api.groupPath(RG, 'mover'))).body;
      return g.properties.instanceView?.state === 'Running' && g.properties.placement.host !== moving.host && where(g);
    }, 30_000);
    assert.notEqual(moved.ip, moving.ip);
    assert.ok(cidrHas(parseCidr(await subnetOf(moved.host))!, ipToNumber(moved.ip)), `its new address ${moved.ip} is in ${moved.host}'s subnet`);
    const answer = await api.waitFor('the moved group answering client', async () => {
      const r = await fetchIn(api, 'client', moved.ip);
      return r.ok && r;
    }, 30_000);
    t.diagnostic(`from the kill of ${moving.host} to the moved group answering across the overlay: ${Date.now() - killedAt} ms`);
    assert.equal(answer.text, at.client.ip);
  });

  test('down leaves no VXLAN device, overlay route, rule or table', async () => {
    await etcd.close();
    await cluster!.down();
    cluster = undefined;
    const out = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
    assert.equal(out('ip', '-o', 'link', 'show', 'type', 'vxlan').trim(), '');
    assert.equal(out('ip', 'route', 'show', 'table', 'all', 'proto', '213').trim(), '');
    assert.doesNotMatch(out('ip', 'rule', 'show'), /lookup 2130/);
    assert.doesNotMatch(out('nft', 'list', 'tables'), /berth/);
    assert.deepEqual(out('ip', 'netns', 'list').split('\n').filter((l) => l.startsWith('devh')), []);
  });
});
