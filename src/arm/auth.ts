// Who is calling and which subscriptions they may use: static API tokens, and service principals
// that get signed tokens from berth's ADFS-style token endpoint (what `az login --service-principal` uses).
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { BerthError, Codes } from '../lib/errors.js';

/** `subscriptions: '*'` may use every subscription. */
export interface TokenGrant {
  token: string;
  subscriptions: string[] | '*';
}

export interface ServicePrincipal {
  clientId: string;
  clientSecret: string;
  /** A GUID: `az login --tenant` insists on one. */
  tenantId: string;
  subscriptions: string[] | '*';
  name?: string;
}

/**
 * Who may speak for a host (the agent API): a join token for a host that joins, the host's own agent
 * credential afterwards. Never a tenant's token, and a tenant's token is never one of these.
 */
export interface AgentAuthenticator {
  /** Throws 401 unless the header holds a join token the cluster accepts. */
  authenticateJoin(header: string | undefined): void;
  /** Throws 401 unless the header holds the agent credential of `host`. */
  authenticateAgent(host: string, header: string | undefined): Promise<void>;
}

export interface Identity {
  id: string;
  tenantId: string;
  subscriptions: string[] | '*';
}

const sha = (s: string) => createHash('sha256').update(s).digest();
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const TOKEN_LIFETIME_S = 3600;
export const DEFAULT_TENANT = '00000000-0000-0000-0000-000000000000';

export class Authenticator {
  private grants: { digest: Buffer; grant: TokenGrant }[];

  constructor(
    grants: (string | TokenGrant)[],
    private principals: ServicePrincipal[],
    private signingKey: Buffer,
  ) {
    this.grants = grants.map((g) => (typeof g === 'string' ? { token: g, subscriptions: '*' as const } : g)).map((grant) => ({ digest: sha(grant.token), grant }));
    if (this.grants.length === 0 && principals.length === 0) throw new Error('no API token or service principal is configured');
  }

  /** The identity behind an `Authorization` header; throws ARM's 401 errors. */
  authenticate(header: string | undefined): Identity {
    if (!header) throw new BerthError(Codes.AuthenticationFailed, "Authentication failed. The 'Authorization' header is missing.", 401);
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new BerthError(Codes.AuthenticationFailed, "Authentication failed. The 'Authorization' header is provided in an invalid format.", 401);
    const d = sha(m[1]);
    for (const g of this.grants) if (timingSafeEqual(g.digest, d)) return { id: 'token', tenantId: DEFAULT_TENANT, subscriptions: g.grant.subscriptions };
    const claims = this.verify(m[1]);
    const sp = claims && this.principals.find((p) => p.clientId === claims.appid && p.tenantId === claims.tid);
    if (!sp) throw new BerthError(Codes.InvalidAuthenticationToken, 'The access token is invalid.', 401);
    return { id: sp.clientId, tenantId: sp.tenantId, subscriptions: sp.subscriptions };
  }

  /** ARM's answer for a subscription the caller may not use. */
  authorize(who: Identity, subscriptionId: string, action: string) {
    if (who.subscriptions === '*' || who.subscriptions.some((s) => s.toLowerCase() === subscriptionId.toLowerCase())) return;
    throw new BerthError(
      'AuthorizationFailed',
      `The client '${who.id}' with object id '${who.id}' does not have authorization to perform action '${action}' over scope '/subscriptions/${subscriptionId}' or the scope is invalid.`,
      403,
    );
  }

  /** OAuth2 client_credentials, as ADFS answers it. */
  issue(form: Record<string, string | undefined>, tenantHint?: string) {
    if (form.grant_type !== 'client_credentials')
      throw new OAuthError('unsupported_grant_type', `The grant type '${form.grant_type ?? ''}' is not supported; use client_credentials.`);
    const sp = this.principals.find((p) => p.clientId === form.client_id);
    const ok = sp && form.client_secret !== undefined && timingSafeEqual(sha(sp.clientSecret), sha(form.client_secret));
    if (!sp || !ok) throw new OAuthError('invalid_client', 'The client id or secret is invalid.');
    if (tenantHint && tenantHint !== 'adfs' && tenantHint !== sp.tenantId) throw new OAuthError('invalid_client', 'The client does not belong to this tenant.');
    const now = Math.floor(Date.now() / 1000);
    const resource = form.resource ?? (form.scope ?? '').replace(/\/?\.default$/, '');
    const payload = { iss: 'berth', aud: resource, appid: sp.clientId, oid: sp.clientId, sub: sp.clientId, tid: sp.tenantId, iat: now, nbf: now, exp: now + TOKEN_LIFETIME_S, jti: randomUUID() };
    const unsigned = `${b64({ typ: 'JWT', alg: 'HS256' })}.${b64(payload)}`;
    const token = `${unsigned}.${createHmac('sha256', this.signingKey).update(unsigned).digest('base64url')}`;
    return {
      token_type: 'Bearer', access_token: token, expires_in: TOKEN_LIFETIME_S, ext_expires_in: TOKEN_LIFETIME_S,
      expires_on: String(now + TOKEN_LIFETIME_S), not_before: String(now), resource,
    };
  }

  tenants(): string[] {
    return [...new Set([DEFAULT_TENANT, ...this.principals.map((p) => p.tenantId)])];
  }

  private verify(token: string): { appid: string; tid: string } | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const expect = createHmac('sha256', this.signingKey).update(`${parts[0]}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2], 'base64url');
    if (got.length !== expect.length || !timingSafeEqual(got, expect)) return undefined;
    try {
      const c = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
      return typeof c.exp === 'number' && c.exp > Date.now() / 1000 ? c : undefined;
    } catch {
      return undefined;
    }
  }
}

export class OAuthError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}
