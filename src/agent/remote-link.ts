// The remote ControlPlaneLink: the control plane's agent API over HTTPS (instances/cluster/agent-api.ts has the wire),
// failing over between replicas, following the specs from the last revision it delivered.
import type { IncomingMessage } from 'node:http';
import { request, Agent as HttpsAgent } from 'node:https';
import { BerthError, Codes, errorFromWire } from '../lib/errors.js';
import { onJsonLines, readAll, refusalOf } from '../lib/http-response.js';
import type { ControlPlaneLink, HostRegistration, HostResume, LeaseTerms, OverlayAssignment, OverlayPeers, SpecEvent } from './link.js';
import type { GroupStatus } from './types.js';
import type { PublishedPort } from '../runtime/types.js';

export interface RemoteLinkOptions {
  /** The control plane's replicas (`https://host:port`), tried in order; the one that answered last is kept. */
  endpoints: string[];
  host: string;
  /** This host's agent credential. */
  credential: string;
  /** The CA to trust the control plane by (PEM); the system's when absent. */
  ca?: string;
  /** Reconnect delays of the spec stream: from `minBackoffMs`, doubling to `maxBackoffMs`. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A spec stream silent this long is taken for dead (the server says it is alive every 10 s). Default 30 s. */
  idleTimeoutMs?: number;
}

/** What a join answers (agent-api.ts). */
export interface JoinResponse {
  host: string;
  credential: string;
  caCert: string;
  signingPublicKey: string;
  certificate: string;
}

/** How long a request waits to connect and for its answer's start. */
const REQUEST_TIMEOUT_MS = 10_000;

/** Statuses per request: well under the API's bound of 1000. */
const STATUS_BATCH = 200;

const unreachable = (url: string, e: Error) => new BerthError(Codes.ServiceUnavailable, `The control plane (${url}) could not be reached: ${e.message}.`, 503);

/**
 * Talks to the first of `endpoints` that answers (a refusal is an answer; only a failed connection moves on),
 * remembering it in `current`.
 */
class Endpoints {
  current = 0;
  readonly agent: HttpsAgent;

  constructor(
    readonly urls: string[],
    ca: string | undefined,
  ) {
    if (urls.length === 0) throw new BerthError(Codes.InvalidRequestContent, 'No control plane endpoint is given.', 400, 'join');
    this.agent = new HttpsAgent({ keepAlive: true, ...(ca && { ca }) });
  }

  /** Opens a request and resolves with its response once the status says it is one to read (2xx). */
  async open(method: string, path: string, auth: string, body?: unknown, signal?: AbortSignal, timeoutMs = REQUEST_TIMEOUT_MS): Promise<IncomingMessage> {
    let last: Error | undefined;
    for (let i = 0; i < this.urls.length; i++) {
      const at = (this.current + i) % this.urls.length;
      try {
        const res = await this.once(this.urls[at], method, path, auth, body, signal, timeoutMs);
        this.current = at;
        return res;
      } catch (e) {
        if (e instanceof BerthError && e.code !== Codes.ServiceUnavailable) {
          this.current = at;
          throw e;
        }
        last = e as Error;
        if (signal?.aborted) throw e;
      }
    }
    throw last!;
  }

  async json<T>(method: string, path: string, auth: string, body?: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    const res = await this.open(method, path, auth, body, undefined, timeoutMs);
    const text = (await readAll(res)).toString();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private once(base: string, method: string, path: string, auth: string, body: unknown, signal: AbortSignal | undefined, timeoutMs: number): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(`${base}${path}`, {
        method, agent: this.agent, signal, timeout: timeoutMs,
        headers: { authorization: `Bearer ${auth}`, ...(payload !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
      }, (res) => {
        if (res.statusCode! >= 200 && res.statusCode! < 300) return resolve(res);
        void readAll(res).then((b) => reject(refusalOf(res.statusCode!, b, `The control plane (${base})`)), (e: Error) => reject(unreachable(base, e)));
      });
      // the timeout covers connecting and the answer's start; a stream's silence is watched by its reader. The
      // socket goes with the request: after a partition the next request connects anew rather than wait on it
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('response', () => req.setTimeout(0));
      req.on('error', (e) => reject(signal?.aborted ? e : unreachable(base, e)));
      req.end(payload);
    });
  }
}

/** Joins the cluster once, with a join token: the host's credential, the cluster CA, the control plane's key, a certificate for `csr`. */
export async function joinCluster(o: { endpoints: string[]; token: string; ca?: string; name: string; addresses: string[]; csr: string }): Promise<JoinResponse> {
  const eps = new Endpoints(o.endpoints, o.ca);
  try {
    return await eps.json<JoinResponse>('POST', '/agent/v1/join', o.token, { name: o.name, addresses: o.addresses, csr: o.csr });
  } finally {
    eps.agent.destroy();
  }
}

export class RemoteLink implements ControlPlaneLink {
  private eps: Endpoints;
  private streams = new Set<() => void>();
  private path: string;
  private heartbeatTimeoutMs = REQUEST_TIMEOUT_MS;

