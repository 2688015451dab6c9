// Azure Monitor's metrics of a container group (`{group}/providers/Microsoft.Insights/metrics` and its metric
// definitions), as ACI publishes them: what an autoscaler (berth's orchestrator) or `az monitor metrics list` reads.
import type { FastifyInstance } from 'fastify';
import { providerRoute } from '../../arm/route-scope.js';
import { parseGroupGet } from '../actions.js';
import { METRICS, metricsOf, parseMetricQuery } from '../metrics.js';
import { groupId } from '../render.js';
import type { InstancesService } from '../service.js';
import { GROUP_PATH, partsOf } from './groups.js';

/** Microsoft.Insights' api-versions of the metrics API. */
const INSIGHTS_VERSIONS = ['2018-01-01', '2019-07-01', '2021-05-01', '2023-10-01', '2024-02-01'];

/** Readings before a query's start that are still asked for: the rate at its first reading comes from the one before. */
const LOOKBACK_MS = 60_000;

/** `intervalMs`: how often hosts read their groups' counters (the metrics' time grain). */
export function registerMetricRoutes(app: FastifyInstance, service: InstancesService, o: { intervalMs: number }) {
  const route = providerRoute('subscription', { accepts: (v) => INSIGHTS_VERSIONS.includes(v), list: INSIGHTS_VERSIONS });
  const M = `${GROUP_PATH}/providers/Microsoft.Insights`;

  app.get(`${M}/metrics`, route, async (req) => {
    const { ref } = parseGroupGet(partsOf(req));
    const q = parseMetricQuery(req.query as Record<string, unknown>, Date.now());
    const { record: r, readings } = await service.groupUsage(ref, q.start - LOOKBACK_MS);
    return metricsOf({ resourceId: groupId(r.subscriptionId, r.resourceGroup, r.name), containers: r.spec.containers.map((c) => c.name), location: r.location }, readings, q);
  });

  app.get(`${M}/metricDefinitions`, route, async (req) => {
    const { ref } = parseGroupGet(partsOf(req));
    const r = (await service.get(ref)).record;
    const id = groupId(r.subscriptionId, r.resourceGroup, r.name);
    return {
      value: Object.entries(METRICS).map(([name, m]) => ({
        id: `${id}/providers/microsoft.insights/metricdefinitions/${name}`, resourceId: id, namespace: 'Microsoft.ContainerInstance/containerGroups',
        name: { value: name, localizedValue: m.localized }, isDimensionRequired: false, unit: m.unit, primaryAggregationType: 'Average',
        supportedAggregationTypes: ['None', 'Average', 'Minimum', 'Maximum', 'Total', 'Count'],
        metricAvailabilities: [{ timeGrain: `PT${Math.max(1, Math.round(o.intervalMs / 1000))}S`, retention: 'PT1H' }],
        dimensions: [{ value: 'containerName', localizedValue: 'containerName' }],
      })),
    };
  });
}
