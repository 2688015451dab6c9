// The ARM HTTP front: parses requests into service actions and renders results and errors as ARM does.
import { randomBytes, randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import { parse as parseForm } from 'node:querystring';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { WebSocketServer } from 'ws';
import { BerthError, Codes, isBerthError } from '../lib/errors.js';
import { ACI_API_VERSIONS, isAciApiVersion, responseForVersion } from './api-versions.js';
import { registerArmRoutes } from './arm.js';
import type { Authenticator, Identity } from './auth.js';
import { operationPath, renderGroup } from './render.js';
import { GROUP_TYPE, PROVIDER, type InstancesService } from './service.js';
import { baseUrl as base } from './base-url.js';
import { checkJsonShape } from './json-limits.js';
import { CALLER, PUBLIC, SUBSCRIPTION, type RouteInfo } from './route-scope.js';
import { canonicalTarget, describePath } from './request-target.js';
import { parseExecRequest, runAttach, runExec, type StreamSession } from './streams.js';

export interface HttpOptions {
  service: InstancesService;
  auth: Authenticator;
  advertiseAddress: string;
  /** Subscriptions listed to callers that may use any (GET /subscriptions). */
  subscriptions: string[];
  https?: { key: Buffer; cert: Buffer };
  logger?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
  }
}

const dateVersion = /^\d{4}-\d{2}-\d{2}(-preview|-beta|-alpha)?$/;
/** Exec/attach sessions handed out and not yet used: a bound, so a caller cannot fill memory with them. */
const MAX_PENDING_SESSIONS = 1000;
/** Why the router was handed a placeholder for a request target that has no one meaning. */
const refusedTargets = new WeakMap<IncomingMessage, BerthError>();
const REFUSED_TARGET = '/.berth-refused-target';

type Params = { sub: string; rg: string; name: string; container: string; loc: string; op: string };

const armError = (reply: FastifyReply, status: number, code: string, message: string, target?: string) =>
  reply.code(status).send({ error: { code, message, ...(target && { target }) } });

