// Microsoft.ContainerInstance's location endpoints (usages, capabilities, cached images), its registration (resource
// types, their api-versions and zones), its operations list, and the status of its long-running operations.
import type { FastifyInstance } from 'fastify';
import { CALLER, providerRoute, SUBSCRIPTION, type ApiVersions } from '../../arm/route-scope.js';
import { parseLocation } from '../actions.js';
import { versionsOf, type AciResourceType } from '../api-versions.js';
import { checkSubscriptionId } from '../model.js';
import { PROVIDER, type InstancesService } from '../service.js';
import { partsOf } from './groups.js';

export function registerLocationRoutes(app: FastifyInstance, service: InstancesService, versions: ApiVersions) {
  const route = providerRoute('subscription', versions);
  const L = `/subscriptions/:sub/providers/${PROVIDER}/locations/:loc`;

  app.get(`${L}/usages`, route, async (req) => {
    const { subscriptionId, location } = parseLocation(partsOf(req));
    const u = await service.usage(subscriptionId, location);
    return {
      value: [
        { unit: 'Count', currentValue: u.containerGroups.current, limit: u.containerGroups.limit, name: { value: 'ContainerGroups', localizedValue: 'Container Groups' } },
        // The spec counts in integers: fractional CPU requests count as whole cores begun.
        { unit: 'Count', currentValue: Math.ceil(u.standardCores.current - 1e-9), limit: u.standardCores.limit, name: { value: 'StandardCores', localizedValue: 'Standard Cores' } },
      ],
    };
  });
  app.get(`${L}/capabilities`, route, async (req) => {
    const location = service.servedLocation(parseLocation(partsOf(req)).location);
    const l = service.limitsInForce();
    return {
      value: (['Public', 'Private'] as const).map((ipAddressType) => ({
        resourceType: 'containerGroups', osType: 'Linux', location, ipAddressType, gpu: 'None',
        capabilities: { maxMemoryInGB: l.maxMemoryGBPerContainer, maxCpu: l.maxCpuPerContainer, maxGpuCount: 0 },
      })),
    };
  });
  app.get(`${L}/cachedImages`, route, async (req) => {
    service.servedLocation(parseLocation(partsOf(req)).location);
    return { value: (await service.cachedImages()).map((image) => ({ osType: 'Linux', image })) };
  });
  // ARM's provider registration (Providers_Get, under Microsoft.Resources' api-versions): what a client reads to learn
  // the location's zones. A cluster lists those with a Ready host; a single-host berth honours none and lists none.
  app.get(`/subscriptions/:sub/providers/${PROVIDER}`, SUBSCRIPTION, async (req) => {
    const { sub } = req.params as { sub: string };
    checkSubscriptionId(sub);
    const zones = service.zonesInForce();
    const types: AciResourceType[] = ['containerGroups', 'containerGroupProfiles', 'ngroups'];
    return {
      id: `/subscriptions/${sub}/providers/${PROVIDER}`, namespace: PROVIDER, registrationState: 'Registered', registrationPolicy: 'RegistrationRequired',
      resourceTypes: [
        ...types.map((resourceType) => ({
          resourceType, locations: [service.location], apiVersions: [...versionsOf(resourceType).list].reverse(),
          ...(zones && { zoneMappings: [{ location: service.location, zones }] }), capabilities: 'SupportsTags, SupportsLocation',
        })),
        ...['locations', 'locations/usages', 'locations/capabilities', 'locations/cachedImages', 'locations/operations', 'operations'].map((resourceType) => ({
          resourceType, locations: resourceType === 'operations' ? [] : [service.location], apiVersions: [...versionsOf('containerGroups').list].reverse(), capabilities: 'None',
        })),
      ],
    };
  });
  app.get(`/providers/${PROVIDER}/operations`, { config: { ...CALLER.config, versions } }, async () => ({ value: PROVIDER_OPERATIONS }));

  app.get(`${L}/operations/:op`, route, async (req, reply) => {
    const { sub, op: id } = req.params as { sub: string; op: string };
    checkSubscriptionId(sub);
    const op = await service.operation(sub, id);
    // Clients wait Retry-After between polls (az: 30 s when it is missing).
    if (op.status === 'InProgress') reply.header('Retry-After', '1');
    return op;
  });
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
