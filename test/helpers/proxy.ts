// Test fixture: an HTTP proxy in front of a real server that injects network faults (dropped connections, 503s, frozen or cut streams, refused connects).
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface FaultyProxy {
  url: string;
  /** Every request forwarded or refused, as `METHOD path?query`. */
  seen: string[];
  /** The next `n` requests get no answer: their connection is destroyed. */
  dropNext(n: number): void;
  /** The next `n` requests are answered `status` (with Retry-After when given) and not forwarded. */
  failNext(n: number, status: number, retryAfter?: string): void;
  /** Streaming answers in flight (watch, log follow) stop flowing; their connections stay open. */
  freezeStreams(): void;
  /** Streaming answers in flight are cut (their connections destroyed). */
  cutStreams(): void;
  /** Connections and requests are destroyed at once until release(). */
  hold(): void;
  release(): void;
  stop(): Promise<void>;
}

export async function startProxy(target: string, o: { rewrite?: (pathAndQuery: string) => string } = {}): Promise<FaultyProxy> {
  let drops = 0;
  let failures: { n: number; status: number; retryAfter?: string } = { n: 0, status: 0 };
  let held = false;
  const sockets = new Set<Socket>();
  const streams = new Set<{ upstream: IncomingMessage; res: ServerResponse }>();
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (drops > 0 || held) {
      if (!held) drops--;
      req.socket.destroy();
      return;
    }
    if (failures.n > 0) {
      failures.n--;
      res.writeHead(failures.status, { 'content-type': 'application/json', ...(failures.retryAfter !== undefined && { 'retry-after': failures.retryAfter }) });
      res.end(JSON.stringify({ error: { code: 'ServerBusy', message: 'injected by the test proxy' } }));
      return;
    }
    const path = o.rewrite ? o.rewrite(req.url ?? '/') : req.url ?? '/';
    const up = request(new URL(path, target), { method: req.method, headers: { ...req.headers, host: new URL(target).host } }, (upstream) => {
      res.writeHead(upstream.statusCode ?? 502, upstream.headers);
      const type = String(upstream.headers['content-type'] ?? '');
      if (type.includes('ndjson') || (type.startsWith('text/plain') && !upstream.headers['content-length'])) {
        const s = { upstream, res };
        streams.add(s);
        res.on('close', () => {
          streams.delete(s);
          upstream.destroy();
        });
      }
      upstream.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (socket: Socket) => {
    if (held) return void socket.destroy();
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    dropNext: (n) => void (drops = n),
    failNext: (n, status, retryAfter) => void (failures = { n, status, retryAfter }),
    freezeStreams: () => {
      for (const s of streams) {
        s.upstream.unpipe(s.res);
        s.upstream.pause();
      }
    },
    cutStreams: () => {
      for (const s of streams) s.res.socket?.destroy();
    },
    hold: () => void (held = true),
    release: () => void (held = false),
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
