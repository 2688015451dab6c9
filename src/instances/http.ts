// Microsoft.ContainerInstance over HTTP: the shared ARM edge (src/arm) with this provider's routes on it.
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../arm/auth.js';
import { apiVersionOf } from '../arm/lro.js';
import { registerResourceRoutes } from '../arm/resources.js';
import { createArmServer } from '../arm/server.js';
import { ACI_API_VERSIONS, isAciApiVersion, responseForVersion, versionsOf } from './api-versions.js';
import { registerAgentRoutes, type AgentApiOptions } from './hosts/agent-api.js';
import type { Provider } from './provider.js';
import { endStreamsOnClose, registerGroupRoutes } from './routes/groups.js';
import { registerLocationRoutes } from './routes/locations.js';
import { registerMetricRoutes } from './routes/metrics.js';
import { registerNGroupRoutes } from './routes/ngroups.js';
import { registerProfileRoutes } from './routes/profiles.js';
import { registerSessionRoutes } from './routes/sessions.js';
import { PROVIDER } from './service.js';

export interface HttpOptions {
  provider: Provider;
  auth: Authenticator;
  advertiseAddress: string;
  /** In a cluster: where a host's published ports are (render.ts). */
  hostAddress?: (host: string) => string | undefined;
  /** How often hosts read their groups' usage: the time grain of the groups' metrics. Default 5 s. */
  metricsIntervalMs?: number;
  /** Subscriptions listed to callers that may use any (GET /subscriptions). */
  subscriptions: string[];
  https?: { key: Buffer; cert: Buffer };
  logger?: boolean;
  /** The agent API (/agent/v1), when hosts may join this control plane. */
  agentApi?: AgentApiOptions;
}

/** The provider's api-versions (api-versions.ts): every version Azure published. */
const ACI_VERSIONS = { accepts: isAciApiVersion, list: ACI_API_VERSIONS };

export function buildServer(o: HttpOptions): FastifyInstance {
  const { service, profiles, ngroups } = o.provider;
  const app = createArmServer({
    auth: o.auth, agents: o.agentApi?.credentials, https: o.https, logger: o.logger,
    actionOf: (method) => `${PROVIDER}/containerGroups/${method === 'GET' ? 'read' : 'write'}`,
  });
  // Each response in the shapes of the api-version it was asked in (api-versions.ts).
  app.addHook('preSerialization', async (req, _reply, payload) => responseForVersion(apiVersionOf(req), payload));
  registerResourceRoutes(app, { auth: o.auth, resourceGroups: o.provider.resourceGroups, subscriptions: o.subscriptions });
  const ctx = { advertiseAddress: o.advertiseAddress, hostAddress: o.hostAddress };
  endStreamsOnClose(app);
  registerGroupRoutes(app, service, profiles, ctx, ACI_VERSIONS);
  registerSessionRoutes(app, service, ACI_VERSIONS);
  registerLocationRoutes(app, service, ACI_VERSIONS);
  registerProfileRoutes(app, profiles, service, versionsOf('containerGroupProfiles'));
  registerNGroupRoutes(app, ngroups, versionsOf('ngroups'));
  if (o.agentApi) registerAgentRoutes(app, o.agentApi);
  registerMetricRoutes(app, service, { intervalMs: o.metricsIntervalMs ?? 5000 });
  return app;
}
