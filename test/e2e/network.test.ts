// End to end: two tenants on one berth: host ports they may not take, networks they may not cross, host services they may not reach.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { INDEX_HTML, buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Api, endE2e, hostFootprint, startBerth, type BerthProcess } from '../helpers/berth.js';
import { startRemoteHost, type RemoteHost } from '../helpers/remote.js';

const BRIDGE = 'btnet0';
const SUBNET = '10.213.122.0/24';
const GATEWAY = '10.213.122.1';
/** The host's address Public groups are published on: one the containers can send to (on lo, as a host's own address). */
const HOST_ADDRESS = '10.213.123.1';
const RG = 'net';

let registry: TestRegistry;
let berth: BerthProcess;
let remote: RemoteHost;
let apiA: Api;
let apiB: Api;
let image: string;
let footprint: ReturnType<typeof hostFootprint>;
const servers: Server[] = [];
const runcRoot = `/run/berth-test-${process.pid}/runc`;

/** A TCP server of the host itself answering "hello from the host": what no group may take or reach. */
async function hostListener(host: string): Promise<number> {
  const server = createServer((c) => c.end('HTTP/1.0 200 OK\r\n\r\nhello from the host\n'));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

const httpGet = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(3000) })).text();
const portOf = (url: string) => Number(new URL(url).port);
/** A group serving HTTP on `port`, published (Public) on the host. */
const publishing = (port: number, protocol: 'TCP' | 'UDP' = 'TCP') => ({
  location: 'local',
  properties: {
    osType: 'Linux',
    containers: [{ name: 'web', properties: {
      image, command: ['httpd', '-f', '-p', String(port), '-h', '/www'], ports: [{ port, protocol }], resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } },
    } }],
    ipAddress: { type: 'Public', ports: [{ port, protocol }] },
  },
});

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'net', '1', { cmd: ['httpd', '-f', '-p', '80', '-h', '/www'] })).reference;
  execFileSync('ip', ['addr', 'add', `${HOST_ADDRESS}/32`, 'dev', 'lo']);
  remote = startRemoteHost(`btnet-${process.pid}`, '10.213.124');
  footprint = hostFootprint(runcRoot);
  berth = await startBerth({
    bridge: BRIDGE, subnet: SUBNET, runcRoot, advertiseAddress: HOST_ADDRESS,
    config: { tokens: [{ token: 'token-of-a', subscriptions: ['sub-a'] }, { token: 'token-of-b', subscriptions: ['sub-b'] }], subscriptions: ['sub-a', 'sub-b'] },
  });
  apiA = new Api({ url: berth.url, token: 'token-of-a' }, 'sub-a');
  apiB = new Api({ url: berth.url, token: 'token-of-b' }, 'sub-b');
});

after(() => endE2e({
  berth, subscriptions: ['sub-a', 'sub-b'], registry, bridge: BRIDGE,
  cleanup: () => {
    for (const s of servers) s.close();
    remote?.close();
    execFileSync('ip', ['addr', 'del', `${HOST_ADDRESS}/32`, 'dev', 'lo'], { stdio: 'ignore' });
  },
}));

