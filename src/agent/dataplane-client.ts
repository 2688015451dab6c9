// The control plane's HostDataPlane for a remote host: its agent's own HTTPS API (dataplane-wire.ts), reached with
// the host's pinned certificate and a token signed for each call.
import { request, Agent as HttpsAgent } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { PeerCertificate } from 'node:tls';
import { PassThrough, Writable } from 'node:stream';
import { WebSocket } from 'ws';
import { BerthError, Codes, errorFromWire } from '../lib/errors.js';
import { onJsonLines, readAll, refusalOf } from '../lib/http-response.js';
import { Channel, containerPath, fingerprintOf, portsQuery, usagePath, type ControlFrame, type DataPlaneClaims, type ExecRequest } from './dataplane-wire.js';
import type { HostDataPlane } from './link.js';
import type { PublishedPort } from './spec.js';
import type { ExecResult } from '../runtime/types.js';
import type { ExecHandle, ExecOptions, GroupUsage, LogOptions, TerminalSize } from './types.js';

export interface RemoteHostOptions {
  host: string;
  /** The agent's API, `https://address:port`. */
  url: string;
  /** The certificate the agent registered (lower-case hex SHA-256): nothing else is taken for it. */
  certSha256: string;
  /** The cluster CA (PEM) that issued it. */
  ca: string;
  /** A token for one call (signed by the control plane's key). */
  mint: (claims: DataPlaneClaims) => string;
}

const logQuery = (o: LogOptions) => {
  const q = new URLSearchParams();
  if (o.tail !== undefined) q.set('tail', String(o.tail));
  if (o.timestamps) q.set('timestamps', 'true');
  if (o.previous) q.set('previous', 'true');
  return q;
};

export class RemoteHostDataPlane implements HostDataPlane {
  private agent: HttpsAgent;
  private tls: { ca: string; checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined };

  constructor(private o: RemoteHostOptions) {
    // pinned: the certificate the host registered, whatever name or address it answers on
    const checkServerIdentity = (_host: string, cert: PeerCertificate) =>
      fingerprintOf(cert.fingerprint256) === o.certSha256 ? undefined : new Error(`the certificate of host '${o.host}' is not the one it registered`);
    this.tls = { ca: o.ca, checkServerIdentity };
    this.agent = new HttpsAgent({ keepAlive: true, ...this.tls });
  }

  async logs(uid: string, container: string, opts: LogOptions): Promise<string> {
    const res = await this.get(`${containerPath(uid, container, 'logs')}?${logQuery(opts)}`, { op: 'logs', uid, container });
    return (await readAll(res)).toString();
  }

  async followLogs(uid: string, container: string, opts: LogOptions, onChunk: (s: string) => void, signal: AbortSignal): Promise<void> {
    const q = logQuery(opts);
    q.set('follow', 'true');
    const res = await this.get(`${containerPath(uid, container, 'logs')}?${q}`, { op: 'logs', uid, container }, signal);
    let ended = false;
    let failure: BerthError | undefined;
    await new Promise<void>((resolve) => {
      onJsonLines(res, (line) => {
        const m = line as { chunk?: string; end?: boolean; error?: unknown };
        if (typeof m.chunk === 'string') onChunk(m.chunk);
        else if (m.end) ended = true;
        else if (m.error) failure = errorFromWire(m.error, 500, `host '${this.o.host}'`);
      });
      res.on('end', resolve);
      res.on('close', resolve);
      res.on('error', resolve);
    });
    if (failure) throw failure;
    if (!ended && !signal.aborted) throw this.unreachable(new Error('the stream broke off'));
  }

