// The container group routes of Microsoft.ContainerInstance: each parses its request into an action (actions.ts),
// hands it to the service, and renders the answer as ARM does.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { baseUrl } from '../../arm/base-url.js';
import { setLroHeaders } from '../../arm/lro.js';
import { providerRoute, type ApiVersions } from '../../arm/route-scope.js';
import {
  parseGroupDelete, parseGroupGet, parseGroupList, parseGroupPatch, parseGroupPut, parseGroupRun, parseLogs, type GroupAction, type RequestParts,
} from '../actions.js';
import type { ProfileService } from '../profiles.js';
import { operationPath, renderGroup, type RenderContext } from '../render.js';
import { GROUP_TYPE, PROVIDER, type InstancesService } from '../service.js';

/** A route's request as the parsers see it. */
export const partsOf = (req: FastifyRequest): RequestParts =>
  ({ params: req.params as Record<string, string>, query: req.query as Record<string, unknown>, body: req.body });

/** `{value, nextLink}` of a page: the next link repeats the request with berth's `$skiptoken`. */
export function page<T>(req: FastifyRequest, value: T[], next?: string) {
  if (!next) return { value };
  const u = new URL(`${baseUrl(req)}${req.url}`);
  u.searchParams.set('$skiptoken', Buffer.from(next).toString('base64url'));
  return { value, nextLink: u.toString() };
}

export const GROUP_PATH = `/subscriptions/:sub/resourceGroups/:rg/providers/${GROUP_TYPE}/:name`;

export function registerGroupRoutes(app: FastifyInstance, service: InstancesService, profiles: ProfileService, ctx: RenderContext, versions: ApiVersions) {
  const route = providerRoute('subscription', versions);
  const G = GROUP_PATH;

  app.put(G, route, async (req, reply) => {
    const parts = partsOf(req);
    // a group made from a container group profile: the profile's properties with what the body adds
    const expanded = await profiles.expand(parts.params.sub ?? '', parts.body);
    const a = parseGroupPut({ ...parts, body: expanded.body }, service.limitsInForce(), expanded.profile);
    const r = await service.createOrUpdate(a.ref, a, { tenantId: req.identity?.tenantId });
    setLroHeaders(req, reply, operationPath(a.ref.subscriptionId, r.operation.location, r.operation.id));
    return reply.code(r.created ? 201 : 200).send(renderGroup(r.view, ctx));
  });

  app.get(G, route, async (req) => renderGroup(await service.get(parseGroupGet(partsOf(req)).ref), ctx));

  app.patch(G, route, async (req) => {
    const a = parseGroupPatch(partsOf(req));
    return renderGroup(await service.updateTags(a.ref, a.tags), ctx);
  });

  app.delete(G, route, async (req, reply) => {
    const { ref } = parseGroupDelete(partsOf(req));
    const r = await service.delete(ref);
    if (!r) return reply.code(204).send();
    setLroHeaders(req, reply, operationPath(ref.subscriptionId, r.operation.location, r.operation.id));
    return reply.code(202).send(); // as the spec declares it: the group is gone when the operation ends
  });

  for (const run of ['start', 'stop', 'restart'] as const) {
    app.post(`${G}/${run}`, route, async (req, reply) => {
      const { ref } = parseGroupRun(partsOf(req), run);
      const op = await service.setRunState(ref, run);
      // As ACI: stop answers 204 once the group has stopped; start (202) and restart (204) are LROs to poll.
      if (run === 'stop') return reply.code(204).send();
      setLroHeaders(req, reply, operationPath(ref.subscriptionId, op.location, op.id));
      return reply.code(run === 'start' ? 202 : 204).send();
    });
  }

  const list = async (req: FastifyRequest, reply: FastifyReply) => {
    const a = parseGroupList(partsOf(req));
    if (a.watch) return watchGroups(req, reply, service, a);
    const r = await service.list(a.subscriptionId, a.resourceGroup, { startAfter: a.startAfter, limit: a.top });
    return page(req, r.views.map((v) => renderGroup(v, ctx, true)), r.next);
  };
  app.get(`/subscriptions/:sub/providers/${GROUP_TYPE}`, route, list);
  app.get(`/subscriptions/:sub/resourceGroups/:rg/providers/${GROUP_TYPE}`, route, list);

  app.get(`${G}/containers/:container/logs`, route, async (req, reply) => {
    const a = parseLogs(partsOf(req));
    const opts = { tail: a.tail, timestamps: a.timestamps };
    // berth extension: the log of the container's run before its last restart (404 when there was none).
    if (a.previous) return { content: await service.logs(a.ref, a.container, { ...opts, previous: true }) };
    if (!a.follow) return { content: await service.logs(a.ref, a.container, opts) };
    // berth extension: stream the log as it grows, as `az container attach` would.
    await service.checkContainer(a.ref, a.container);
    const ac = new AbortController();
    req.raw.on('close', () => ac.abort());
    reply.raw.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-ms-request-id': String(reply.getHeader('x-ms-request-id')) });
    await service.followLogs(a.ref, a.container, opts, (s) => reply.raw.write(s), ac.signal).catch(() => {});
    reply.raw.end();
    return reply;
  });

  app.get(`${G}/outboundNetworkDependenciesEndpoints`, route, async (req) => {
    await service.get(parseGroupGet(partsOf(req)).ref);
    return [];
  });

  // berth has no virtual networks, so there is never a service association link to remove.
  app.delete(`/subscriptions/:sub/resourcegroups/:rg/providers/Microsoft.Network/virtualNetworks/:vnet/subnets/:subnet/providers/${PROVIDER}/serviceAssociationLinks/default`,
    route, async (_req, reply) => reply.code(204).send());
}

