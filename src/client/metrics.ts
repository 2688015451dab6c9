// Azure Monitor's metrics of a resource (`{resourceId}/providers/Microsoft.Insights/metrics`), as ACI publishes them for groups.
import type { ClientContext } from './context.js';
import type { MetricsResponse } from './models.js';

/** The api-version of Microsoft.Insights/metrics calls. */
export const METRICS_API_VERSION = '2018-01-01';

export interface MetricsQuery {
  /** Comma-separated: CpuUsage (millicores), MemoryUsage (bytes), NetworkBytesReceivedPerSecond, NetworkBytesTransmittedPerSecond. */
  metricnames: string;
  /** ISO 8601 `start/end`, `start/duration`, or a duration ending now (berth). */
  timespan?: string;
  /** ISO 8601 duration of each point (berth takes whole seconds from PT1S). */
  interval?: string;
  /** Comma-separated: Average, Minimum, Maximum, Total, Count. */
  aggregation?: string;
  /** `containerName eq '*'`: a time series per container. */
  filter?: string;
  apiVersion?: string;
  signal?: AbortSignal;
}

export class Metrics {
  constructor(private readonly c: ClientContext) {}

  async list(resourceId: string, q: MetricsQuery): Promise<MetricsResponse> {
    const query = { metricnames: q.metricnames, timespan: q.timespan, interval: q.interval, aggregation: q.aggregation, $filter: q.filter };
    const r = await this.c.http.request<MetricsResponse>({
      method: 'GET', path: `${resourceId}/providers/Microsoft.Insights/metrics`, query, apiVersion: q.apiVersion ?? METRICS_API_VERSION, signal: q.signal,
    });
    return r.body;
  }
}
