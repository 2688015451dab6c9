// The ARM HTTP front: parses requests into service actions and renders results and errors as ARM does.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { BerthError, Codes, isBerthError } from '../lib/errors.js';
import { operationPath, renderGroup } from './render.js';
import { GROUP_TYPE, type InstancesService } from './service.js';

export const SUPPORTED_API_VERSIONS = ['2023-05-01', '2022-10-01-preview', '2022-09-01', '2021-10-01'];

export interface HttpOptions {
  service: InstancesService;
  tokens: string[];
  advertiseAddress: string;
  logger?: boolean;
}

interface ExecSession {
  password: string;
  sub: string;
  rg: string;
  name: string;
  container: string;
  argv: string[];
  expires: number;
}

type Params = { sub: string; rg: string; name: string; container: string; loc: string; op: string };

const armError = (reply: FastifyReply, status: number, code: string, message: string, target?: string) =>
  reply.code(status).send({ error: { code, message, ...(target && { target }) } });

const digest = (s: string) => createHash('sha256').update(s).digest();

export function buildServer(o: HttpOptions): FastifyInstance {
  const app = Fastify({ logger: o.logger ?? false, bodyLimit: 4 << 20, routerOptions: { caseSensitive: false, ignoreTrailingSlash: true } });
  const tokens = o.tokens.map(digest);
  if (tokens.length === 0) throw new Error('at least one API token is required');
  const execSessions = new Map<string, ExecSession>();

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
    armError(reply, 404, 'NotFound', `No route matches '${req.method} ${req.url.split('?')[0]}'.`));

  // ARM accepts a missing or empty body on POST actions; JSON elsewhere, and nothing else.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '' || body === undefined) return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch (e) {
      done(new BerthError(Codes.InvalidRequestContent, `The request content was invalid and could not be deserialized: ${(e as Error).message}`, 400), undefined);
    }
  });

  // Liveness for `berth up` and supervisors; says nothing about any tenant.
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-ms-request-id', randomUUID());
    if (req.url === '/healthz') return;
    const h = req.headers.authorization;
    if (!h) {
      reply.header('WWW-Authenticate', 'Bearer');
      throw new BerthError(Codes.AuthenticationFailed, "Authentication failed. The 'Authorization' header is missing.", 401);
    }
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    const d = m && digest(m[1]);
    if (!d || !tokens.some((t) => timingSafeEqual(t, d))) {
      reply.header('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new BerthError(Codes.InvalidAuthenticationToken, "The access token is invalid.", 401);
    }
    const v = (req.query as Record<string, string | undefined>)['api-version'];
    if (v === undefined || v === '')
      throw new BerthError(Codes.MissingApiVersionParameter, "The api-version query parameter (?api-version=) is required for all requests.", 400);
    if (!SUPPORTED_API_VERSIONS.includes(v))
      throw new BerthError(Codes.InvalidApiVersionParameter, `The api-version '${v}' is invalid. The supported versions are '${SUPPORTED_API_VERSIONS.join(',')}'.`, 400);
  });

  const base = (req: FastifyRequest) => `${req.protocol}://${req.headers.host ?? req.hostname}`;
  const apiVersion = (req: FastifyRequest) => (req.query as Record<string, string>)['api-version'];
  const lro = (req: FastifyRequest, reply: FastifyReply, sub: string, loc: string, opId: string) => {
    const url = `${base(req)}${operationPath(sub, loc, opId)}?api-version=${apiVersion(req)}`;
    reply.header('Azure-AsyncOperation', url).header('Location', url).header('Retry-After', '1');
  };
  const ctx = { advertiseAddress: o.advertiseAddress };
  const G = `/subscriptions/:sub/resourceGroups/:rg/providers/${GROUP_TYPE}/:name`;

  app.put<{ Params: Params }>(G, async (req, reply) => {
    const { sub, rg, name } = req.params;
    const r = await o.service.createOrUpdate(sub, rg, name, req.body);
    lro(req, reply, sub, r.operation.location, r.operation.id);
    return reply.code(r.created ? 201 : 200).send(renderGroup(r.view, ctx));
  });

  app.get<{ Params: Params }>(G, async (req) => renderGroup(await o.service.get(req.params.sub, req.params.rg, req.params.name), ctx));

  app.delete<{ Params: Params }>(G, async (req, reply) => {
    const { sub, rg, name } = req.params;
    const r = await o.service.delete(sub, rg, name);
    if (!r) return reply.code(204).send();
    lro(req, reply, sub, r.operation.location, r.operation.id);
    return reply.code(202).send(renderGroup(r.view, ctx));
  });

  for (const action of ['start', 'stop', 'restart'] as const) {
    app.post<{ Params: Params }>(`${G}/${action}`, async (req, reply) => {
      const { sub, rg, name } = req.params;
      const op = await o.service.setRunState(sub, rg, name, action);
      // ACI answers stop synchronously (204); start and restart are LROs (202).
      if (action === 'stop') return reply.code(204).send();
      lro(req, reply, sub, op.location, op.id);
      return reply.code(202).send();
    });
  }

  const listRoute = async (req: FastifyRequest<{ Params: Params; Querystring: Record<string, string> }>) => {
    const { sub, rg } = req.params;
    const q = req.query;
    const top = q.$top !== undefined ? Number(q.$top) : undefined;
    if (top !== undefined && (!Number.isInteger(top) || top < 1 || top > 1000))
      throw new BerthError(Codes.InvalidRequestContent, "'$top' must be an integer from 1 to 1000.", 400, '$top');
    const r = await o.service.list(sub, rg, { startAfter: q.$skiptoken ? Buffer.from(q.$skiptoken, 'base64url').toString() : undefined, limit: top });
    const value = r.views.map((v) => renderGroup(v, ctx));
    if (!r.next) return { value };
    const u = new URL(`${base(req)}${req.url}`);
    u.searchParams.set('$skiptoken', Buffer.from(r.next).toString('base64url'));
    return { value, nextLink: u.toString() };
  };
  app.get(`/subscriptions/:sub/providers/${GROUP_TYPE}`, listRoute);
  app.get(`/subscriptions/:sub/resourceGroups/:rg/providers/${GROUP_TYPE}`, listRoute);

  app.get<{ Params: Params; Querystring: Record<string, string> }>(`${G}/containers/:container/logs`, async (req, reply) => {
    const { sub, rg, name, container } = req.params;
    const q = req.query;
    const tail = q.tail !== undefined ? Number(q.tail) : undefined;
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0))
      throw new BerthError(Codes.InvalidRequestContent, "'tail' must be a non-negative integer.", 400, 'tail');
    const timestamps = q.timestamps === 'true';
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

  app.post<{ Params: Params; Body: { command?: unknown } | undefined }>(`${G}/containers/:container/exec`, async (req) => {
    const { sub, rg, name, container } = req.params;
    const cmd = req.body?.command;
    if (typeof cmd !== 'string' || cmd.trim() === '')
      throw new BerthError(Codes.MissingRequiredProperty, "The property 'command' is required.", 400, 'command');
    await o.service.get(sub, rg, name); // 404 before a session is made
    const id = randomBytes(16).toString('hex');
    const password = randomBytes(24).toString('base64url');
    execSessions.set(id, { password, sub, rg, name, container, argv: cmd.trim().split(/\s+/), expires: Date.now() + 60_000 });
    const wsBase = base(req).replace(/^http/, 'ws');
    return { webSocketUri: `${wsBase}/exec/${id}`, password };
  });

  app.get<{ Params: Params }>(`/subscriptions/:sub/providers/${'Microsoft.ContainerInstance'}/locations/:loc/operations/:op`, async (req) =>
    o.service.operation(req.params.sub, req.params.op));

  // Exec sessions: the first text frame is the password, then stdin in and stdout/stderr out.
  const wss = new WebSocketServer({ noServer: true });
  app.server.on('upgrade', (req: IncomingMessage, socket, head) => {
    const m = /^\/exec\/([0-9a-f]{32})$/.exec((req.url ?? '').split('?')[0]);
    const s = m && execSessions.get(m[1]);
    if (!m || !s || s.expires < Date.now()) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    execSessions.delete(m[1]); // single use
    wss.handleUpgrade(req, socket, head, (ws) => runExec(ws, s));
  });
  const runExec = (ws: WebSocket, s: ExecSession) => {
    let stage: 'auth' | 'starting' | 'running' = 'auth';
    const early: Buffer[] = [];
    let child: ChildProcess | undefined;
    ws.on('message', async (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
      if (stage === 'running') return void child!.stdin?.write(buf);
      if (stage === 'starting') return void early.push(buf);
      if (isBinary || buf.toString() !== s.password) return ws.close(4001, 'invalid password');
      stage = 'starting';
      try {
        child = await o.service.exec(s.sub, s.rg, s.name, s.container, s.argv);
      } catch (e) {
        return ws.close(4000, (e as Error).message.slice(0, 120));
      }
      child.stdout?.on('data', (b: Buffer) => ws.send(b));
      child.stderr?.on('data', (b: Buffer) => ws.send(b));
      child.on('close', (code) => ws.close(1000, `exit ${code ?? -1}`));
      ws.on('close', () => child!.kill('SIGKILL'));
      for (const b of early) child.stdin?.write(b);
      stage = 'running';
    });
  };
  const sweep = setInterval(() => {
    for (const [id, s] of execSessions) if (s.expires < Date.now()) execSessions.delete(id);
  }, 30_000);
  sweep.unref();
  app.addHook('onClose', async () => {
    clearInterval(sweep);
    wss.close();
  });
  return app;
}