export function buildServer(o: HttpOptions): FastifyInstance {
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
  const sessions = new Map<string, StreamSession>();
  // Default-deny by construction: every route says who may call it.
  const routeTable: RouteInfo[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    const scope = route.config?.scope;
    if (!scope) throw new Error(`route ${String(route.method)} ${route.url} declares no scope`);
    if (scope === 'subscription' && !route.url.includes(':sub'))
      throw new Error(`route ${String(route.method)} ${route.url} is subscription-scoped but has no :sub parameter`);
    for (const method of [route.method].flat()) routeTable.push({ method, url: route.url, scope });
  });

  app.setErrorHandler((err, req, reply) => {
    if (isBerthError(err)) return armError(reply, err.status, err.code, err.message, err.target);
    const e = err as { statusCode?: number; code?: string; message: string };
    if (e.statusCode === 415) return armError(reply, 415, 'UnsupportedMediaType', `The content media type '${req.headers['content-type'] ?? ''}' is not supported. Use 'application/json'.`);
    if (e.statusCode === 413) return armError(reply, 413, 'RequestEntityTooLarge', 'The request body is too large.');
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500)
      return armError(reply, e.statusCode, Codes.InvalidRequestContent, `The request content was invalid and could not be deserialized: ${e.message}`);
    req.log.error(err);
    console.error(err);
    return armError(reply, 500, Codes.InternalServerError, 'The server encountered an internal error; the request was not completed.');
  });
  app.setNotFoundHandler((req, reply) =>
    armError(reply, 404, 'NotFound', `No route matches '${req.method} ${describePath(req.url)}'.`));

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
    const scope = req.routeOptions.config?.scope ?? 'caller';
    if (scope === 'public') return;
    try {
      req.identity = o.auth.authenticate(req.headers.authorization);
    } catch (e) {
      reply.header('WWW-Authenticate', req.headers.authorization ? 'Bearer error="invalid_token"' : 'Bearer');
      throw e;
    }
    const v = (req.query as Record<string, unknown>)['api-version'];
    if (v === undefined || v === '')
      throw new BerthError(Codes.MissingApiVersionParameter, "The api-version query parameter (?api-version=) is required for all requests.", 400);
    // ACI's own versions for its provider; the ARM routes around it (subscriptions, resource groups) take any.
    const aci = (req.routeOptions.url ?? req.url).toLowerCase().includes(`/providers/${PROVIDER.toLowerCase()}`);
    if (typeof v !== 'string' || (aci ? !isAciApiVersion(v) : !dateVersion.test(v)))
      throw new BerthError(Codes.InvalidApiVersionParameter, `The api-version '${String(v).slice(0, 100)}' is invalid. The supported versions are '${ACI_API_VERSIONS.join(',')}'.`, 400);
    if (scope === 'subscription') {
      const sub = (req.params as { sub?: string }).sub;
      if (typeof sub !== 'string') throw new BerthError(Codes.InternalServerError, 'A subscription-scoped route has no subscription.', 500);
      o.auth.authorize(req.identity, sub, `${PROVIDER}/containerGroups/${req.method === 'GET' ? 'read' : 'write'}`);
    }
  });

  const apiVersion = (req: FastifyRequest) => (req.query as Record<string, string>)['api-version'];
  // Each response in the shapes of the api-version it was asked in (api-versions.ts).
  app.addHook('preSerialization', async (req, _reply, payload) => responseForVersion(apiVersion(req), payload));
  const lro = (req: FastifyRequest, reply: FastifyReply, sub: string, loc: string, opId: string) => {
    const url = `${base(req)}${operationPath(sub, loc, opId)}?api-version=${apiVersion(req)}`;
    reply.header('Azure-AsyncOperation', url).header('Location', url).header('Retry-After', '1');
  };
  const ctx = { advertiseAddress: o.advertiseAddress };
  const G = `/subscriptions/:sub/resourceGroups/:rg/providers/${GROUP_TYPE}/:name`;

  app.put<{ Params: Params }>(G, SUBSCRIPTION, async (req, reply) => {
    const { sub, rg, name } = req.params;
    const r = await o.service.createOrUpdate(sub, rg, name, req.body, { tenantId: req.identity?.tenantId });
    lro(req, reply, sub, r.operation.location, r.operation.id);
    return reply.code(r.created ? 201 : 200).send(renderGroup(r.view, ctx));
  });

  app.get<{ Params: Params }>(G, SUBSCRIPTION, async (req) => renderGroup(await o.service.get(req.params.sub, req.params.rg, req.params.name), ctx));

  app.patch<{ Params: Params }>(G, SUBSCRIPTION, async (req) => renderGroup(await o.service.updateTags(req.params.sub, req.params.rg, req.params.name, req.body), ctx));

  app.delete<{ Params: Params }>(G, SUBSCRIPTION, async (req, reply) => {
    const { sub, rg, name } = req.params;
    const r = await o.service.delete(sub, rg, name);
    if (!r) return reply.code(204).send();
    lro(req, reply, sub, r.operation.location, r.operation.id);
    return reply.code(202).send(); // as the spec declares it: the group is gone when the operation ends
  });

  for (const action of ['start', 'stop', 'restart'] as const) {
    app.post<{ Params: Params }>(`${G}/${action}`, SUBSCRIPTION, async (req, reply) => {
      const { sub, rg, name } = req.params;
      const op = await o.service.setRunState(sub, rg, name, action);
      // As ACI: stop answers 204 once the group has stopped; start (202) and restart (204) are LROs to poll.
      if (action === 'stop') return reply.code(204).send();
      lro(req, reply, sub, op.location, op.id);
      return reply.code(action === 'start' ? 202 : 204).send();
    });
  }

  const listRoute = async (req: FastifyRequest<{ Params: Params; Querystring: Record<string, string> }>, reply: FastifyReply) => {
    const { sub, rg } = req.params;
    const q = req.query;
    if (q.watch === 'true') return watchGroups(req, reply);
    const top = q.$top !== undefined ? Number(q.$top) : undefined;
    if (top !== undefined && (!Number.isInteger(top) || top < 1 || top > 1000))
      throw new BerthError(Codes.InvalidRequestContent, "'$top' must be an integer from 1 to 1000.", 400, '$top');
    const r = await o.service.list(sub, rg, { startAfter: q.$skiptoken ? Buffer.from(q.$skiptoken, 'base64url').toString() : undefined, limit: top });
    const value = r.views.map((v) => renderGroup(v, ctx, true));
    if (!r.next) return { value };
    const u = new URL(`${base(req)}${req.url}`);
    u.searchParams.set('$skiptoken', Buffer.from(r.next).toString('base64url'));
    return { value, nextLink: u.toString() };
  };
  /**
   * berth extension (`?watch=true` on a list): a stream of newline-delimited JSON, one
   * {"type":"CHANGED","resourceGroup","name"} line when a group's record or status changes, and a
   * {"type":"HEARTBEAT"} line every 15 s. Clients list once, then read again on each line.
   */
  const watchGroups = async (req: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const { sub, rg } = req.params;
    const send = (o: unknown) => reply.raw.write(`${JSON.stringify(o)}\n`);
    // Changes that come together (a record and its status) go out as one line per group.
    let pending = new Map<string, { resourceGroup: string; name: string }>();
    let timer: NodeJS.Timeout | undefined;
    const stop = o.service.watchGroups(sub, rg, (resourceGroup, name) => {
      pending.set(`${resourceGroup}/${name}`, { resourceGroup, name });
      timer ??= setTimeout(() => {
        timer = undefined;
        const batch = pending;
        pending = new Map();
        for (const g of batch.values()) send({ type: 'CHANGED', ...g });
      }, 20);
    });
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-ms-request-id': String(reply.getHeader('x-ms-request-id')) });
    send({ type: 'HEARTBEAT' });
    const beat = setInterval(() => send({ type: 'HEARTBEAT' }), 15_000);
    await new Promise<void>((resolve) => req.raw.socket.once('close', () => resolve()));
    stop();
    clearInterval(beat);
    clearTimeout(timer);
    return reply;
  };
  app.get(`/subscriptions/:sub/providers/${GROUP_TYPE}`, SUBSCRIPTION, listRoute);
  app.get(`/subscriptions/:sub/resourceGroups/:rg/providers/${GROUP_TYPE}`, SUBSCRIPTION, listRoute);

  app.get<{ Params: Params; Querystring: Record<string, string> }>(`${G}/containers/:container/logs`, SUBSCRIPTION, async (req, reply) => {
    const { sub, rg, name, container } = req.params;
    const q = req.query;
    const tail = q.tail !== undefined ? Number(q.tail) : undefined;
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0))
      throw new BerthError(Codes.InvalidRequestContent, "'tail' must be a non-negative integer.", 400, 'tail');
    const timestamps = q.timestamps === 'true';
    // berth extension: the log of the container's run before its last restart (404 when there was none).
    if (q.previous === 'true') return { content: await o.service.logs(sub, rg, name, container, { tail, timestamps, previous: true }) };
    if (q.follow === 'true') {
      // berth extension: stream the log as it grows, as `az container attach` would.
      const ac = new AbortController();
      req.raw.on('close', () => ac.abort());
      reply.raw.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-ms-request-id': String(reply.getHeader('x-ms-request-id')) });
      await o.service.followLogs(sub, rg, name, container, { tail, timestamps }, (s) => reply.raw.write(s), ac.signal).catch(() => {});
      reply.raw.end();
      return reply;
    }
    return { content: await o.service.logs(sub, rg, name, container, { tail, timestamps }) };
  });

  const newSession = async (req: FastifyRequest<{ Params: Params }>, kind: StreamSession['kind'], argv: string[], tty?: StreamSession['tty']) => {
    const { sub, rg, name, container } = req.params;
    await o.service.checkContainer(sub, rg, name, container); // 404 before a session is made
    if (sessions.size >= MAX_PENDING_SESSIONS) {
      for (const [id, s] of sessions) if (s.expires < Date.now()) sessions.delete(id);
      if (sessions.size >= MAX_PENDING_SESSIONS)
        throw new BerthError(Codes.TooManyRequests, `More than ${MAX_PENDING_SESSIONS} exec and attach sessions are waiting to be opened; open or let some expire (60 s) first.`, 429);
    }
    const id = randomBytes(16).toString('hex');
    const password = randomBytes(24).toString('base64url');
    sessions.set(id, { kind, password, sub, rg, name, container, argv, ...(tty && { tty }), expires: Date.now() + 60_000 });
    return { webSocketUri: `${base(req).replace(/^http/, 'ws')}/${kind}/${id}`, password };
  };

  // The command is split as a shell would split it, without expanding anything (lib/argv.ts); a
  // terminalSize (what az and the SDK send) makes it a terminal session.
  app.post<{ Params: Params }>(`${G}/containers/:container/exec`, SUBSCRIPTION, async (req) => {
    const { argv, tty } = parseExecRequest(req.body);
    return newSession(req, 'exec', argv, tty);
  });

  app.post<{ Params: Params }>(`${G}/containers/:container/attach`, SUBSCRIPTION, async (req) => newSession(req, 'attach', []));

  app.get<{ Params: Params }>(`${G}/outboundNetworkDependenciesEndpoints`, SUBSCRIPTION, async (req) => {
    await o.service.get(req.params.sub, req.params.rg, req.params.name);
    return [];
  });

  // berth has no virtual networks, so there is never a service association link to remove.
  app.delete(`/subscriptions/:sub/resourcegroups/:rg/providers/Microsoft.Network/virtualNetworks/:vnet/subnets/:subnet/providers/${PROVIDER}/serviceAssociationLinks/default`, SUBSCRIPTION,
    async (_req, reply) => reply.code(204).send());

  const L = `/subscriptions/:sub/providers/${PROVIDER}/locations/:loc`;
  app.get<{ Params: Params }>(`${L}/usages`, SUBSCRIPTION, async (req) => {
    const u = await o.service.usage(req.params.sub, req.params.loc);
    return {
      value: [
        { unit: 'Count', currentValue: u.containerGroups.current, limit: u.containerGroups.limit, name: { value: 'ContainerGroups', localizedValue: 'Container Groups' } },
        // The spec counts in integers: fractional CPU requests count as whole cores begun.
        { unit: 'Count', currentValue: Math.ceil(u.standardCores.current - 1e-9), limit: u.standardCores.limit, name: { value: 'StandardCores', localizedValue: 'Standard Cores' } },
      ],
    };
  });
  app.get<{ Params: Params }>(`${L}/capabilities`, SUBSCRIPTION, async (req) => {
    const location = o.service.servedLocation(req.params.loc);
    const l = o.service.limitsInForce();
    return {
      value: (['Public', 'Private'] as const).map((ipAddressType) => ({
        resourceType: 'containerGroups', osType: 'Linux', location, ipAddressType, gpu: 'None',
        capabilities: { maxMemoryInGB: l.maxMemoryGBPerContainer, maxCpu: l.maxCpuPerContainer, maxGpuCount: 0 },
      })),
    };
  });
  app.get<{ Params: Params }>(`${L}/cachedImages`, SUBSCRIPTION, async (req) => {
    o.service.servedLocation(req.params.loc);
    return { value: (await o.service.cachedImages()).map((image) => ({ osType: 'Linux', image })) };
  });
  app.get(`/providers/${PROVIDER}/operations`, CALLER, async () => ({ value: PROVIDER_OPERATIONS }));

  app.get<{ Params: Params }>(`/subscriptions/:sub/providers/${PROVIDER}/locations/:loc/operations/:op`, SUBSCRIPTION, async (req, reply) => {
    const op = await o.service.operation(req.params.sub, req.params.op);
    // Clients wait Retry-After between polls (az: 30 s when it is missing).
    if (op.status === 'InProgress') reply.header('Retry-After', '1');
    return op;
  });

  // Exec and attach sessions (protocol: streams.ts).
  const wss = new WebSocketServer({ noServer: true });
  app.server.on('upgrade', (req: IncomingMessage, socket, head) => {
    const m = /^\/(exec|attach)\/([0-9a-f]{32})$/.exec((req.url ?? '').split('?')[0]);
    const s = m && sessions.get(m[2]);
    if (!m || !s || s.kind !== m[1] || s.expires < Date.now()) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    sessions.delete(m[2]); // single use
    // ACI's attach takes the password as the Authorization header; the first text frame does as well.
    const header = req.headers.authorization?.replace(/^Bearer\s+/i, '');
    const preauthorized = header === s.password;
    wss.handleUpgrade(req, socket, head, (ws) => (s.kind === 'exec' ? runExec : runAttach)(ws, s, o.service, preauthorized));
  });
  registerArmRoutes(app, o);
  const sweep = setInterval(() => {
    for (const [id, s] of sessions) if (s.expires < Date.now()) sessions.delete(id);
  }, 30_000);
  sweep.unref();
  app.addHook('onClose', async () => {
    clearInterval(sweep);
    wss.close();
  });
  return app;
}