  constructor(private o: RemoteLinkOptions) {
    this.eps = new Endpoints(o.endpoints, o.ca);
    this.path = `/agent/v1/hosts/${encodeURIComponent(o.host)}`;
  }

  /** The replica the link speaks to now. */
  get endpoint() {
    return this.eps.urls[this.eps.current];
  }

  async register(host: HostRegistration): Promise<LeaseTerms> {
    const terms = await this.eps.json<LeaseTerms>('PUT', this.path, this.o.credential, host);
    this.heartbeatTimeoutMs = terms.leaseTtlMs / 4;
    return terms;
  }

  /** Gives up within a quarter of the lease (the follower beats on meanwhile): a lost beat never costs the lease. */
  heartbeat(): Promise<LeaseTerms> {
    return this.eps.json<LeaseTerms>('POST', `${this.path}/heartbeat`, this.o.credential, undefined, this.heartbeatTimeoutMs);
  }

  /** This host's share of the cluster overlay (its subnet claimed now if new); undefined: the cluster has none. */
  async overlay(): Promise<OverlayAssignment | undefined> {
    try {
      return await this.eps.json<OverlayAssignment>('POST', `${this.path}/overlay`, this.o.credential);
    } catch (e) {
      // a control plane without an overlay (or from before overlays) has nothing to give
      if (e instanceof BerthError && e.status === 404) return undefined;
      throw e;
    }
  }

  peers(): Promise<OverlayPeers> {
    return this.eps.json('GET', `${this.path}/peers`, this.o.credential);
  }

  resume(): Promise<HostResume> {
    return this.eps.json('GET', `${this.path}/resume`, this.o.credential);
  }

  /** A new certificate for this host's addresses (when they changed since the join). */
  async renewCertificate(addresses: string[], csr: string): Promise<string> {
    return (await this.eps.json<{ certificate: string }>('POST', `${this.path}/certificate`, this.o.credential, { addresses, csr })).certificate;
  }

  async reportStatuses(statuses: GroupStatus[]): Promise<void> {
    for (let i = 0; i < statuses.length; i += STATUS_BATCH)
      await this.eps.json('POST', `${this.path}/statuses`, this.o.credential, statuses.slice(i, i + STATUS_BATCH));
  }

  async reportRemoved(uid: string): Promise<void> {
    await this.eps.json('POST', `${this.path}/groups/${encodeURIComponent(uid)}/removed`, this.o.credential);
  }

  async reportHeldPorts(ports: PublishedPort[]): Promise<void> {
    await this.eps.json('PUT', `${this.path}/heldports`, this.o.credential, { ports });
  }

  watchSpecs(fromRevision: number, onEvent: (e: SpecEvent) => void, onError: (e: Error) => void): () => void {
    const minBackoff = this.o.minBackoffMs ?? 200;
    const maxBackoff = this.o.maxBackoffMs ?? 5000;
    const idleMs = this.o.idleTimeoutMs ?? 30_000;
    let last = fromRevision;
    let backoff = minBackoff;
    let stopped = false;
    let ac = new AbortController();
    let retry: NodeJS.Timeout | undefined;
    const stop = () => {
      stopped = true;
      clearTimeout(retry);
      ac.abort();
      this.streams.delete(stop);
    };
    this.streams.add(stop);
    const connect = async () => {
      if (stopped) return;
      ac = new AbortController();
      let idle: NodeJS.Timeout | undefined;
      try {
        const res = await this.eps.open('GET', `${this.path}/specs?fromRevision=${last}`, this.o.credential, undefined, ac.signal);
        await new Promise<void>((resolve, reject) => {
          const alive = () => {
            clearTimeout(idle);
            idle = setTimeout(() => res.destroy(new Error(`the spec stream was silent for ${idleMs / 1000} s`)), idleMs);
          };
          alive();
          res.on('data', alive);
          onJsonLines(res, (line) => {
            const m = line as { events?: SpecEvent[]; error?: unknown };
            if (m.error) return reject(errorFromWire(m.error, 500, 'The spec stream'));
            for (const e of m.events ?? []) {
              if (stopped) return;
              onEvent(e);
              last = e.revision;
            }
            backoff = minBackoff; // a stream that delivered is a working one
          });
          res.on('end', () => reject(new BerthError(Codes.ServiceUnavailable, 'The control plane ended the spec stream.', 503)));
          res.on('error', (e) => reject(unreachable(this.endpoint, e)));
        });
      } catch (e) {
        if (stopped) return;
        onError(e as Error);
      } finally {
        clearTimeout(idle);
      }
      if (stopped) return;
      // a link's reconnects alone keep no process alive
      retry = setTimeout(() => void connect(), backoff).unref();
      backoff = Math.min(backoff * 2, maxBackoff);
    };
    void connect();
    return stop;
  }

  async close(): Promise<void> {
    for (const stop of [...this.streams]) stop();
    this.eps.agent.destroy();
  }
}
