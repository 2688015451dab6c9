// berth's DNS: an authoritative server for its zone (UDP and TCP) answering A for each group's fqdn.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, isIPv4, type Server, type Socket as TcpSocket } from 'node:net';
import { splitHostPort } from '../lib/net.js';
import { groupIp, type RenderContext } from './render.js';
import type { InstancesService } from './service.js';

/** What a name in the zone is: an address, a name that exists without one (a stopped group), or nothing. */
export type Lookup = { kind: 'address'; ip: string } | { kind: 'nodata' } | { kind: 'nxdomain' };

export interface DnsOptions {
  /** The zone berth is authoritative for, e.g. `berth.internal`. */
  zone: string;
  /** `fqdn` is lower-case, without the trailing dot, and inside the zone. */
  lookup: (fqdn: string) => Promise<Lookup>;
  /** Seconds answers may be cached; short, so records follow changes to groups. */
  ttl?: number;
}

/**
 * Names of berth's groups: the address berth reports for the group while it is wanted running; a
 * stopped group's name exists without an address (NODATA).
 */
export function groupLookup(service: Pick<InstancesService, 'groupByFqdn'>, ctx: RenderContext) {
  return async (fqdn: string): Promise<Lookup> => {
    const v = await service.groupByFqdn(fqdn);
    if (!v) return { kind: 'nxdomain' };
    const ip = v.record.state === 'Running' ? groupIp(v, ctx) : undefined;
    return ip ? { kind: 'address', ip } : { kind: 'nodata' };
  };
}

// RFC 1035 numbers.
const TYPE_A = 1;
const TYPE_SOA = 6;
const CLASS_IN = 1;
export const Rcode = { NoError: 0, FormErr: 1, ServFail: 2, NXDomain: 3, NotImp: 4, Refused: 5 } as const;

interface Question {
  name: string;
  type: number;
  class: number;
}

interface Query {
  id: number;
  opcode: number;
  rd: boolean;
  question: Question;
  /** The question section as received (kept byte-for-byte: resolvers match its case). */
  questionBytes: Buffer;
}

class FormatError extends Error {}

/** Reads a (possibly compressed) name at `off`; returns it and the offset after it in the message. */
function readName(msg: Buffer, off: number): { name: string; end: number } {
  const labels: string[] = [];
  let end = -1;
  for (let jumps = 0; ; ) {
    if (off >= msg.length) throw new FormatError('name runs past the message');
    const len = msg[off];
    if (len === 0) {
      if (end < 0) end = off + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= msg.length || ++jumps > 16) throw new FormatError('bad compression pointer');
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | msg[off + 1];
      continue;
    }
    if (len > 63 || off + 1 + len > msg.length) throw new FormatError('bad label');
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  const name = labels.join('.');
  if (name.length > 253) throw new FormatError('name too long');
  return { name, end };
}

/** Parses a query; throws FormatError for anything that is not one well-formed question. */
export function parseQuery(msg: Buffer): Query {
  if (msg.length < 12) throw new FormatError('short header');
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) throw new FormatError('a response, not a query');
  const qdcount = msg.readUInt16BE(4);
  if (qdcount !== 1) throw Object.assign(new FormatError('exactly one question is supported'), { id });
  const { name, end } = readName(msg, 12);
  if (end + 4 > msg.length) throw Object.assign(new FormatError('short question'), { id });
  return {
    id,
    opcode: (flags >> 11) & 0xf,
    rd: (flags & 0x0100) !== 0,
    question: { name, type: msg.readUInt16BE(end), class: msg.readUInt16BE(end + 2) },
    questionBytes: msg.subarray(12, end + 4),
  };
}

/** A query for `name` (used by tests and tools; resolvers build their own). */
export function buildQuery(name: string, type = TYPE_A, id = 1): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2); // RD
  h.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([h, encodeName(name), tail]);
}