  async exec(uid: string, container: string, argv: string[], opts: ExecOptions = {}): Promise<ExecHandle> {
    const spec: ExecRequest = { argv, opts };
    const url = `${this.o.url.replace(/^https:/, 'wss:')}${containerPath(uid, container, 'exec')}?spec=${encodeURIComponent(JSON.stringify(spec))}`;
    const ws = new WebSocket(url, { ...this.tls, headers: { authorization: `Bearer ${this.o.mint({ host: this.o.host, op: 'exec', uid, container })}` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => void readAll(res).then((b) => reject(refusalOf(res.statusCode ?? 502, b, this.what)), reject));
      ws.once('error', (e) => reject(this.unreachable(e)));
    });
    return new RemoteExec(ws, opts.tty !== undefined);
  }

  async usage(uid: string, since: number): Promise<GroupUsage[]> {
    return this.json<GroupUsage[]>(`${usagePath(uid)}?since=${Math.floor(since)}`, { op: 'usage', uid });
  }

  async cachedImages(): Promise<string[]> {
    return this.json<string[]>('/v1/images', { op: 'images' });
  }

  async unavailablePorts(ports: PublishedPort[]): Promise<PublishedPort[]> {
    if (ports.length === 0) return [];
    return this.json<PublishedPort[]>(`/v1/ports?unavailable=${encodeURIComponent(portsQuery(ports))}`, { op: 'ports' });
  }

  close() {
    this.agent.destroy();
  }

  private async json<T>(path: string, claims: Omit<DataPlaneClaims, 'host'>): Promise<T> {
    return JSON.parse((await readAll(await this.get(path, claims))).toString()) as T;
  }

  private get(path: string, claims: Omit<DataPlaneClaims, 'host'>, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request(`${this.o.url}${path}`, {
        agent: this.agent, signal, headers: { authorization: `Bearer ${this.o.mint({ host: this.o.host, ...claims })}` },
      }, (res) => {
        if (res.statusCode === 200) return resolve(res);
        void readAll(res).then((b) => reject(refusalOf(res.statusCode ?? 502, b, this.what)), reject);
      });
      req.on('error', (e) => reject(signal?.aborted ? e : this.unreachable(e)));
      req.end();
    });
  }

  private get what() {
    return `The host '${this.o.host}'`;
  }

  private unreachable(e: Error) {
    return new BerthError(Codes.ServiceUnavailable, `The host '${this.o.host}' (${this.o.url}) could not be reached: ${e.message}.`, 503);
  }
}

/** A process on a remote host, as the local one looks: its streams, resize, kill, and how it ended. */
class RemoteExec implements ExecHandle {
  readonly stdin: Writable;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly done: Promise<ExecResult>;

  constructor(
    private ws: WebSocket,
    readonly tty: boolean,
  ) {
    const control = (f: ControlFrame) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(f));
    this.stdin = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (ws.readyState !== ws.OPEN) return cb();
        ws.send(Buffer.concat([Buffer.of(Channel.stdin), chunk]), () => cb());
      },
      final: (cb) => {
        control({ eof: true });
        cb();
      },
    });
    // the caller reads slower than the host sends: stop reading the socket until it catches up
    for (const s of [this.stdout, this.stderr]) s.on('drain', () => ws.resume());
    let exit: ExecResult | undefined;
    this.done = new Promise<ExecResult>((resolve) => {
      ws.on('message', (data, isBinary) => {
        const b = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
        if (isBinary) {
          const out = b[0] === Channel.stderr ? this.stderr : this.stdout;
          if (!out.write(b.subarray(1))) ws.pause();
          return;
        }
        try {
          const f = JSON.parse(b.toString()) as ControlFrame;
          if ('exit' in f) exit = f.exit;
        } catch {
          /* not ours: ignored */
        }
      });
      ws.on('close', () => {
        this.stdout.end();
        this.stderr.end();
        resolve(exit ?? { error: 'the connection to the host was lost' });
      });
      ws.on('error', () => undefined); // told by the close
    });
  }

  resize(size: TerminalSize) {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify({ resize: size } satisfies ControlFrame));
  }

  kill() {
    this.ws.close();
  }
}
