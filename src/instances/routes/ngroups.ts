// The NGroup routes (Microsoft.ContainerInstance/ngroups, `NGroups` in Microsoft's templates: paths match without
// regard to case): CRUD and lists as LROs, start/stop/restart, the rolling update's status and cancel, and berth's
// status document and watch that the orchestrator uses.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { setLroHeaders } from '../../arm/lro.js';
import { providerRoute, type ApiVersions } from '../../arm/route-scope.js';
import { BerthError, Codes } from '../../lib/errors.js';
import { parseListPage } from '../actions.js';
import { checkSubscriptionId } from '../model.js';
import { NGROUP_TYPE } from '../ngroup-model.js';
import { renderNGroup, type NGroupStatus } from '../ngroup-view.js';
import type { NGroupService } from '../ngroups.js';
import type { ResourceRef } from '../profile-model.js';
import { PROVIDER } from '../service.js';
import { page, partsOf, streamChanges } from './groups.js';

export const NGROUP_PATH = `/subscriptions/:sub/resourceGroups/:rg/providers/${NGROUP_TYPE}/:name`;

const refOf = (req: FastifyRequest): ResourceRef => {
  const p = req.params as { sub: string; rg: string; name: string };
  return { subscriptionId: p.sub, resourceGroup: p.rg, name: p.name };
};

/** Where an NGroup operation is polled (ACI's `operationStatuses`). */
const operationPath = (sub: string, location: string, id: string) =>
  `/subscriptions/${sub}/providers/${PROVIDER}/locations/${encodeURIComponent(location)}/operationStatuses/${id}`;

export function registerNGroupRoutes(app: FastifyInstance, ngroups: NGroupService, versions: ApiVersions) {
  const route = providerRoute('subscription', versions);
  const N = NGROUP_PATH;
  const lro = (req: FastifyRequest, reply: FastifyReply, op: { subscriptionId: string; location: string; id: string }) =>
    setLroHeaders(req, reply, operationPath(op.subscriptionId, op.location, op.id));

  app.put(N, route, async (req, reply) => {
    const r = await ngroups.put(refOf(req), req.body);
    lro(req, reply, r.operation);
    return reply.code(r.created ? 201 : 200).send(renderNGroup(r.view));
  });
  app.get(N, route, async (req) => renderNGroup(await ngroups.get(refOf(req))));
  app.patch(N, route, async (req, reply) => {
    const r = await ngroups.patch(refOf(req), req.body);
    lro(req, reply, r.operation);
    return renderNGroup(r.view);
  });
  app.delete(N, route, async (req, reply) => {
    const op = await ngroups.delete(refOf(req));
    if (!op) return reply.code(204).send();
    lro(req, reply, op);
    return reply.code(202).send();
  });

  for (const action of ['start', 'restart'] as const)
    app.post(`${N}/${action}`, route, async (req, reply) => {
      lro(req, reply, await ngroups.runAction(refOf(req), action));
      return reply.code(202).send();
    });
  // as a group's: answered once the members have stopped
  app.post(`${N}/stop`, route, async (req, reply) => {
    await ngroups.runAction(refOf(req), 'stop');
    return reply.code(204).send();
  });

  // Microsoft's docs (not the spec): the latest rolling update, and its cancellation
  app.get(`${N}/latestRollingUpdate`, route, async (req) => ngroups.latestRollingUpdate(refOf(req)));
  app.post(`${N}/cancelRollingUpdate`, route, async (req) => ngroups.cancelRollingUpdate(refOf(req)));

  // berth: the orchestrator's report, read and written with an ETag
  app.get(`${N}/status`, route, async (req, reply) => {
    const s = await ngroups.getStatus(refOf(req));
    reply.header('ETag', s.etag);
    return { generation: s.generation, ...s.status };
  });
  app.put(`${N}/status`, route, async (req, reply) => {
    const ifMatch = req.headers['if-match'];
    const { generation: _readOnly, ...status } = (req.body ?? {}) as NGroupStatus & { generation?: unknown };
    const r = await ngroups.putStatus(refOf(req), status, typeof ifMatch === 'string' ? ifMatch : undefined);
    reply.header('ETag', r.etag);
    return reply.code(204).send();
  });

  const list = async (req: FastifyRequest, reply: FastifyReply) => {
    const a = parseListPage(partsOf(req));
    if (a.watch) return streamChanges(req, reply, (tell) => ngroups.watch(a, (subscriptionId, resourceGroup, name) => tell({ subscriptionId, resourceGroup, name })));
    const r = await ngroups.list(a.subscriptionId, a.resourceGroup, { startAfter: a.startAfter, limit: a.top });
    return page(req, r.views.map(renderNGroup), r.next);
  };
  app.get(`/subscriptions/:sub/providers/${NGROUP_TYPE}`, route, list);
  app.get(`/subscriptions/:sub/resourceGroups/:rg/providers/${NGROUP_TYPE}`, route, list);

  // berth: the NGroups of every subscription the caller may use, and their changes (an orchestrator's watch)
  app.get(`/providers/${NGROUP_TYPE}`, providerRoute('caller', versions), async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const subscriptions = req.identity!.subscriptions;
    if (q.watch === 'true') return streamChanges(req, reply, (tell) => ngroups.watch({ subscriptions }, (subscriptionId, resourceGroup, name) => tell({ subscriptionId, resourceGroup, name })));
    const token = q.$skiptoken;
    if (token !== undefined && (typeof token !== 'string' || !/^[A-Za-z0-9_-]{1,2048}$/.test(token)))
      throw new BerthError(Codes.InvalidRequestContent, "'$skiptoken' is not one berth gave out.", 400, '$skiptoken');
    const r = await ngroups.listAcross(subscriptions, { ...(token !== undefined && { startAfter: Buffer.from(token, 'base64url').toString() }) });
    return page(req, r.views.map(renderNGroup), r.next);
  });

  app.get(`/subscriptions/:sub/providers/${PROVIDER}/locations/:loc/operationStatuses/:op`, route, async (req, reply) => {
    const { sub, op: id } = req.params as { sub: string; op: string };
    checkSubscriptionId(sub);
    const op = await ngroups.operation(sub, id);
    if (op.status === 'InProgress') reply.header('Retry-After', '1');
    return op;
  });
}