const PROVIDER_OPERATIONS = [
  ['containerGroups/read', 'Get Container Groups', 'Get all container groups.'],
  ['containerGroups/write', 'Create or Update Container Groups', 'Create or update a specific container group.'],
  ['containerGroups/delete', 'Delete Container Groups', 'Delete the specific container group.'],
  ['containerGroups/restart/action', 'Restart Container Groups', 'Restarts a specific container group.'],
  ['containerGroups/stop/action', 'Stop Container Groups', 'Stops a specific container group.'],
  ['containerGroups/start/action', 'Start Container Groups', 'Starts a specific container group.'],
  ['containerGroups/containers/logs/read', 'Get container logs', 'Get the logs for a specific container.'],
  ['containerGroups/containers/exec/action', 'Exec into a container', 'Exec into a specific container.'],
  ['containerGroups/containers/attach/action', 'Attach to a container', 'Attach to the output stream of a container.'],
  ['locations/usages/read', 'Get Usage', 'Get the usage for a specific location.'],
  ['locations/capabilities/read', 'Get Capabilities', 'Get the capabilities for a specific location.'],
  ['locations/cachedImages/read', 'Get Cached Images', 'Get the cached images for a specific location.'],
].map(([op, operation, description]) => ({
  name: `${PROVIDER}/${op}`,
  display: { provider: 'Microsoft Container Instance', resource: op.split('/')[0] === 'locations' ? 'Location' : 'Container Group', operation, description },
  origin: 'User',
}));
