// Exec and attach: a POST hands out a single-use WebSocket session (URI + password) for a container; the
// upgrade to that URI runs it (the protocol: streams.ts).
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WebSocketServer } from 'ws';
import { baseUrl } from '../../arm/base-url.js';
import { providerRoute, type ApiVersions } from '../../arm/route-scope.js';
import { BerthError, Codes } from '../../lib/errors.js';
import { parseAttach, parseExec, type GroupRef } from '../actions.js';
import type { InstancesService } from '../service.js';
import { runAttach, runExec, type StreamSession } from '../streams.js';
import { GROUP_PATH, partsOf } from './groups.js';

/** Sessions handed out and not yet opened: a bound, so a caller cannot fill memory with them. */
const MAX_PENDING_SESSIONS = 1000;
const SESSION_TTL_MS = 60_000;

export function registerSessionRoutes(app: FastifyInstance, service: InstancesService, versions: ApiVersions) {
  const sessions = new Map<string, StreamSession>();
  const route = providerRoute('subscription', versions);

  const newSession = async (req: FastifyRequest, kind: StreamSession['kind'], ref: GroupRef, container: string, argv: string[], tty?: StreamSession['tty']) => {
    await service.checkContainer(ref, container); // 404 before a session is made
    if (sessions.size >= MAX_PENDING_SESSIONS) {
      for (const [id, s] of sessions) if (s.expires < Date.now()) sessions.delete(id);
      if (sessions.size >= MAX_PENDING_SESSIONS)
        throw new BerthError(Codes.TooManyRequests, `More than ${MAX_PENDING_SESSIONS} exec and attach sessions are waiting to be opened; open or let some expire (60 s) first.`, 429);
    }
    const id = randomBytes(16).toString('hex');
    const password = randomBytes(24).toString('base64url');
    sessions.set(id, { kind, password, ref, container, argv, ...(tty && { tty }), expires: Date.now() + SESSION_TTL_MS });
    return { webSocketUri: `${baseUrl(req).replace(/^http/, 'ws')}/${kind}/${id}`, password };
  };

  app.post(`${GROUP_PATH}/containers/:container/exec`, route, async (req) => {
    const a = parseExec(partsOf(req));
    return newSession(req, 'exec', a.ref, a.container, a.argv, a.tty);
  });
  app.post(`${GROUP_PATH}/containers/:container/attach`, route, async (req) => {
    const a = parseAttach(partsOf(req));
    return newSession(req, 'attach', a.ref, a.container, []);
  });

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
    wss.handleUpgrade(req, socket, head, (ws) => (s.kind === 'exec' ? runExec : runAttach)(ws, s, service, preauthorized));
  });
  const sweep = setInterval(() => {
    for (const [id, s] of sessions) if (s.expires < Date.now()) sessions.delete(id);
  }, 30_000);
  sweep.unref();
  app.addHook('onClose', async () => {
    clearInterval(sweep);
    wss.close();
  });
}
