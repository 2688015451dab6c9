// The kubelet API of the virtual node (TLS): logs, exec, attach and pod listings served from berth's ARM API, for `kubectl logs/exec/attach`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { isNotFound, type StreamSession } from '../../client/index.js';
import { quoteCommand } from '../../lib/argv.js';
import type { VirtualNode } from './node.js';

export interface KubeletOptions {
  port: number;
  listen: string;
  nodeName: string;
  nodeIP: string;
  cert?: Buffer;
  key?: Buffer;
  /** CA that signs the API server's kubelet-client certificate; callers without a certificate from it are refused. */
  clientCA: Buffer;
  log: (msg: string) => void;
}

/** A self-signed serving certificate: the API server does not verify kubelet certificates unless told to. */
export function selfSignedCert(nodeName: string, ip: string): { cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'berth-kubelet-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '365', '-subj', `/CN=${nodeName}`,
      '-addext', `subjectAltName=IP:${ip},DNS:${nodeName}`, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CH = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/** Keeps lines newer than `since`, with or without their timestamp prefix, and at most `limit` bytes overall. */
export class LogFilter {
  private rest = '';
  private sent = 0;
  constructor(private o: { sinceMs?: number; timestamps: boolean; limitBytes?: number }) {}

  get exhausted() {
    return this.o.limitBytes !== undefined && this.sent >= this.o.limitBytes;
  }

  push(chunk: string, final = false): string {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = final ? '' : lines.pop()!;
    if (final && lines[lines.length - 1] === '') lines.pop();
    let out = '';
    for (const line of lines) {
      const sp = line.indexOf(' ');
      const ts = sp > 0 ? line.slice(0, sp) : '';
      if (this.o.sinceMs !== undefined) {
        const t = Date.parse(ts);
        if (!Number.isNaN(t) && t < this.o.sinceMs) continue;
      }
      out += (this.o.timestamps ? line : line.slice(sp + 1)) + '\n';
    }
    if (this.o.limitBytes !== undefined) {
      const left = Math.max(0, this.o.limitBytes - this.sent);
      const b = Buffer.from(out);
      if (b.length > left) out = b.subarray(0, left).toString();
    }
    this.sent += Buffer.byteLength(out);
    return out;
  }
}

export class KubeletServer {
  private server?: Server;
  private wss = new WebSocketServer({
    noServer: true,
    // Kubernetes' newest stream protocols first: v5 adds the close channel, v4 the exit-code status.
    handleProtocols: (protocols) => ['v5.channel.k8s.io', 'v4.channel.k8s.io'].find((p) => protocols.has(p)) ?? false,
  });

  constructor(readonly node: VirtualNode, readonly o: KubeletOptions) {}

  async start(): Promise<number> {
    const tls = this.o.cert && this.o.key ? { cert: this.o.cert, key: this.o.key } : selfSignedCert(this.o.nodeName, this.o.nodeIP);
    this.server = createServer({
      ...tls,
      ca: this.o.clientCA,
      requestCert: true,
      rejectUnauthorized: true,
    }, (req, res) => {
      this.handle(req, res).catch((e) => {
        this.o.log(`kubelet api ${req.url}: ${(e as Error).message}`);
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${(e as Error).message}\n`);
      });
    });
    this.server.on('upgrade', (req, socket, head) => {
      const u = new URL(req.url ?? '/', 'https://kubelet');
      // /{exec|attach}/{namespace}/{pod}[/{uid}]/{container}
      const m = /^\/(exec|attach)\/([^/]+)\/([^/]+)\/(?:[^/]+\/)?([^/]+)$/.exec(u.pathname);
      if (!m) {
        socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      let parts: string[];
      try {
        parts = m.map(decodeURIComponent);
      } catch {
        socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const [, kind, ns, pod, container] = parts;
      this.wss.handleUpgrade(req, socket, head, (ws) => void this.stream(ws, kind as 'exec' | 'attach', ns, pod, container, u.searchParams));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.o.port, this.o.listen, () => resolve());
    });
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : this.o.port;
  }

  async close() {
    this.wss.close();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private send(res: ServerResponse, status: number, body: unknown) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json' });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const u = new URL(req.url ?? '/', 'https://kubelet');
    const p = u.pathname;
    if (p === '/healthz') return this.send(res, 200, 'ok');
    if (p === '/pods' || p === '/runningpods/') {
      const items = [...this.node.pods.values()].flatMap((t) => (t.pod ? [t.pod] : []));
      return this.send(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: {}, items });
    }
    if (p === '/stats/summary') return this.send(res, 200, this.summary());
    let m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(p);
    if (m) return this.logs(req, res, decodeURIComponent(m[1]), decodeURIComponent(m[2]), decodeURIComponent(m[3]), u.searchParams);
    m = /^\/(exec|attach|portForward|run)\//.exec(p);
    if (m) {
      const ws = m[1] === 'exec' || m[1] === 'attach';
      return this.send(res, ws ? 400 : 501, ws ? `${m[1]} needs a WebSocket upgrade (v4/v5.channel.k8s.io)` : `${m[1]} is not supported by berth`);
    }
    return this.send(res, 404, 'not found');
  }

  /** berth exposes no usage figures yet: the summary names the node and its pods so `kubectl top`'s sources do not fail. */
  private summary() {
    const now = new Date().toISOString();
    return {
      node: { nodeName: this.o.nodeName, startTime: now, systemContainers: [] },
      pods: [...this.node.pods.values()].filter((t) => t.pod).map((t) => ({
        podRef: { name: t.pod.metadata.name, namespace: t.pod.metadata.namespace, uid: t.pod.metadata.uid },
        startTime: t.pod.status?.startTime ?? now,
        containers: (t.pod.spec.containers ?? []).map((c: any) => ({ name: c.name, startTime: t.pod.status?.startTime ?? now })),
      })),
    };
  }

  private async logs(req: IncomingMessage, res: ServerResponse, ns: string, pod: string, container: string, q: URLSearchParams) {
    const group = this.node.groupOf(ns, pod);
    if (!group) return this.send(res, 404, `pod ${ns}/${pod} is not on node ${this.o.nodeName}`);
    const num = (k: string) => (q.get(k) !== null && q.get(k) !== '' ? Number(q.get(k)) : undefined);
    const tail = num('tailLines');
    const sinceSeconds = num('sinceSeconds');
    const sinceTime = q.get('sinceTime');
    const sinceMs = sinceSeconds !== undefined ? Date.now() - sinceSeconds * 1000 : sinceTime ? Date.parse(sinceTime) : undefined;
    const filter = new LogFilter({ sinceMs, timestamps: q.get('timestamps') === 'true', limitBytes: num('limitBytes') });
    // Always ask berth for timestamps: they are what sinceSeconds/sinceTime filter on.
    // The ended run before the last restart (previous) has nothing more to follow.
    const previous = q.get('previous') === 'true';
    if (previous || q.get('follow') !== 'true') {
      let content: string;
      try {
        content = await this.node.berth.containers.logs(this.node.o.resourceGroup, group, container, { tail, timestamps: true, previous });
      } catch (e) {
        if (previous && isNotFound(e))
          return this.send(res, 400, `previous terminated container "${container}" in pod "${pod}" not found`);
        throw e;
      }
      return this.send(res, 200, filter.push(content, true));
    }
    const ac = new AbortController();
    req.on('close', () => ac.abort());
    const body = await this.node.berth.containers.followLogs(this.node.o.resourceGroup, group, container, { tail, timestamps: true, signal: ac.signal });
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'transfer-encoding': 'chunked' });
    try {
      for await (const chunk of body) {
        const out = filter.push(Buffer.from(chunk).toString());
        if (out) res.write(out);
        if (filter.exhausted) break;
      }
    } catch {
      // the client went away or berth ended the stream
    }
    ac.abort();
    res.end();
  }

  /**
   * exec and attach over Kubernetes' stream protocol (v5/v4.channel.k8s.io: channel 0 stdin, 1 stdout,
   * 2 stderr, 3 status, 4 resize, 255 close), passed on to berth's exec/attach WebSocket.
   */
  private async stream(ws: WebSocket, kind: 'exec' | 'attach', ns: string, pod: string, container: string, q: URLSearchParams) {
    const frame = (ch: number, data: Buffer | string) => ws.readyState === ws.OPEN && ws.send(Buffer.concat([Buffer.from([ch]), Buffer.from(data)]));
    const finish = (status: object) => {
      frame(CH.error, JSON.stringify({ metadata: {}, ...status }));
      ws.close(1000);
    };
    const failure = (message: string, extra: object = {}) => finish({ status: 'Failure', message, reason: 'InternalError', ...extra });
    const flag = (k: string) => q.get(k) === '1' || q.get(k) === 'true';
    // The API server passes kubectl's -i and -t as input=1 and tty=1.
    const tty = kind === 'exec' && flag('tty');
    const stdin = kind === 'exec' && (flag('input') || flag('stdin'));
    const argv = q.getAll('command');
    const group = this.node.groupOf(ns, pod);
    if (!group) return failure(`pod ${ns}/${pod} is not on node ${this.o.nodeName}`);
    if (kind === 'exec' && argv.length === 0) return failure('no command given');

    // kubectl sends its terminal's size at once: the session starts with it (so the command's
    // first look at its terminal sees it); keystrokes that come meanwhile are kept.
    let upstream: StreamSession | undefined;
    let size: { rows: number; cols: number } | undefined;
    let sized = () => {};
    let stdinClosed = false;
    let closed = false;
    const early: Buffer[] = [];
    ws.on('message', (d) => {
      const b = d as Buffer;
      if (b.length === 0) return;
      const data = b.subarray(1);
      if (b[0] === CH.stdin && stdin && data.length > 0) {
        if (upstream) upstream.write(data);
        else early.push(Buffer.from(data));
      } else if (b[0] === CH.resize && tty) {
        let r: { Width?: unknown; Height?: unknown };
        try {
          r = JSON.parse(data.toString());
        } catch {
          return;
        }
        if (!Number.isInteger(r.Width) || !Number.isInteger(r.Height)) return;
        const next = { rows: r.Height as number, cols: r.Width as number };
        if (upstream) upstream.resize(next);
        else {
          size = next;
          sized();
        }
      } else if (b[0] === CH.close && data[0] === CH.stdin && stdin) {
        // v5: the client closed stdin; berth takes an empty frame as end of input.
        stdinClosed = true;
        upstream?.endInput();
      }
    });
    ws.on('close', () => {
      closed = true;
      upstream?.close(); // berth kills what the session started
    });
    if (tty && !size) await new Promise<void>((r) => {
      sized = r;
      setTimeout(r, 1000);
    });
    if (closed) return;
    const asked = size ?? { rows: 24, cols: 80 };
    const berth = this.node.berth.containers;
    const rg = this.node.o.resourceGroup;
    const onOutput = (d: Buffer) => frame(CH.stdout, d);
    try {
      upstream = kind === 'exec'
        ? await berth.openExec(rg, group, container, { command: quoteCommand(argv), ...(tty && { terminalSize: asked }), onOutput })
        : await berth.openAttach(rg, group, container, { onOutput });
    } catch (e) {
      return failure(`berth ${kind}: ${(e as Error).message}`);
    }
    if (closed) return void upstream.close();
    // A resize that came while the session was being opened
    if (tty && size && size !== asked) upstream.resize(size);
    for (const b of early) upstream.write(b);
    // Without -i the command gets no input at all (as from /dev/null), not an input that never ends.
    if (kind === 'exec' && (!stdin || stdinClosed)) upstream.endInput();
    try {
      const end = await upstream.ended;
      if (end.exitCode !== undefined && end.exitCode !== 0)
        return finish({
          status: 'Failure', message: `command terminated with non-zero exit code: exit status ${end.exitCode}`, reason: 'NonZeroExitCode',
          details: { causes: [{ reason: 'ExitCode', message: String(end.exitCode) }] },
        });
      finish({ status: 'Success' });
    } catch (e) {
      failure(`berth ${kind} ended: ${(e as Error).message}`);
    }
  }
}
