// The container group profile routes (Microsoft.ContainerInstance/containerGroupProfiles): CRUD, tags, lists and revisions.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { providerRoute, type ApiVersions } from '../../arm/route-scope.js';
import { PROFILE_TYPE, parseProfileBody, parseProfilePatch, renderProfile, type ResourceRef } from '../profile-model.js';
import type { ProfileService } from '../profiles.js';
import type { InstancesService } from '../service.js';
import { parseListPage } from '../actions.js';
import { page, partsOf } from './groups.js';

export const PROFILE_PATH = `/subscriptions/:sub/resourceGroups/:rg/providers/${PROFILE_TYPE}/:name`;

const refOf = (req: FastifyRequest): ResourceRef => {
  const p = req.params as { sub: string; rg: string; name: string };
  return { subscriptionId: p.sub, resourceGroup: p.rg, name: p.name };
};

export function registerProfileRoutes(app: FastifyInstance, profiles: ProfileService, service: InstancesService, versions: ApiVersions) {
  const route = providerRoute('subscription', versions);
  const P = PROFILE_PATH;

  app.put(P, route, async (req, reply) => {
    const r = await profiles.put(refOf(req), parseProfileBody(req.body, service.limitsInForce()));
    return reply.code(r.created ? 201 : 200).send(renderProfile(r.view));
  });
  app.get(P, route, async (req) => renderProfile(await profiles.get(refOf(req))));
  app.patch(P, route, async (req) => renderProfile(await profiles.updateTags(refOf(req), parseProfilePatch(req.body))));
  app.delete(P, route, async (req, reply) => reply.code((await profiles.delete(refOf(req))) ? 200 : 204).send());
  app.get(`${P}/revisions`, route, async (req) => ({ value: (await profiles.listRevisions(refOf(req))).map(renderProfile) }));
  app.get(`${P}/revisions/:revision`, route, async (req) => renderProfile(await profiles.getRevision(refOf(req), (req.params as { revision: string }).revision)));

  const list = async (req: FastifyRequest) => {
    const a = parseListPage(partsOf(req));
    const r = await profiles.list(a.subscriptionId, a.resourceGroup, { startAfter: a.startAfter, limit: a.top });
    return page(req, r.views.map(renderProfile), r.next);
  };
  app.get(`/subscriptions/:sub/providers/${PROFILE_TYPE}`, route, list);
  app.get(`/subscriptions/:sub/resourceGroups/:rg/providers/${PROFILE_TYPE}`, route, list);
}
