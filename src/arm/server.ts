// The ARM edge every provider shares: one canonical path per request, authentication and authorization on the
// route that runs, api-version checks, JSON bodies bounded before use, and every refusal in ARM's envelope.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import { parse as parseForm } from 'node:querystring';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { BerthError, Codes, errorToWire, isBerthError } from '../lib/errors.js';
import type { AgentAuthenticator, Authenticator, Identity } from './auth.js';
import { checkJsonShape } from './json-limits.js';
import { canonicalTarget, describePath } from './request-target.js';
import { PUBLIC, type RouteInfo } from './route-scope.js';

declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
  }
}

export interface ArmServerOptions {
  auth: Authenticator;
  /** Hosts' agents (the agent API's `join` and `agent` routes); without it those routes refuse everyone. */
  agents?: AgentAuthenticator;
  https?: { key: Buffer; cert: Buffer };
  logger?: boolean;
  /** The action named in a 403 for a subscription-scoped route (ARM names the permission missing). */
  actionOf?: (method: string) => string;
}

/** ARM's own routes (subscriptions, resource groups) take any date-shaped api-version. */
const DATE_VERSION = /^\d{4}-\d{2}-\d{2}(-preview|-beta|-alpha)?$/;
/** Why the router was handed a placeholder for a request target that has no one meaning. */
const refusedTargets = new WeakMap<IncomingMessage, BerthError>();
const REFUSED_TARGET = '/.berth-refused-target';

export const armError = (reply: FastifyReply, status: number, code: string, message: string, target?: string) =>
  reply.code(status).send({ error: { code, message, ...(target && { target }) } });

