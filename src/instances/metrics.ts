// Container group metrics as Azure Monitor serves ACI's (CpuUsage in millicores, MemoryUsage in bytes, network bytes
// per second), made from the counters a group's host read: queries by timespan, interval, aggregation and container.
import { parseDuration } from '../lib/duration.js';
import { BerthError, Codes } from '../lib/errors.js';
import type { GroupUsage } from '../agent/types.js';

/** ACI's metrics, their units, and how a sample becomes a value. */
export const METRICS = {
  CpuUsage: { unit: 'Count', localized: 'CPU Usage' },
  MemoryUsage: { unit: 'Bytes', localized: 'Memory Usage' },
  NetworkBytesReceivedPerSecond: { unit: 'BytesPerSecond', localized: 'Network Bytes Received Per Second' },
  NetworkBytesTransmittedPerSecond: { unit: 'BytesPerSecond', localized: 'Network Bytes Transmitted Per Second' },
} as const;
export type MetricName = keyof typeof METRICS;

const AGGREGATIONS = ['Average', 'Minimum', 'Maximum', 'Total', 'Count'] as const;
type Aggregation = (typeof AGGREGATIONS)[number];

export interface MetricQuery {
  metrics: MetricName[];
  start: number;
  end: number;
  /** undefined: one point for the whole timespan (`FULL`). */
  intervalMs?: number;
  aggregations: Aggregation[];
  /** Split by container: every one ('*'), or one by name. */
  container?: string;
}

const HOUR = 3_600_000;

/** The group a query is about, as its record says. */
export interface MetricSubject {
  resourceId: string;
  containers: string[];
  location: string;
}

/** The query parameters of Azure Monitor's metrics API (metricnames, timespan, interval, aggregation, $filter), checked. */
export function parseMetricQuery(q: Record<string, unknown>, now: number): MetricQuery {
  const bad = (target: string, message: string): never => {
    throw new BerthError(Codes.InvalidMetricQuery, message, 400, target);
  };
  const str = (k: string) => (typeof q[k] === 'string' ? (q[k] as string) : undefined);
  const metrics = (str('metricnames') ?? 'CpuUsage').split(',').map((n) => n.trim()).filter(Boolean).map((n) =>
    (Object.keys(METRICS) as MetricName[]).find((m) => m.toLowerCase() === n.toLowerCase()) ?? bad('metricnames', `The metric '${n.slice(0, 60)}' is not one a container group has: ${Object.keys(METRICS).join(', ')}.`));
  let start = now - HOUR;
  let end = now;
  const timespan = str('timespan');
  if (timespan !== undefined) {
    const parts = timespan.split('/');
    const time = (s: string) => {
      const t = Date.parse(s);
      return Number.isNaN(t) ? undefined : t;
    };
    if (parts.length === 1) {
      const d = parseDuration(parts[0]);
      if (d === undefined) bad('timespan', `The timespan '${timespan.slice(0, 60)}' is not 'start/end', 'start/duration' or a duration.`);
      start = now - d!;
    } else if (parts.length === 2) {
      const [a, b] = [time(parts[0]), time(parts[1])];
      const d = parseDuration(parts[1]);
      if (a === undefined || (b === undefined && d === undefined)) bad('timespan', `The timespan '${timespan.slice(0, 60)}' is not 'start/end', 'start/duration' or a duration.`);
      start = a!;
      end = b ?? a! + d!;
    } else bad('timespan', `The timespan '${timespan.slice(0, 60)}' is not 'start/end', 'start/duration' or a duration.`);
    if (end <= start) bad('timespan', 'The timespan ends before it starts.');
  }
  const interval = str('interval');
  let intervalMs: number | undefined = 60_000;
  if (interval !== undefined) {
    if (interval.toUpperCase() === 'FULL') intervalMs = undefined;
    else {
      intervalMs = parseDuration(interval);
      if (intervalMs === undefined || intervalMs < 1000 || intervalMs % 1000 !== 0) bad('interval', `The interval '${interval.slice(0, 40)}' must be an ISO 8601 duration of whole seconds, at least PT1S, or FULL.`);
    }
  }
  if (intervalMs !== undefined && (end - start) / intervalMs > 10_000) bad('interval', 'The timespan holds more than 10000 intervals.');
  const aggregations = (str('aggregation') ?? 'Average').split(',').map((a) => a.trim()).filter(Boolean).map((a) =>
    AGGREGATIONS.find((x) => x.toLowerCase() === a.toLowerCase()) ?? bad('aggregation', `The aggregation '${a.slice(0, 40)}' is not one of ${AGGREGATIONS.join(', ')}.`));
  const filter = str('$filter');
  let container: string | undefined;
  if (filter !== undefined) {
    const m = /^\s*containerName\s+eq\s+'([^']*)'\s*$/i.exec(filter);
    if (!m) bad('$filter', "The filter must be containerName eq '*' or containerName eq '<name>'.");
    container = m![1];
  }
  return { metrics, start, end, intervalMs, aggregations, ...(container !== undefined && { container }) };
}