const encodeName = (name: string): Buffer =>
  Buffer.concat([...name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);

function rr(name: Buffer, type: number, ttl: number, rdata: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(CLASS_IN, 2);
  fixed.writeUInt32BE(ttl, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([name, fixed, rdata]);
}

/** The zone's SOA, sent with negative answers so resolvers know how long to cache them (RFC 2308). */
function soa(zone: string, ttl: number): Buffer {
  const times = Buffer.alloc(20);
  // serial, refresh, retry, expire, minimum (the negative-caching TTL)
  [1, 3600, 600, 86400, ttl].forEach((v, i) => times.writeUInt32BE(v, i * 4));
  return rr(encodeName(zone), TYPE_SOA, ttl, Buffer.concat([encodeName(`ns.${zone}`), encodeName(`hostmaster.${zone}`), times]));
}

/** Builds a response: the question echoed, `answers` and `authority` as resource records. */
function buildResponse(q: Pick<Query, 'id' | 'opcode' | 'rd'> & { questionBytes?: Buffer }, rcode: number, answers: Buffer[] = [], authority: Buffer[] = [], aa = true): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(q.id, 0);
  h.writeUInt16BE(0x8000 | (q.opcode << 11) | (aa ? 0x0400 : 0) | (q.rd ? 0x0100 : 0) | rcode, 2);
  h.writeUInt16BE(q.questionBytes ? 1 : 0, 4);
  h.writeUInt16BE(answers.length, 6);
  h.writeUInt16BE(authority.length, 8);
  return Buffer.concat([h, q.questionBytes ?? Buffer.alloc(0), ...answers, ...authority]);
}

const inZone = (name: string, zone: string) => name === zone || name.endsWith(`.${zone}`);

/** Answers one wire-format query; never throws (a malformed query gets FORMERR, or nothing if it has no header). */
export async function answer(msg: Buffer, o: DnsOptions): Promise<Buffer | undefined> {
  const zone = o.zone.toLowerCase().replace(/\.$/, '');
  const ttl = o.ttl ?? 5;
  let q: Query;
  try {
    q = parseQuery(msg);
  } catch (e) {
    if (msg.length < 12 || msg[2] & 0x80) return undefined;
    return buildResponse({ id: msg.readUInt16BE(0), opcode: (msg[2] >> 3) & 0xf, rd: (msg[2] & 1) !== 0 }, Rcode.FormErr, [], [], false);
  }
  if (q.opcode !== 0) return buildResponse(q, Rcode.NotImp, [], [], false);
  const name = q.question.name.toLowerCase().replace(/\.$/, '');
  // Authoritative for its zone only: no recursion, nothing about the rest of the DNS.
  if (!inZone(name, zone) || q.question.class !== CLASS_IN) return buildResponse(q, Rcode.Refused, [], [], false);
  const negative = (rcode: number) => buildResponse(q, rcode, [], [soa(zone, ttl)]);
  if (name === zone) return q.question.type === TYPE_SOA ? buildResponse(q, Rcode.NoError, [soa(zone, ttl)]) : negative(Rcode.NoError);
  let found: Lookup;
  try {
    found = await o.lookup(name);
  } catch {
    return buildResponse(q, Rcode.ServFail, [], [], false);
  }
  if (found.kind === 'nxdomain') return negative(Rcode.NXDomain);
  if (found.kind === 'nodata' || q.question.type !== TYPE_A || !isIPv4(found.ip)) return negative(Rcode.NoError);
  // 0xc00c: the name of the question, right after the 12-byte header.
  return buildResponse(q, Rcode.NoError, [rr(Buffer.from([0xc0, 0x0c]), TYPE_A, ttl, Buffer.from(found.ip.split('.').map(Number)))]);
}

export interface DnsServer {
  /** `host:port` actually bound (UDP and TCP share the port). */
  address: string;
  close(): Promise<void>;
}

/** Serves `o` on UDP and TCP at `listen` (`host:port`; port 0 picks one free for both). */
export async function startDnsServer(listen: string, o: DnsOptions): Promise<DnsServer> {
  const { host, port } = splitHostPort(listen);
  const type = host.includes(':') ? 'udp6' : 'udp4';
  // With port 0, UDP picks the port and TCP must get the same one: retry if TCP finds it taken.
  for (let attempt = 0; ; attempt++) {
    const udp = createSocket(type);
    await new Promise<void>((res, rej) => {
      udp.once('error', rej);
      udp.bind(port, host, () => {
        udp.off('error', rej);
        res();
      });
    });
    const bound = udp.address().port;
    const conns = new Set<TcpSocket>();
    const tcp = createServer((s) => {
      conns.add(s);
      s.on('close', () => conns.delete(s));
      serveTcp(s, o);
    });
    try {
      await new Promise<void>((res, rej) => {
        tcp.once('error', rej);
        tcp.listen(bound, host, () => {
          tcp.off('error', rej);
          res();
        });
      });
    } catch (e) {
      udp.close();
      if (port === 0 && attempt < 5 && (e as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
      throw e;
    }
    serveUdp(udp, o);
    return { address: `${host.includes(':') ? `[${host}]` : host}:${bound}`, close: () => closeBoth(udp, tcp, conns) };
  }
}

function serveUdp(udp: Socket, o: DnsOptions) {
  udp.on('error', (e) => console.error(`dns: udp: ${e.message}`));
  udp.on('message', (msg: Buffer, from: RemoteInfo) => {
    void answer(msg, o).then((res) => {
      if (res) udp.send(res, from.port, from.address);
    });
  });
}

/** TCP: each message is preceded by its 2-byte length (RFC 1035 4.2.2); idle connections close. */
function serveTcp(s: TcpSocket, o: DnsOptions) {
  let buf = Buffer.alloc(0);
  s.setTimeout(10_000, () => s.destroy());
  s.on('error', () => s.destroy());
  s.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length > 65_537 * 4) return void s.destroy();
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + msg.length);
      void answer(Buffer.from(msg), o).then((res) => {
        if (!res || s.destroyed) return;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(res.length);
        s.write(Buffer.concat([len, res]));
      });
    }
  });
}

async function closeBoth(udp: Socket, tcp: Server, conns: Set<TcpSocket>) {
  await new Promise<void>((r) => udp.close(() => r()));
  const closed = new Promise<void>((r) => tcp.close(() => r()));
  for (const c of conns) c.destroy();
  await closed;
}