/**
 * berth extension (`?watch=true` on a list): a stream of newline-delimited JSON, one
 * {"type":"CHANGED","resourceGroup","name"} line when a group's record or status changes, and a
 * {"type":"HEARTBEAT"} line every 15 s. Clients list once, then read again on each line.
 */
function watchGroups(req: FastifyRequest, reply: FastifyReply, service: InstancesService, a: GroupAction & { kind: 'group.list' }) {
  return streamChanges(req, reply, (tell) => service.watchGroups(a.subscriptionId, a.resourceGroup, (resourceGroup, name) => tell({ resourceGroup, name })));
}

/** The watch streams open on each server: they last as long as their clients, so its close ends them. */
const openStreams = new WeakMap<FastifyInstance, Set<() => void>>();

/**
 * Ends `app`'s watch streams as it begins to close: a close waits for the requests in flight, and a stream is one
 * until its client goes (a connected orchestrator or virtual node would hold a stopping server up for ever).
 */
export function endStreamsOnClose(app: FastifyInstance) {
  const streams = new Set<() => void>();
  openStreams.set(app, streams);
  app.addHook('preClose', async () => {
    for (const end of streams) end();
  });
}

/**
 * A watch stream: `subscribe` reports changed resources (each `{resourceGroup, name, …}` it tells);
 * changes that come together (a record and its status) go out as one CHANGED line per resource, and
 * a HEARTBEAT line every 15 s shows the stream is alive. Ends when the client goes or the server closes.
 */
export async function streamChanges(req: FastifyRequest, reply: FastifyReply, subscribe: (tell: (changed: Record<string, string>) => void) => () => void) {
  const send = (line: unknown) => reply.raw.write(`${JSON.stringify(line)}\n`);
  let pending = new Map<string, Record<string, string>>();
  let timer: NodeJS.Timeout | undefined;
  const stop = subscribe((changed) => {
    pending.set(Object.values(changed).join('/').toLowerCase(), changed);
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
  const streams = openStreams.get(req.server);
  let end = () => {};
  await new Promise<void>((resolve) => {
    end = () => {
      reply.raw.end();
      resolve();
    };
    streams?.add(end);
    req.raw.socket.once('close', () => resolve());
  });
  streams?.delete(end);
  stop();
  clearInterval(beat);
  clearTimeout(timer);
  return reply;
}
