// The ARM around every provider (Microsoft.Resources): cloud metadata, the ADFS-style login az uses,
// subscriptions, tenants and resource groups.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BerthError, Codes } from '../lib/errors.js';
import { baseUrl as baseOf } from './base-url.js';
import { OAuthError, type Authenticator } from './auth.js';
import { apiVersionOf } from './lro.js';
import { CALLER, PUBLIC, SUBSCRIPTION } from './route-scope.js';
import { parseTags, type Tags } from './tags.js';

type P = { sub: string; rg: string; op: string; tenant: string };

export interface ResourceGroupRecord {
  subscriptionId: string;
  name: string;
  location: string;
  tags: Tags;
  deleting: boolean;
  createdAt: string;
}

/** What a resource group PUT asks for. */
export interface ResourceGroupPut {
  location: string;
  tags: Tags;
}

/** Where resource groups live (the instances service: deleting one deletes its container groups). */
export interface ResourceGroups {
  /** The location berth serves (what GET /subscriptions/{id}/locations lists). */
  readonly location: string;
  putResourceGroup(sub: string, rg: string, put: ResourceGroupPut): Promise<{ created: boolean; rg: ResourceGroupRecord }>;
  getResourceGroup(sub: string, rg: string): Promise<ResourceGroupRecord>;
  listResourceGroups(sub: string): Promise<ResourceGroupRecord[]>;
  /** An operation to poll, or undefined when there is no such resource group. */
  deleteResourceGroup(sub: string, rg: string): Promise<{ id: string } | undefined>;
  operation(sub: string, id: string): Promise<{ status: 'InProgress' | 'Succeeded' | 'Failed'; error?: { code: string; message: string } }>;
}

export interface ResourceRoutesOptions {
  auth: Authenticator;
  resourceGroups: ResourceGroups;
  /** Subscriptions listed to callers that may use any (GET /subscriptions). */
  subscriptions: string[];
}

/** A resource group PUT's body as a typed request (ARM requires the location). */
export function parseResourceGroupPut(body: unknown): ResourceGroupPut {
  const b = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {}) as Record<string, unknown>;
  if (typeof b.location !== 'string' || b.location === '')
    throw new BerthError('LocationRequired', 'The location property is required for this definition.', 400, 'location');
  return { location: b.location, tags: parseTags(b.tags) };
}

