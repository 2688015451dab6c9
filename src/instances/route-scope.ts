// Who may call a route: every ARM route declares it, and authorization reads it from the route that matched.

declare module 'fastify' {
  interface FastifyContextConfig {
    scope?: Scope;
  }
  interface FastifyInstance {
    /** Every route registered, with its scope (what the cross-tenant tests walk). */
    routeTable: RouteInfo[];
  }
}

export interface RouteInfo {
  method: string;
  url: string;
  scope: Scope;
}

/**
 * `public`: liveness, cloud metadata, the login endpoints a client calls before it has a token.
 * `caller`: any authenticated caller; the route shows only what the caller's grants allow.
 * `subscription`: the route's `:sub` parameter, as the router decoded it, must be one the caller may use.
 * A route without a scope refuses to register (http.ts), so nothing is open by omission.
 */
export type Scope = 'public' | 'caller' | 'subscription';

export const PUBLIC = { config: { scope: 'public' as Scope } };
export const CALLER = { config: { scope: 'caller' as Scope } };
export const SUBSCRIPTION = { config: { scope: 'subscription' as Scope } };
