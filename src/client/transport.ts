// How the client speaks HTTP: one endpoint, its credential and CA, JSON in and out, bounded retries, every failure an ArmError.
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { Codes } from '../lib/errors.js';
import { ArmError, errorFromResponse, unreachable } from './errors.js';

/** What Azure's core-auth calls a TokenCredential: `@azure/identity` credentials fit as they are. */
export interface TokenCredential {
  getToken(scopes: string | string[], options?: { abortSignal?: AbortSignal }): Promise<{ token: string; expiresOnTimestamp: number } | null>;
}

/** PEM certificates to trust instead of the system's (and NODE_EXTRA_CA_CERTS'). */
export type CaCertificates = string | Buffer | (string | Buffer)[];

export interface TransportOptions {
  /** `https://host:port` (or `http://` on loopback): ARM's root, where `/subscriptions/…` paths start. */
  endpoint: string;
  credential?: TokenCredential;
  /** The token's audience (ARM's resource id); default the endpoint with a trailing slash, as az registers it. */
  audience?: string;
  ca?: CaCertificates;
  /** Retries of a safe request after 429, 503 or a broken connection. Default 3. */
  maxRetries?: number;
  /** First retry delay when the answer names none, doubled per retry. Default 250 ms. */
  retryDelayMs?: number;
  /** No retry waits longer, whatever Retry-After says (a longer one ends the retries). Default 30 s. */
  maxRetryDelayMs?: number;
  /** How long a request may wait for its answer (a stream: for its headers). Default 60 s. */
  timeoutMs?: number;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  method: string;
  /** A path under the endpoint, or an absolute URL the endpoint gave (nextLink, an operation's URL). */
  path: string;
  query?: Query;
  /** JSON body. */
  body?: unknown;
  /** A form body instead (OAuth2 token requests). */
  form?: URLSearchParams;
  /** Sent unless the URL has one already; null sends none. */
  apiVersion: string | null;
  /** Overrides what the method says about retrying (GET, HEAD, PUT, PATCH and DELETE are idempotent in ARM). */
  idempotent?: boolean;
  /** Sent without a token (health checks, login discovery). */
  anonymous?: boolean;
  /** More request headers (e.g. If-Match). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface ArmResponse<T> {
  status: number;
  headers: IncomingHttpHeaders;
  body: T;
}

export interface StreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: AsyncIterable<Buffer>;
  /** Ends the stream early (the connection is dropped). */
  close(): void;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE']);
const RETRYABLE_STATUS = new Set([429, 503]);
// Errors after which a request may or may not have reached the server; ECONNREFUSED is the one that surely did not.
const BROKEN_CONNECTION = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function retryAfterMs(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  const v = headers['retry-after'];
  if (typeof v !== 'string' || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const headerOf = (h: IncomingHttpHeaders, name: string) => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

export class Transport {
  readonly endpoint: string;
  private readonly agent: HttpAgent;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly timeoutMs: number;

  constructor(readonly o: TransportOptions) {
    const u = new URL(o.endpoint);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`endpoint ${o.endpoint}: only http and https`);
    this.endpoint = u.origin + u.pathname.replace(/\/$/, '');
    // Keep-alive: an informer and a reconcile loop make many small requests to one host.
    this.agent = u.protocol === 'https:' ? new HttpsAgent({ keepAlive: true, ...(o.ca && { ca: o.ca }) }) : new HttpAgent({ keepAlive: true });
    this.retries = o.maxRetries ?? 3;
    this.retryDelayMs = o.retryDelayMs ?? 250;
    this.maxRetryDelayMs = o.maxRetryDelayMs ?? 30_000;
    this.timeoutMs = o.timeoutMs ?? 60_000;
  }

  url(path: string, query: Query = {}, apiVersion: string | null = null): URL {
    const u = new URL(/^https?:\/\//.test(path) ? path : this.endpoint + path);
    if (apiVersion !== null && !u.searchParams.has('api-version')) u.searchParams.set('api-version', apiVersion);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  /** A request whose answer is read whole: JSON (or nothing) on success, an ArmError otherwise. */
  async request<T = unknown>(o: RequestOptions): Promise<ArmResponse<T>> {
    const { res, text } = await this.withRetries(o, async (res) => ({ res, text: await readText(res) }));
    const body = parseJson<T>(text, res);
    return { status: res.statusCode!, headers: res.headers, body };
  }

  /** A request whose answer is a stream (berth's watch and log follow); only opening it is retried. */
  async stream(o: RequestOptions): Promise<StreamResponse> {
    const res = await this.withRetries(o, async (r) => r, true);
    return {
      status: res.statusCode!,
      headers: res.headers,
      body: res,
      close: () => res.destroy(),
    };
  }

  /** A WebSocket to a URI the endpoint gave (exec, attach), trusting the same CA. */
  webSocket(uri: string, headers: Record<string, string> = {}): WebSocket {
    return new WebSocket(uri, { headers, ...(this.o.ca && { ca: this.o.ca }) });
  }

  /** Drops idle keep-alive connections. */
  close() {
    this.agent.destroy();
  }

  private async withRetries<R>(o: RequestOptions, read: (res: IncomingMessage) => Promise<R>, streaming = false): Promise<R> {
    const idempotent = o.idempotent ?? IDEMPOTENT.has(o.method);
    const url = this.url(o.path, o.query, o.apiVersion);
    for (let attempt = 0; ; attempt++) {
      let res: IncomingMessage;
      const failed = async (e: unknown) => {
        const err = e as NodeJS.ErrnoException;
        // an answer's own error (the credential's token endpoint refused), or the caller gave up
        if (e instanceof ArmError || err.name === 'AbortError' || o.signal?.aborted) throw e;
        const maybeSent = BROKEN_CONNECTION.has(err.code ?? '') || err.message === 'aborted';
        const wait = attempt < this.retries && (err.code === 'ECONNREFUSED' || (maybeSent && idempotent)) ? this.backoff(attempt) : undefined;
        if (wait === undefined) throw unreachable(url.toString(), err);
        await sleep(wait, undefined, { signal: o.signal });
      };
      try {
        res = await this.send(o, url, streaming);
      } catch (e) {
        await failed(e);
        continue;
      }
      const status = res.statusCode ?? 0;
      if (status < 400) {
        try {
          return await read(res);
        } catch (e) {
          // the connection broke while the answer was read
          await failed(e);
          continue;
        }
      }
      const text = await readText(res).catch(() => '');
      const wait = attempt < this.retries && idempotent && RETRYABLE_STATUS.has(status) ? this.backoff(attempt, retryAfterMs(res.headers)) : undefined;
      if (wait === undefined) throw errorFromResponse(status, text, headerOf(res.headers, 'x-ms-request-id'));
      await sleep(wait, undefined, { signal: o.signal });
    }
  }

  /** The delay before retry `attempt` + 1, or undefined when the server asks for longer than we wait. */
  private backoff(attempt: number, asked?: number): number | undefined {
    if (asked !== undefined) return asked <= this.maxRetryDelayMs ? asked : undefined;
    const exp = Math.min(this.maxRetryDelayMs, this.retryDelayMs * 2 ** attempt);
    return exp / 2 + Math.random() * (exp / 2); // jitter: clients that failed together do not retry together
  }

  private async send(o: RequestOptions, url: URL, streaming: boolean): Promise<IncomingMessage> {
    const headers: Record<string, string | number> = { ...o.headers, accept: 'application/json', 'user-agent': 'berth-client' };
    if (!o.anonymous && this.o.credential) {
      const token = await this.o.credential.getToken(`${this.audience()}.default`, { abortSignal: o.signal });
      if (token) headers.authorization = `Bearer ${token.token}`;
    }
    const payload = o.form ? Buffer.from(o.form.toString()) : o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    if (payload) {
      headers['content-type'] = o.form ? 'application/x-www-form-urlencoded' : 'application/json';
      headers['content-length'] = payload.length;
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(url, { method: o.method, headers, agent: this.agent, signal: o.signal });
      // Until the answer's headers (a stream) or its end (anything else), not longer.
      const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' })), this.timeoutMs);
      req.once('response', (res) => {
        if (streaming) clearTimeout(timer);
        else res.once('close', () => clearTimeout(timer));
        resolve(res);
      });
      req.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.end(payload);
    });
  }

  private audience() {
    const a = this.o.audience ?? `${this.endpoint}/`;
    return a.endsWith('/') ? a : `${a}/`;
  }
}

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson<T>(text: string, res: IncomingMessage): T {
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ArmError(Codes.UnexpectedResponse, `HTTP ${res.statusCode}: the answer is not JSON: ${text.slice(0, 200)}`, 502, undefined, headerOf(res.headers, 'x-ms-request-id'));
  }
}