export function registerResourceRoutes(app: FastifyInstance, o: ResourceRoutesOptions) {
  // ARM's cloud metadata, read by `az cloud register --endpoint-resource-manager` before anything has a token.
  app.get('/metadata/endpoints', PUBLIC, async (req) => cloudMetadata(baseOf(req), (req.query as Record<string, string | undefined>)['api-version']));

  // ADFS-style OpenID endpoints: az (MSAL) skips instance discovery for an authority ending in /adfs.
  const openid = (req: FastifyRequest, prefix: string) => {
    const base = `${baseOf(req)}${prefix}`;
    return {
      issuer: base, authorization_endpoint: `${base}/oauth2/authorize`, token_endpoint: `${base}/oauth2/token`,
      jwks_uri: `${base}/discovery/keys`, response_types_supported: ['code', 'id_token', 'token'],
      subject_types_supported: ['pairwise'], id_token_signing_alg_values_supported: ['HS256'],
      grant_types_supported: ['client_credentials'], token_endpoint_auth_methods_supported: ['client_secret_post'],
      scopes_supported: ['openid'], claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat'],
    };
  };
  app.get('/adfs/.well-known/openid-configuration', PUBLIC, async (req) => openid(req, '/adfs'));
  app.get('/adfs/discovery/keys', PUBLIC, async () => ({ keys: [] }));
  const token = (tenant: string | undefined) => async (req: FastifyRequest, reply: FastifyReply) => {
    try {
      return o.auth.issue((req.body ?? {}) as Record<string, string | undefined>, tenant);
    } catch (e) {
      if (e instanceof OAuthError) return reply.code(e.error === 'invalid_client' ? 401 : 400).send({ error: e.error, error_description: e.description });
      throw e;
    }
  };
  app.post('/adfs/oauth2/token', PUBLIC, token('adfs'));
  app.post<{ Params: P }>('/:tenant/oauth2/token', PUBLIC, (req, reply) => token(req.params.tenant)(req, reply));
  app.post<{ Params: P }>('/:tenant/oauth2/v2.0/token', PUBLIC, (req, reply) => token(req.params.tenant)(req, reply));

  const subscriptionsOf = (req: FastifyRequest) => {
    const who = req.identity!;
    const ids = who.subscriptions === '*' ? o.subscriptions : who.subscriptions;
    return ids.map((id) => ({
      id: `/subscriptions/${id}`, authorizationSource: 'RoleBased', managedByTenants: [], subscriptionId: id, tenantId: who.tenantId,
      displayName: id, state: 'Enabled', subscriptionPolicies: { locationPlacementId: 'Public_2014-09-01', quotaId: 'PayAsYouGo_2014-09-01', spendingLimit: 'Off' },
    }));
  };
  app.get('/subscriptions', CALLER, async (req) => ({ value: subscriptionsOf(req) }));
  app.get<{ Params: P }>('/subscriptions/:sub', SUBSCRIPTION, async (req) => {
    const s = subscriptionsOf(req).find((x) => x.subscriptionId.toLowerCase() === req.params.sub.toLowerCase());
    if (!s) throw new BerthError('SubscriptionNotFound', `The subscription '${req.params.sub}' could not be found.`, 404);
    return s;
  });
  app.get('/tenants', CALLER, async (req) => ({ value: [{ id: `/tenants/${req.identity!.tenantId}`, tenantId: req.identity!.tenantId, tenantCategory: 'Home' }] }));
  app.get<{ Params: P }>('/subscriptions/:sub/locations', SUBSCRIPTION, async (req) => ({
    value: [{ id: `/subscriptions/${req.params.sub}/locations/${o.resourceGroups.location}`, name: o.resourceGroups.location, displayName: o.resourceGroups.location, regionalDisplayName: o.resourceGroups.location }],
  }));

  const renderRg = (r: ResourceGroupRecord) => ({
    id: `/subscriptions/${r.subscriptionId}/resourceGroups/${r.name}`, name: r.name, type: 'Microsoft.Resources/resourceGroups', location: r.location,
    ...(Object.keys(r.tags).length > 0 && { tags: r.tags }), properties: { provisioningState: r.deleting ? 'Deleting' : 'Succeeded' },
  });
  const RG = '/subscriptions/:sub/resourcegroups/:rg';
  app.put<{ Params: P }>(RG, SUBSCRIPTION, async (req, reply) => {
    const r = await o.resourceGroups.putResourceGroup(req.params.sub, req.params.rg, parseResourceGroupPut(req.body));
    return reply.code(r.created ? 201 : 200).send(renderRg(r.rg));
  });
  app.get<{ Params: P }>(RG, { ...SUBSCRIPTION, exposeHeadRoute: false }, async (req) => renderRg(await o.resourceGroups.getResourceGroup(req.params.sub, req.params.rg)));
  app.head<{ Params: P }>(RG, SUBSCRIPTION, async (req, reply) => {
    const found = await o.resourceGroups.getResourceGroup(req.params.sub, req.params.rg).then(() => true, () => false);
    return reply.code(found ? 204 : 404).send();
  });
  app.get<{ Params: P }>('/subscriptions/:sub/resourcegroups', SUBSCRIPTION, async (req) => ({ value: (await o.resourceGroups.listResourceGroups(req.params.sub)).map(renderRg) }));
  app.delete<{ Params: P }>(RG, SUBSCRIPTION, async (req, reply) => {
    const op = await o.resourceGroups.deleteResourceGroup(req.params.sub, req.params.rg);
    if (!op) throw new BerthError(Codes.ResourceGroupNotFound, `Resource group '${req.params.rg}' could not be found.`, 404);
    reply.header('Location', `${baseOf(req)}/subscriptions/${req.params.sub}/operationresults/${op.id}?api-version=${apiVersionOf(req)}`).header('Retry-After', '1');
    return reply.code(202).send();
  });
  // ARM's Location-header polling: 202 while the operation runs, 200 when it is done.
  app.get<{ Params: P }>('/subscriptions/:sub/operationresults/:op', SUBSCRIPTION, async (req, reply) => {
    const op = await o.resourceGroups.operation(req.params.sub, req.params.op);
    if (op.status === 'InProgress') {
      reply.header('Location', `${baseOf(req)}${req.url}`).header('Retry-After', '1');
      return reply.code(202).send();
    }
    if (op.status === 'Failed') throw new BerthError(op.error?.code ?? Codes.InternalServerError, op.error?.message ?? 'The operation failed.', 500);
    return reply.code(200).send();
  });
}

/**
 * ARM's `/metadata/endpoints` in the shape of each api-version clients send: 2015-01-01's (Debian's
 * az through msrestazure), the list of clouds of 2019-05-01 and 2020-06-01, and from 2022-09-01 the
 * one cloud (today's az; it needs `name`, `authentication` and `suffixes`). Logins go to berth's
 * ADFS-style endpoint; berth has no storage, registry or database suffixes to give.
 */
export function cloudMetadata(base: string, apiVersion: string | undefined) {
  const authentication = { loginEndpoint: `${base}/adfs`, audiences: [`${base}/`], tenant: 'adfs', identityProvider: 'ADFS' };
  if (!apiVersion || apiVersion < '2019-05-01')
    return { galleryEndpoint: `${base}/`, graphEndpoint: `${base}/`, portalEndpoint: `${base}/`, authentication };
  const cloud = {
    name: 'berth', portal: `${base}/`, resourceManager: `${base}/`, gallery: `${base}/`, graph: `${base}/`, graphAudience: `${base}/`,
    microsoftGraphResourceId: `${base}/`, authentication, suffixes: {},
  };
  return apiVersion < '2022-09-01' ? [cloud] : cloud;
}