describe('tenants on one host', () => {
  let publicOfB: number;

  test("a group publishes neither berth's own ports, nor a port a host process listens on, nor another tenant's; berth's API keeps answering", async () => {
    publicOfB = 20000 + Math.floor(Math.random() * 10000);
    await apiB.createAndWait(RG, 'b-web', publishing(publicOfB));
    assert.equal(await apiB.waitFor('the published port', () => httpGet(`http://${HOST_ADDRESS}:${publicOfB}/`).catch(() => undefined), 10_000), INDEX_HTML);

    const onAny = await hostListener('0.0.0.0');
    const onHostAddress = await hostListener(HOST_ADDRESS);
    const dnsPort = Number(berth.dnsAddress!.split(':').pop());
    for (const [what, port, protocol] of [
      ["berth's API (http)", portOf(berth.url), 'TCP'],
      ["berth's API (https)", portOf(berth.httpsUrl), 'TCP'],
      ["berth's DNS", dnsPort, 'UDP'],
      ['a host process on 0.0.0.0', onAny, 'TCP'],
      ['a host process on the host address', onHostAddress, 'TCP'],
      ["another tenant's group", publicOfB, 'TCP'],
    ] as const) {
      const r = await apiA.req('PUT', apiA.groupPath(RG, 'thief'), publishing(port, protocol));
      assert.equal(r.status, 409, `${what}: ${r.text}`);
      assert.deepEqual(r.body, { error: { code: 'PortAlreadyInUse', message: `The port ${port}/${protocol} is already in use on this host.`, target: 'properties.ipAddress.ports' } }, what);
      assert.equal((await apiA.req('GET', apiA.groupPath(RG, 'thief'))).status, 404, `${what}: nothing admitted`);
    }
    // nothing of berth stands between a client and berth: B's next request reaches berth, not a group
    const b = await apiB.req('GET', apiB.groupPath(RG, 'b-web'));
    assert.equal(b.status, 200);
    assert.equal(b.body.properties.ipAddress.ip, HOST_ADDRESS);
    assert.doesNotMatch(execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }), new RegExp(`--dport (${portOf(berth.url)}|${portOf(berth.httpsUrl)}|${dnsPort}|${onAny}|${onHostAddress}) `));
    assert.equal(await httpGet(`http://127.0.0.1:${onAny}/`), 'hello from the host\n');
    assert.equal(await httpGet(`http://${HOST_ADDRESS}:${onHostAddress}/`), 'hello from the host\n');
  });

  test('a host process that took a port while its group was stopped keeps it: the start fails with PortAlreadyInUse', async () => {
    const port = 20000 + Math.floor(Math.random() * 10000);
    await apiA.createAndWait(RG, 'a-stopped', publishing(port));
    const stop = await apiA.req('POST', `${apiA.groupPath(RG, 'a-stopped')}/stop`);
    assert.equal(stop.status, 204, stop.text);
    await apiA.waitFor('the port to be free', async () => !execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).includes(`--dport ${port} `));
    const server = createServer((c) => c.end('HTTP/1.0 200 OK\r\n\r\nhello from the host\n'));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(port, HOST_ADDRESS, resolve));
    const start = await apiA.req('POST', `${apiA.groupPath(RG, 'a-stopped')}/start`);
    assert.equal(start.status, 202, start.text);
    const op = await apiA.waitOp(start.headers.get('azure-asyncoperation')!);
    assert.deepEqual(op.error, { code: 'PortAlreadyInUse', message: `The port ${port}/TCP is already in use on this host.` });
    assert.equal(await httpGet(`http://${HOST_ADDRESS}:${port}/`), 'hello from the host\n');
    server.close();
    await apiA.deleteAndWait(RG, 'a-stopped');
  });

  test("a tenant's containers reach each other and the world, never another tenant's containers nor the host's services", async () => {
    const hostPort = await hostListener('0.0.0.0');
    const worldPort = 9000;
    remote.run(['/bin/busybox', 'httpd', '-f', '-p', `${remote.address}:${worldPort}`, '-h', '/proc/self/fdinfo']);
    const web = (name: string) => ({ name, properties: { image, command: ['httpd', '-f', '-p', '8080', '-h', '/www'], ports: [{ port: 8080 }], resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } } });
    const withFirst = (step: string, [sh, c, script]: string[]) => [sh, c, `${step}; ${script}`];
    const privateGroup = (containers: unknown[], ip = true) => ({
      location: 'local',
      properties: { osType: 'Linux', containers, ...(ip && { ipAddress: { type: 'Private', ports: [{ port: 8080, protocol: 'TCP' }] } }) },
    });
    const ipOf = async (api: Api, name: string) => (await api.createAndWait(RG, name, privateGroup([web('web')]))).properties.ipAddress.ip as string;
    const a2 = await ipOf(apiA, 'a2');
    const b1 = await ipOf(apiB, 'b1');
    // busybox nc gives up a connection nobody answers after 2 s
    const probe = (what: string, host: string, port: number) =>
      `if printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${port} 2>/dev/null | grep -q HTTP/; then echo "${what} reached"; else echo "${what} not reached"; fi`;
    const probes = (checks: [string, string, number][]) => ['sh', '-c', [...checks.map(([w, h, p]) => probe(w, h, p)), 'exec sleep 600'].join('; ')];
    // the group's web container starts beside the client: give it 10 s to listen
    const awaitOwnWeb = `for i in $(seq 50); do wget -q -O /dev/null http://127.0.0.1:8080/ 2>/dev/null && break; sleep 0.2; done`;
    const body = privateGroup([
      web('web'),
      { name: 'client', properties: { image, command: withFirst(awaitOwnWeb, probes([
        ['its own group', '127.0.0.1', 8080],
        ["its tenant's other group", a2, 8080],
        ["another tenant's group", b1, 8080],
        ["another tenant's Public port, at the host address", HOST_ADDRESS, publicOfB],
        ['a host process on 0.0.0.0, at the gateway', GATEWAY, hostPort],
        ['a host process on 0.0.0.0, at the host address', HOST_ADDRESS, hostPort],
        ['the world', remote.address, worldPort],
      ])), resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } } },
    ]);
    await apiA.createAndWait(RG, 'a1', body);
    const logs = await apiA.waitFor('every probe', async () => {
      const r = await apiA.req('GET', `${apiA.groupPath(RG, 'a1')}/containers/client/logs`);
      return r.body?.content?.includes('the world') && r.body.content;
    }, 60_000);
    assert.deepEqual(logs.trim().split('\n'), [
      'its own group reached',
      "its tenant's other group reached",
      "another tenant's group not reached",
      "another tenant's Public port, at the host address reached",
      'a host process on 0.0.0.0, at the gateway not reached',
      'a host process on 0.0.0.0, at the host address not reached',
      'the world reached',
    ]);
    // and the other way round
    await apiB.createAndWait(RG, 'b2', privateGroup([{ name: 'client', properties: { image, command: probes([["another tenant's group", a2, 8080]]), resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } } }], false));
    assert.equal(await apiB.waitFor('the probe of b2', async () => (await apiB.req('GET', `${apiB.groupPath(RG, 'b2')}/containers/client/logs`)).body?.content), "another tenant's group not reached\n");
  });

  test('every rule a group made goes with it', async () => {
    for (const [api, names] of [[apiA, ['a1', 'a2']], [apiB, ['b-web', 'b1', 'b2']]] as const) for (const n of names) await api.deleteAndWait(RG, n);
    // what networks and containers leave (group disks' loop devices are the host's, shared with every other server)
    const left = (f: ReturnType<typeof hostFootprint>) =>
      ({ netns: f.netns, veth: f.veth, iptablesRules: f.iptablesRules, nftObjects: f.nftObjects, overlayMounts: f.overlayMounts, runcContainers: f.runcContainers, conmon: f.conmon });
    assert.deepEqual(left(hostFootprint(runcRoot, berth.dataDir)), left(footprint), 'while it runs: only its pool and its network');
    await berth.stop();
    const { netns, veth, iptablesRules, nftObjects } = hostFootprint(runcRoot);
    assert.deepEqual({ netns, veth, iptablesRules, nftObjects }, { netns: footprint.netns, veth: footprint.veth, iptablesRules: footprint.iptablesRules, nftObjects: footprint.nftObjects }, 'once it stopped, its network is gone with its pool');
  });
});
