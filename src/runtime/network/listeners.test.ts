// portsListenedOn against real sockets of this network namespace (TCP and UDP, IPv4 and IPv6), as berth-spawnd's @listening reports them.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, test } from 'node:test';
import { portsListenedOn } from './listeners.js';

const open: (Server | Socket)[] = [];
after(() => {
  for (const s of open) s.close();
});

async function listenTcp(host: string, opts: { ipv6Only?: boolean } = {}): Promise<number> {
  const server = createServer();
  open.push(server);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ host, port: 0, ipv6Only: opts.ipv6Only }, resolve));
  return (server.address() as AddressInfo).port;
}

async function bindUdp(host: string): Promise<number> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  open.push(socket);
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  return socket.address().port;
}

const tcp = (port: number) => ({ port, protocol: 'TCP' as const });
const udp = (port: number) => ({ port, protocol: 'UDP' as const });

test('a TCP listener counts at its own address and, on a wildcard, at every address', async () => {
  const onLoopback = await listenTcp('127.0.0.1');
  const onAny = await listenTcp('0.0.0.0');
  assert.deepEqual(await portsListenedOn('127.0.0.1', [tcp(onLoopback), tcp(onAny)]), [tcp(onLoopback), tcp(onAny)]);
  assert.deepEqual(await portsListenedOn('127.0.0.2', [tcp(onLoopback), tcp(onAny)]), [tcp(onAny)], 'another address is not held by 127.0.0.1');
  assert.deepEqual(await portsListenedOn('0.0.0.0', [tcp(onLoopback)]), [tcp(onLoopback)], 'publishing everywhere would take it');
  assert.deepEqual(await portsListenedOn('127.0.0.1', [udp(onLoopback)]), [], 'a TCP listener holds no UDP port');
});

test('an IPv6 wildcard (maybe dual-stack) and an IPv4-mapped address hold IPv4 ports; an IPv6-only loopback listener does not', async () => {
  const dual = await listenTcp('::');
  const mapped = await listenTcp('::ffff:127.0.0.1');
  const v6Loopback = await listenTcp('::1', { ipv6Only: true });
  assert.deepEqual(await portsListenedOn('127.0.0.1', [tcp(dual), tcp(mapped), tcp(v6Loopback)]), [tcp(dual), tcp(mapped)]);
});

test('a bound UDP socket counts, a client socket that only connected does not', async () => {
  const bound = await bindUdp('127.0.0.1');
  const client = createSocket('udp4');
  open.push(client);
  await new Promise<void>((resolve) => client.connect(bound, '127.0.0.1', resolve));
  const clientPort = client.address().port;
  assert.deepEqual(await portsListenedOn('127.0.0.1', [udp(bound), udp(clientPort)]), [udp(bound)]);
});

test('a port nothing holds is free, however many connections the host has', async () => {
  const server = createServer((c) => c.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  // connections (and the TIME_WAIT they leave) are no listeners
  const { connect } = await import('node:net');
  await Promise.all(Array.from({ length: 50 }, () => new Promise<void>((resolve) => connect(port, '127.0.0.1').on('close', () => resolve()).on('data', () => undefined))));
  await new Promise((resolve) => server.close(resolve));
  assert.deepEqual(await portsListenedOn('127.0.0.1', [tcp(port), udp(port)]), []);
});