/**
 * Azure Monitor's answer for a group from the readings its host took (oldest first): one entry per metric, one time
 * series per container (split) or for the group.
 */
export function metricsOf(group: MetricSubject, readings: GroupUsage[], q: MetricQuery) {
  const split = q.container === undefined ? [undefined] : q.container === '*' ? group.containers : group.containers.filter((c) => c === q.container);
  return {
    cost: 0,
    timespan: `${iso(q.start)}/${iso(q.end)}`,
    interval: q.intervalMs === undefined ? 'FULL' : `PT${q.intervalMs / 1000}S`,
    value: q.metrics.map((metric) => ({
      id: `${group.resourceId}/providers/Microsoft.Insights/metrics/${metric}`,
      type: 'Microsoft.Insights/metrics',
      name: { value: metric, localizedValue: METRICS[metric].localized },
      unit: METRICS[metric].unit,
      timeseries: split.map((container) => ({
        metadatavalues: container === undefined ? [] : [{ name: { value: 'containername', localizedValue: 'containername' }, value: container }],
        data: pointsOf(readings, metric, container, q),
      })),
    })),
    namespace: 'Microsoft.ContainerInstance/containerGroups',
    resourceregion: group.location,
  };
}

const iso = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The metric's values (each at its reading's time), bucketed by the interval and aggregated. */
function pointsOf(readings: GroupUsage[], metric: MetricName, container: string | undefined, q: MetricQuery) {
  const values: { at: number; v: number }[] = [];
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i];
    if (r.at < q.start || r.at >= q.end) continue;
    const v = valueOf(metric, container, r, readings[i - 1]);
    if (v !== undefined) values.push({ at: r.at, v });
  }
  const step = q.intervalMs ?? q.end - q.start;
  const out = [];
  for (let t = q.start; t < q.end; t += step) {
    const inBucket = values.filter((x) => x.at >= t && x.at < t + step).map((x) => x.v);
    const point: Record<string, unknown> = { timeStamp: iso(t) };
    if (inBucket.length > 0)
      for (const a of q.aggregations) {
        const total = inBucket.reduce((n, v) => n + v, 0);
        const value = { Average: total / inBucket.length, Minimum: Math.min(...inBucket), Maximum: Math.max(...inBucket), Total: total, Count: inBucket.length }[a];
        point[a.toLowerCase()] = Math.round(value * 1000) / 1000;
      }
    out.push(point);
  }
  return out;
}

/** A metric's value at a reading: rates from the reading before (a restarted container's counter went back: no value). */
function valueOf(metric: MetricName, container: string | undefined, r: GroupUsage, prev: GroupUsage | undefined): number | undefined {
  const names = container === undefined ? Object.keys(r.containers) : [container];
  if (metric === 'MemoryUsage') return names.reduce((n, c) => n + (r.containers[c]?.memoryBytes ?? 0), 0);
  if (!prev) return undefined;
  const seconds = (r.at - prev.at) / 1000;
  if (seconds <= 0) return undefined;
  if (metric === 'CpuUsage') {
    let ns = 0;
    for (const c of names) {
      const [now, before] = [r.containers[c]?.cpuNanos, prev.containers[c]?.cpuNanos];
      if (now === undefined || before === undefined || now < before) return undefined;
      ns += now - before;
    }
    // millicores: ns of CPU per second of time, in thousandths of a core
    return ns / seconds / 1e6;
  }
  const [now, before] = metric === 'NetworkBytesReceivedPerSecond' ? [r.rxBytes, prev.rxBytes] : [r.txBytes, prev.txBytes];
  if (now === undefined || before === undefined || now < before) return undefined;
  return (now - before) / seconds;
}
