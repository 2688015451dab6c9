// What every ARM route declares: who may call it, and which api-versions it answers.

declare module 'fastify' {
  interface FastifyContextConfig {
    scope?: Scope;
    /** The api-versions the route answers; unset: any date-shaped version (ARM's own routes take any). */
    versions?: ApiVersions;
  }
  interface FastifyInstance {
    /** Every route registered, with its scope (what the cross-tenant tests walk). */
    routeTable: RouteInfo[];
  }
}

/**
 * `public`: liveness, cloud metadata, the login endpoints a client calls before it has a token.
 * `caller`: any authenticated caller; the route shows only what the caller's grants allow.
 * `subscription`: the route's `:sub` parameter, as the router decoded it, must be one the caller may use.
 * `join`: a host joining the cluster, with a join token (the agent API; no api-version).
 * `agent`: the agent of the host in the route's `:host` parameter, with that host's credential (the agent API).
 * A route without a scope refuses to register (server.ts), so nothing is open by omission.
 */
export type Scope = 'public' | 'caller' | 'subscription' | 'join' | 'agent';

/** A provider's api-versions: which it accepts, and the list its refusal names. */
export interface ApiVersions {
  accepts(v: string): boolean;
  readonly list: readonly string[];
}

export interface RouteInfo {
  method: string;
  url: string;
  scope: Scope;
}

export const PUBLIC = { config: { scope: 'public' as Scope } };
export const CALLER = { config: { scope: 'caller' as Scope } };
export const SUBSCRIPTION = { config: { scope: 'subscription' as Scope } };
export const JOIN = { config: { scope: 'join' as Scope } };
export const AGENT = { config: { scope: 'agent' as Scope } };

/** A provider's route options: its scope and its api-versions. */
export const providerRoute = (scope: Scope, versions: ApiVersions) => ({ config: { scope, versions } });
