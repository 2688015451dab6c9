// An agent's own HTTPS API: the host's share of the data plane (logs, follow, exec, cached images, its own ports) for callers holding a token the control plane signed.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { BerthError, Codes, errorToWire } from '../lib/errors.js';
import type { TokenVerifier } from '../lib/signed-token.js';
import { Channel, parsePath, parsePortsQuery, type ControlFrame, type DataPlaneClaims, type ExecRequest } from './dataplane-wire.js';
import type { HostDataPlane } from './link.js';
import type { ExecHandle, LogOptions } from './types.js';

export interface DataPlaneServerOptions {
  /** This host's name: tokens for another host are refused. */
  host: string;
  dataPlane: HostDataPlane;
  /** The control plane's public key. */
  verifier: TokenVerifier;
  tls: { key: string | Buffer; cert: string | Buffer };
  listen: { host: string; port: number };
}

export interface DataPlaneServer {
  /** `https://host:port` it listens on. */
  url: string;
  close(): Promise<void>;
}

const bad = (message: string, target?: string) => new BerthError(Codes.InvalidRequestContent, message, 400, target);

function authorize(req: IncomingMessage, host: string, verifier: TokenVerifier, want: Omit<DataPlaneClaims, 'host'>) {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m) throw new BerthError(Codes.AuthenticationFailed, 'A token signed by the control plane is required.', 401);
  const c = verifier.verify<DataPlaneClaims>(m[1]);
  if (c.host !== host || c.op !== want.op || c.uid !== want.uid || c.container !== want.container)
    throw new BerthError('AuthorizationFailed', `The token does not allow '${want.op}' here.`, 403);
}

function logOptions(q: URLSearchParams): LogOptions {
  const tail = q.get('tail');
  if (tail !== null && !/^\d+$/.test(tail)) throw bad(`'tail' must be a whole number (got '${tail.slice(0, 20)}').`, 'tail');
  return { ...(tail !== null && { tail: Number(tail) }), timestamps: q.get('timestamps') === 'true', previous: q.get('previous') === 'true' };
}

function parseExecRequest(q: URLSearchParams): ExecRequest {
  try {
    const r = JSON.parse(q.get('spec') ?? '') as ExecRequest;
    if (Array.isArray(r.argv) && r.argv.length > 0 && r.argv.every((a) => typeof a === 'string') && typeof r.opts === 'object' && r.opts !== null) return r;
  } catch {
    /* refused below */
  }
  throw bad("'spec' must be JSON {argv: string[], opts: {}} with a command.", 'spec');
}

const sendJson = (res: ServerResponse, body: unknown) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));

function sendError(res: ServerResponse, e: unknown) {
  const w = errorToWire(e);
  if (res.headersSent) return void res.destroy();
  res.writeHead(w.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: w }));
}

/** Sends a stream's chunks on `channel`, pausing it while the socket has too much queued. */
function pipeChannel(stream: NodeJS.ReadableStream & { pause(): void; resume(): void }, channel: number, ws: WebSocket) {
  stream.on('data', (b: Buffer) => {
    ws.send(Buffer.concat([Buffer.of(channel), b]), () => {
      if (ws.bufferedAmount < 256 << 10) stream.resume();
    });
    if (ws.bufferedAmount >= 1 << 20) stream.pause();
  });
}

function runExec(ws: WebSocket, proc: ExecHandle) {
  ws.on('close', () => proc.kill()); // the caller is gone: so is what it started
  pipeChannel(proc.stdout, Channel.stdout, ws);
  pipeChannel(proc.stderr, Channel.stderr, ws);
  ws.on('message', (data, isBinary) => {
    const b = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
    if (isBinary) {
      if (b[0] === Channel.stdin && proc.stdin.writable) proc.stdin.write(b.subarray(1));
      return;
    }
    let f: ControlFrame;
    try {
      f = JSON.parse(b.toString());
    } catch {
      return;
    }
    if ('resize' in f) proc.resize(f.resize);
    else if ('eof' in f) proc.stdin.end();
  });
  void proc.done.then((r) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({ exit: r } satisfies ControlFrame));
    ws.close(1000);
  });
}

export async function startDataPlaneServer(o: DataPlaneServerOptions): Promise<DataPlaneServer> {
  const wss = new WebSocketServer({ noServer: true });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'https://agent');
    const target = parsePath(u.pathname);
    if (!target || req.method !== 'GET') throw new BerthError(Codes.NotFound, `No route matches '${req.method} ${u.pathname.slice(0, 200)}'.`, 404);
    if (target.op === 'images') {
      authorize(req, o.host, o.verifier, { op: 'images' });
      return sendJson(res, await o.dataPlane.cachedImages());
    }
    if (target.op === 'ports') {
      authorize(req, o.host, o.verifier, { op: 'ports' });
      const ports = parsePortsQuery(u.searchParams.get('unavailable') ?? '');
      if (!ports) throw bad("'unavailable' must list up to 100 ports as PROTOCOL/PORT (TCP/80,UDP/53).", 'unavailable');
      return sendJson(res, await o.dataPlane.unavailablePorts(ports));
    }
    if (target.op === 'usage') {
      authorize(req, o.host, o.verifier, { op: 'usage', uid: target.uid });
      const since = Number(u.searchParams.get('since') ?? 0);
      if (!Number.isFinite(since)) throw bad("'since' must be a time in ms since the epoch.", 'since');
      return sendJson(res, await o.dataPlane.usage(target.uid, since));
    }
    if (target.op !== 'logs') throw new BerthError(Codes.NotFound, `No route matches '${req.method} ${u.pathname.slice(0, 200)}'.`, 404);
    authorize(req, o.host, o.verifier, { op: 'logs', uid: target.uid, container: target.container });
    const opts = logOptions(u.searchParams);
    if (u.searchParams.get('follow') !== 'true') {
      const text = await o.dataPlane.logs(target.uid, target.container, opts);
      return void res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
    }
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    try {
      await o.dataPlane.followLogs(target.uid, target.container, opts, (chunk) => res.write(JSON.stringify({ chunk }) + '\n'), ac.signal);
      res.end(JSON.stringify({ end: true }) + '\n');
    } catch (e) {
      res.end(JSON.stringify({ error: errorToWire(e) }) + '\n');
    }
  };
  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const u = new URL(req.url ?? '/', 'https://agent');
    const target = parsePath(u.pathname);
    if (!target || target.op !== 'exec') throw new BerthError(Codes.NotFound, `No WebSocket route matches '${u.pathname.slice(0, 200)}'.`, 404);
    authorize(req, o.host, o.verifier, { op: 'exec', uid: target.uid, container: target.container });
    const { argv, opts } = parseExecRequest(u.searchParams);
    // started before the upgrade completes: a refusal (no such container, not running) is an HTTP answer
    const proc = await o.dataPlane.exec(target.uid, target.container, argv, opts);
    if (socket.destroyed) return proc.kill();
    wss.handleUpgrade(req, socket, head, (ws) => runExec(ws, proc));
  };
  const server: Server = createServer({ key: o.tls.key, cert: o.tls.cert }, (req, res) => void handle(req, res).catch((e) => sendError(res, e)));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void upgrade(req, socket, head).catch((e) => {
      const w = errorToWire(e);
      const body = JSON.stringify({ error: w });
      if (socket.writable) socket.end(`HTTP/1.1 ${w.status} Error\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.listen.port;
  const shown = o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host;
  return {
    url: `https://${shown}:${port}`,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
