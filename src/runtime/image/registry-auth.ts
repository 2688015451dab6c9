// Registry authentication: the API's auth challenge, credentials chosen by host, and Bearer tokens (fetched, cached) or Basic auth per request.

import { BerthError, Codes } from '../../lib/errors.js';
import { DEFAULT_REGISTRY } from '../../lib/image-reference.js';
import type { RegistryCredentials } from '../types.js';
import { sha256Hex } from './manifest.js';

/** Parses `WWW-Authenticate: Bearer realm="…",service="…",scope="a:b:pull,push"` (quoted values may hold commas). */
export function parseChallenge(header: string | null): { scheme: string; params: Record<string, string> } | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p: RegExpExecArray | null; (p = re.exec(m[2]!)) !== null; ) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** Credentials apply to a registry by host (users write "https://host/", "host", or Docker Hub's many names). */
export function credentialsFor(registry: string, credentials: readonly RegistryCredentials[] = []): RegistryCredentials | undefined {
  const norm = (s: string): string => {
    const host = s.trim().toLowerCase().replace(/^[a-z]+:\/\//, '').split('/')[0] ?? '';
    return DOCKER_HUB_ALIASES.has(host) ? DEFAULT_REGISTRY : host;
  };
  const target = norm(registry);
  return credentials.find((c) => norm(c.server) === target);
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Bearer tokens per (realm, service, scope, user), reused until shortly before they expire. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  get(key: string): string | undefined {
    const t = this.tokens.get(key);
    if (!t) return undefined;
    if (Date.now() >= t.expiresAt) {
      this.tokens.delete(key);
      return undefined;
    }
    return t.token;
  }
  set(key: string, token: string, expiresInSeconds: number): void {
    // A margin so a token never expires between being picked and reaching the registry.
    const lifetime = Math.max(0, expiresInSeconds - 10) * 1000;
    if (lifetime > 0) this.tokens.set(key, { token, expiresAt: Date.now() + lifetime });
  }
  delete(key: string): void {
    this.tokens.delete(key);
  }
}

type Challenge = NonNullable<ReturnType<typeof parseChallenge>>;

/** A fetch that maps network failures to catalogue errors; `what` names the server in them. */
export type RegistryFetch = (url: string, init: { headers?: Record<string, string> }, what: string) => Promise<Response>;

/** How to authorize requests to one registry with one set of credentials, learnt from its challenge. */
export class RegistryAuth {
  private challenge: Challenge | null | undefined; // undefined = not pinged yet, null = no auth
  private pinging: Promise<void> | undefined;

  constructor(
    private readonly registry: string,
    private readonly baseUrl: string,
    readonly creds: RegistryCredentials | undefined,
    private readonly tokenCache: TokenCache,
    private readonly fetch: RegistryFetch,
  ) {}

  /** GET /v2/: learns which auth scheme the registry wants before the first real request. */
  async ping(): Promise<void> {
    const res = await this.fetch(`${this.baseUrl}/v2/`, {}, `registry ${this.registry}`);
    await res.body?.cancel();
    if (res.status === 401) {
      this.challenge = parseChallenge(res.headers.get('www-authenticate')) ?? null;
    } else if (res.ok || res.status === 404) {
      this.challenge = null;
    } else {
      throw new BerthError(Codes.InaccessibleImage, `The registry '${this.registry}' answered ${res.status} to its API version check.`);
    }
  }

  ensurePinged(): Promise<void> {
    if (this.challenge !== undefined) return Promise.resolve();
    this.pinging ??= this.ping().finally(() => {
      this.pinging = undefined;
    });
    return this.pinging;
  }

  /** A 401's new challenge replaces the one learnt before. */
  rechallenged(challenge: Challenge): void {
    this.challenge = challenge;
  }

  /** The headers that authorize a request for `scope`; `fresh` asks for a new token over a cached one. */
  async headers(scope: string, fresh: boolean): Promise<Record<string, string>> {
    const ch = this.challenge;
    if (!ch) return {};
    if (ch.scheme === 'basic') {
      if (!this.creds) return {};
      return { authorization: `Basic ${basic(this.creds)}` };
    }
    if (ch.scheme !== 'bearer') {
      throw new BerthError(Codes.RegistryUnauthorized, `The registry '${this.registry}' asks for unsupported auth scheme '${ch.scheme}'.`);
    }
    const realm = ch.params.realm;
    if (!realm) throw new BerthError(Codes.RegistryUnauthorized, `The registry '${this.registry}' sent a Bearer challenge without a realm.`);
    const service = ch.params.service ?? '';
    const key = [realm, service, scope, this.creds?.username ?? '', this.creds ? sha256Hex(this.creds.password) : ''].join('\n');
    if (fresh) this.tokenCache.delete(key);
    const cached = this.tokenCache.get(key);
    if (cached) return { authorization: `Bearer ${cached}` };

    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    url.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (this.creds) headers.authorization = `Basic ${basic(this.creds)}`;
    const res = await this.fetch(url.toString(), { headers }, `token service of ${this.registry}`);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new BerthError(
        Codes.RegistryUnauthorized,
        this.creds
          ? `The token service of registry '${this.registry}' rejected the credentials of user '${this.creds.username}'.`
          : `The registry '${this.registry}' requires credentials, and none were given for it.`,
        400,
        'imageRegistryCredentials',
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new BerthError(Codes.InaccessibleImage, `The token service of registry '${this.registry}' answered ${res.status}.`);
    }
    let body: any;
    try {
      body = await res.json();
    } catch {
      throw new BerthError(Codes.InaccessibleImage, `The token service of registry '${this.registry}' answered with invalid JSON.`);
    }
    const token: unknown = body?.token ?? body?.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new BerthError(Codes.InaccessibleImage, `The token service of registry '${this.registry}' answered without a token.`);
    }
    // The spec's default lifetime is 60 s when expires_in is absent.
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    this.tokenCache.set(key, token, expiresIn);
    return { authorization: `Bearer ${token}` };
  }
}

const basic = (c: RegistryCredentials): string => Buffer.from(`${c.username}:${c.password}`).toString('base64');
