// Credentials for the client: a static bearer token, or a service principal that signs in as `az login --service-principal` does.
import { Codes } from '../lib/errors.js';
import { ArmError } from './errors.js';
import { Transport, type CaCertificates, type TokenCredential } from './transport.js';

/** A token that never changes (berth's API tokens). */
export class StaticTokenCredential implements TokenCredential {
  constructor(private readonly token: string) {}
  async getToken() {
    return { token: this.token, expiresOnTimestamp: Number.MAX_SAFE_INTEGER };
  }
}

export interface ServicePrincipalOptions {
  /**
   * The login authority: berth's `https://host:port/adfs` (what `az cloud register
   * --endpoint-active-directory` is given), or Azure's `https://login.microsoftonline.com/<tenant>`.
   */
  authority: string;
  clientId: string;
  clientSecret: string;
  /** Trust for the login endpoint (berth's CA). */
  ca?: CaCertificates;
  /** Get a new token this long before the current one expires (at most half its lifetime). Default 5 min. */
  refreshBeforeMs?: number;
  now?: () => number;
}

interface Cached {
  token: string;
  expiresOnTimestamp: number;
  refreshAt: number;
}

/**
 * OAuth2 client credentials, as az does it: the token endpoint from the authority's OpenID
 * configuration, then a POST of the client id and secret for the resource. Tokens are kept per
 * scope and replaced before they expire; a refresh that fails while the old token is still valid
 * keeps the old one (the next call tries again).
 */
export class ServicePrincipalCredential implements TokenCredential {
  private readonly http: Transport;
  private tokenEndpoint?: Promise<string>;
  private readonly cache = new Map<string, Cached>();
  private readonly refreshing = new Map<string, Promise<Cached>>();
  private readonly now: () => number;

  constructor(private readonly o: ServicePrincipalOptions) {
    this.http = new Transport({ endpoint: o.authority, ca: o.ca });
    this.now = o.now ?? Date.now;
  }

  async getToken(scopes: string | string[]) {
    const scope = Array.isArray(scopes) ? scopes[0] : scopes;
    const cached = this.cache.get(scope);
    if (cached && this.now() < cached.refreshAt) return cached;
    let pending = this.refreshing.get(scope);
    if (!pending) {
      pending = this.fetchToken(scope).finally(() => this.refreshing.delete(scope));
      this.refreshing.set(scope, pending);
    }
    try {
      const fresh = await pending;
      this.cache.set(scope, fresh);
      return fresh;
    } catch (e) {
      if (cached && this.now() < cached.expiresOnTimestamp) return cached;
      throw e;
    }
  }

  private discover(): Promise<string> {
    this.tokenEndpoint ??= this.http
      .request<{ token_endpoint?: string }>({ method: 'GET', path: `${this.http.endpoint}/.well-known/openid-configuration`, apiVersion: null, anonymous: true })
      .then((r) => {
        if (!r.body?.token_endpoint) throw new ArmError(Codes.UnexpectedResponse, `${this.o.authority}: the OpenID configuration names no token_endpoint`, 502);
        return r.body.token_endpoint;
      })
      .catch((e) => {
        this.tokenEndpoint = undefined; // discovery is tried again on the next call
        throw e;
      });
    return this.tokenEndpoint;
  }

  private async fetchToken(scope: string): Promise<Cached> {
    const endpoint = await this.discover();
    // v1 and ADFS endpoints take the resource; v2 ones the scope.
    const resource = scope.replace(/\.default$/, '');
    const form = new URLSearchParams({
      grant_type: 'client_credentials', client_id: this.o.clientId, client_secret: this.o.clientSecret,
      ...(endpoint.includes('/v2.0/') ? { scope } : { resource }),
    });
    const obtained = this.now();
    const res = await fetchForm(this.http, endpoint, form);
    const lifetimeMs = Number(res.expires_in) * 1000;
    if (!res.access_token || !Number.isFinite(lifetimeMs)) throw new ArmError(Codes.UnexpectedResponse, `${endpoint}: the token answer has no access_token or expires_in`, 502);
    const margin = Math.min(this.o.refreshBeforeMs ?? 300_000, lifetimeMs / 2);
    return { token: res.access_token, expiresOnTimestamp: obtained + lifetimeMs, refreshAt: obtained + lifetimeMs - margin };
  }
}

/** A form POST (the token request), through the transport's retries and errors. */
async function fetchForm(http: Transport, url: string, form: URLSearchParams) {
  const r = await http.request<{ access_token?: string; expires_in?: string | number }>({
    method: 'POST', path: url, apiVersion: null, anonymous: true, idempotent: true, form,
  });
  return r.body ?? {};
}