export function createArmServer(o: ArmServerOptions): FastifyInstance {
  const app = Fastify({
    logger: o.logger ?? false, bodyLimit: 4 << 20,
    // names are validated by the routes (400 InvalidResourceName), not cut off by the router
    routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, maxParamLength: 2048 },
    // the router and authorization see one canonical path; a target without one meaning is refused
    rewriteUrl: (req) => {
      try {
        return canonicalTarget(req.url ?? '/');
      } catch (e) {
        refusedTargets.set(req, e as BerthError);
        return REFUSED_TARGET;
      }
    },
    // what the router itself refuses, in ARM's envelope too
    frameworkErrors: (err, _req, reply) => armError(reply, 400, Codes.InvalidRequestUri, `The request target is invalid: ${err.message}`),
    // what Node's HTTP parser refuses before any route runs (oversized headers, malformed requests)
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, code, message] = err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, Codes.RequestHeaderFieldsTooLarge, 'The request headers are too large.']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'RequestTimeout', 'The request was not received in time.']
          : [400, Codes.InvalidRequestContent, 'The request could not be parsed as HTTP.'];
      const body = JSON.stringify({ error: { code, message } });
      if (socket.writable)
        socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      socket.destroy(err);
    },
    ...(o.https && { https: { key: o.https.key, cert: o.https.cert } }),
  }) as unknown as FastifyInstance;

  // Default-deny by construction: every route says who may call it.
  const routeTable: RouteInfo[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    const scope = route.config?.scope;
    if (!scope) throw new Error(`route ${String(route.method)} ${route.url} declares no scope`);
    if (scope === 'subscription' && !route.url.includes(':sub'))
      throw new Error(`route ${String(route.method)} ${route.url} is subscription-scoped but has no :sub parameter`);
    if (scope === 'agent' && !route.url.includes(':host'))
      throw new Error(`route ${String(route.method)} ${route.url} is agent-scoped but has no :host parameter`);
    for (const method of [route.method].flat()) routeTable.push({ method, url: route.url, scope });
  });

  app.setErrorHandler((err, req, reply) => {
    if (isBerthError(err)) {
      const w = errorToWire(err);
      return armError(reply, w.status, w.code, w.message, w.target);
    }
    const e = err as { statusCode?: number; code?: string; message: string };
    if (e.statusCode === 415) return armError(reply, 415, 'UnsupportedMediaType', `The content media type '${String(req.headers['content-type'] ?? '').slice(0, 100)}' is not supported. Use 'application/json'.`);
    if (e.statusCode === 413) return armError(reply, 413, 'RequestEntityTooLarge', 'The request body is too large.');
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500)
      return armError(reply, e.statusCode, Codes.InvalidRequestContent, `The request content was invalid and could not be deserialized: ${e.message}`);
    req.log.error(err);
    console.error(err);
    return armError(reply, 500, Codes.InternalServerError, 'The server encountered an internal error; the request was not completed.');
  });
  app.setNotFoundHandler((req, reply) => armError(reply, 404, 'NotFound', `No route matches '${req.method} ${describePath(req.url)}'.`));

  // ARM accepts a missing or empty body on POST actions; JSON elsewhere, and nothing else.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '' || body === undefined) return done(null, undefined);
    let value: unknown;
    try {
      value = JSON.parse(body as string);
    } catch (e) {
      return done(new BerthError(Codes.InvalidRequestContent, `The request content was invalid and could not be deserialized: ${(e as Error).message}`, 400), undefined);
    }
    try {
      checkJsonShape(value);
    } catch (e) {
      return done(e as BerthError, undefined);
    }
    done(null, value);
  });
  // OAuth2 token requests are forms.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, parseForm(body as string)));

  // Liveness for `berth up` and supervisors; says nothing about any tenant.
  app.get('/healthz', PUBLIC, async () => ({ status: 'ok' }));

  // Authentication and authorization run on the route the router chose, with its decoded parameters:
  // the path they judge is the path that runs (see request-target.ts).
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-ms-request-id', randomUUID());
    const refused = refusedTargets.get(req.raw);
    if (refused) throw refused;
    // unmatched paths (404) are for authenticated callers too: an anonymous one learns nothing of the routes
    const config = req.routeOptions.config ?? {};
    const scope = config.scope ?? 'caller';
    if (scope === 'public') return;
    // the agent API: hosts' own credentials, never tenants' tokens (and it speaks no api-versions)
    if (scope === 'join' || scope === 'agent') {
      if (!o.agents) throw new BerthError(Codes.AuthenticationFailed, 'Authentication failed: this server takes no agents.', 401);
      if (scope === 'join') return o.agents.authenticateJoin(req.headers.authorization);
      const host = (req.params as { host?: string }).host;
      if (typeof host !== 'string') throw new BerthError(Codes.InternalServerError, 'An agent-scoped route has no host.', 500);
      return o.agents.authenticateAgent(host, req.headers.authorization);
    }
    try {
      req.identity = o.auth.authenticate(req.headers.authorization);
    } catch (e) {
      reply.header('WWW-Authenticate', req.headers.authorization ? 'Bearer error="invalid_token"' : 'Bearer');
      throw e;
    }
    const v = (req.query as Record<string, unknown>)['api-version'];
    if (v === undefined || v === '')
      throw new BerthError(Codes.MissingApiVersionParameter, 'The api-version query parameter (?api-version=) is required for all requests.', 400);
    if (typeof v !== 'string' || !(config.versions ? config.versions.accepts(v) : DATE_VERSION.test(v)))
      throw new BerthError(Codes.InvalidApiVersionParameter,
        `The api-version '${String(v).slice(0, 100)}' is invalid.${config.versions ? ` The supported versions are '${config.versions.list.join(',')}'.` : ''}`, 400);
    if (scope === 'subscription') {
      const sub = (req.params as { sub?: string }).sub;
      if (typeof sub !== 'string') throw new BerthError(Codes.InternalServerError, 'A subscription-scoped route has no subscription.', 500);
      o.auth.authorize(req.identity, sub, o.actionOf?.(req.method) ?? `${req.method.toLowerCase()}`);
    }
  });
  return app;
}
