// berth's DNS server on loopback, queried by node's own resolver (c-ares, UDP) and over TCP by hand.
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { Rcode, answer, buildQuery, parseQuery, startDnsServer, type DnsServer, type Lookup } from './dns.js';

const names: Record<string, Lookup> = {
  'web.local.berth.internal': { kind: 'address', ip: '10.213.120.7' },
  'stopped.local.berth.internal': { kind: 'nodata' },
};
const opts = { zone: 'berth.internal', lookup: async (n: string): Promise<Lookup> => names[n] ?? { kind: 'nxdomain' } };
let server: DnsServer;
let resolver: Resolver;

before(async () => {
  server = await startDnsServer('127.0.0.1:0', opts);
  resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([server.address]);
});
after(() => server?.close());

const rcodeOf = (msg: Buffer) => msg.readUInt16BE(2) & 0xf;

test('A records for names in the zone, case-insensitively', async () => {
  assert.deepEqual(await resolver.resolve4('web.local.berth.internal'), ['10.213.120.7']);
  assert.deepEqual(await resolver.resolve4('WEB.Local.Berth.Internal'), ['10.213.120.7']);
  const ttl = await resolver.resolve4('web.local.berth.internal', { ttl: true });
  assert.deepEqual(ttl, [{ address: '10.213.120.7', ttl: 5 }]);
});

test('NXDOMAIN for unknown names in the zone, NODATA for names without an address, REFUSED outside it', async () => {
  await assert.rejects(resolver.resolve4('nope.local.berth.internal'), { code: 'ENOTFOUND' });
  await assert.rejects(resolver.resolve4('stopped.local.berth.internal'), { code: 'ENODATA' });
  await assert.rejects(resolver.resolve6('web.local.berth.internal'), { code: 'ENODATA' });
  await assert.rejects(resolver.resolve4('example.org'), { code: 'EREFUSED' });
  // The zone apex exists and has an SOA.
  const soa = await resolver.resolveSoa('berth.internal');
  assert.equal(soa.nsname, 'ns.berth.internal');
});

test('TCP: length-prefixed queries, several on one connection', async () => {
  const [host, port] = [server.address.slice(0, server.address.lastIndexOf(':')), Number(server.address.split(':').pop())];
  const sock = connect(port, host);
  const frames: Buffer[] = [];
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      frames.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
  });
  const send = (q: Buffer) => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(q.length);
    sock.write(Buffer.concat([len, q]));
  };
  send(buildQuery('web.local.berth.internal', 1, 7));
  send(buildQuery('gone.local.berth.internal', 1, 8));
  while (frames.length < 2) await new Promise((r) => setTimeout(r, 10));
  sock.destroy();
  const byId = new Map(frames.map((f) => [f.readUInt16BE(0), f]));
  const ok = byId.get(7)!;
  assert.equal(rcodeOf(ok), Rcode.NoError);
  assert.equal(ok.readUInt16BE(6), 1, 'one answer');
  assert.deepEqual([...ok.subarray(ok.length - 4)], [10, 213, 120, 7]);
  assert.equal(rcodeOf(byId.get(8)!), Rcode.NXDomain);
});

test('malformed and unsupported queries', async () => {
  const q = buildQuery('web.local.berth.internal', 1, 9);
  assert.equal(rcodeOf((await answer(q.subarray(0, 20), opts))!), Rcode.FormErr, 'a truncated question');
  assert.equal(await answer(Buffer.from([1, 2, 3]), opts), undefined, 'no header: no answer');
  const notQuery = Buffer.from(q);
  notQuery[2] |= 0x78; // opcode 15
  assert.equal(rcodeOf((await answer(notQuery, opts))!), Rcode.NotImp);
  const loop = Buffer.from(q);
  loop[12] = 0xc0;
  loop[13] = 12; // a pointer to itself
  assert.equal(rcodeOf((await answer(loop, opts))!), Rcode.FormErr);
  const failing = await answer(q, { ...opts, lookup: async () => { throw new Error('store down'); } });
  assert.equal(rcodeOf(failing!), Rcode.ServFail);
  assert.equal(parseQuery(q).question.name, 'web.local.berth.internal');
});
