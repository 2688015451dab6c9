// Metrics from sampled counters: rates from counter differences, buckets per interval, aggregations, the per-container
// split, and the query parameters as Azure Monitor's API takes them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GroupUsage } from '../agent/types.js';
import { metricsOf, parseMetricQuery, type MetricQuery } from './metrics.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

/** A group's metrics from its host's readings, each taken at the time of `at` of its index. */
const query = (readings: Omit<GroupUsage, 'at'>[], at: number[], containers: string[], q: MetricQuery) =>
  metricsOf({ resourceId: '/id', containers, location: 'local' }, readings.map((r, i) => ({ ...r, at: at[i] })), q);

test('CPU usage is the counter difference over time, in millicores; memory is as read; network is a rate', () => {
  const g = (cpuA: number, cpuB: number, mem: number, rx: number) =>
    ({ uid: 'u1', containers: { a: { cpuNanos: cpuA, memoryBytes: mem }, b: { cpuNanos: cpuB, memoryBytes: 1000 } }, rxBytes: rx, txBytes: 0 });
  // a: 0.5 core, b: 0.25 core; 2 s apart
  const readings = [g(0, 0, 5000, 0), g(1e9, 5e8, 7000, 4000), g(2e9, 1e9, 9000, 8000)];
  const at = [T0, T0 + 2000, T0 + 4000];
  const q = parseMetricQuery({ metricnames: 'CpuUsage,MemoryUsage,NetworkBytesReceivedPerSecond', timespan: `${new Date(T0).toISOString()}/PT10S`, interval: 'PT5S', aggregation: 'Average,Maximum,Count' }, T0);
  const r = query(readings, at, ['a', 'b'], q);
  const [cpu, mem, rx] = r.value;
  assert.equal(cpu.name.value, 'CpuUsage');
  assert.equal(cpu.unit, 'Count');
  assert.deepEqual(cpu.timeseries[0].data, [
    { timeStamp: '2026-01-01T00:00:00Z', average: 750, maximum: 750, count: 2 },
    { timeStamp: '2026-01-01T00:00:05Z' },
  ]);
  assert.deepEqual(mem.timeseries[0].data[0], { timeStamp: '2026-01-01T00:00:00Z', average: 8000, maximum: 10_000, count: 3 });
  assert.equal(rx.timeseries[0].data[0].average, 2000);
  assert.equal(r.timespan, '2026-01-01T00:00:00Z/2026-01-01T00:00:10Z');
  // split by container
  const split = query(readings, at, ['a', 'b'], { ...q, metrics: ['CpuUsage'], container: '*' });
  assert.deepEqual(split.value[0].timeseries.map((t) => [t.metadatavalues[0].value, t.data[0].average]), [['a', 500], ['b', 250]]);
});

test('a counter that went back (a restarted container) gives no rate for that interval', () => {
  const one = (cpu: number) => ({ uid: 'u', containers: { a: { cpuNanos: cpu, memoryBytes: 0 } } });
  const q = parseMetricQuery({ timespan: `${new Date(T0).toISOString()}/PT3S`, interval: 'PT1S' }, T0);
  assert.deepEqual(query([one(5e9), one(1e8), one(6e8)], [T0, T0 + 1000, T0 + 2000], ['a'], q).value[0].timeseries[0].data.map((p) => p.average), [undefined, undefined, 500]);
});

test('query parameters: names and aggregations as Azure spells them, durations ending now, bad ones refused with the parameter named', () => {
  const now = T0 + 3_600_000;
  const q = parseMetricQuery({ metricnames: 'cpuusage', timespan: 'PT30S', interval: 'FULL', $filter: "containerName eq 'web'" }, now);
  assert.deepEqual(q, { metrics: ['CpuUsage'], start: now - 30_000, end: now, intervalMs: undefined, aggregations: ['Average'], container: 'web' });
  const refused = (query: Record<string, unknown>) => {
    try {
      parseMetricQuery(query, now);
    } catch (e) {
      return [(e as { code: string }).code, (e as { target: string }).target];
    }
  };
  assert.deepEqual(refused({ metricnames: 'GpuUsage' }), ['InvalidMetricQuery', 'metricnames']);
  assert.deepEqual(refused({ interval: 'PT0.5S' }), ['InvalidMetricQuery', 'interval']);
  assert.deepEqual(refused({ timespan: 'yesterday' }), ['InvalidMetricQuery', 'timespan']);
  assert.deepEqual(refused({ aggregation: 'Median' }), ['InvalidMetricQuery', 'aggregation']);
  assert.deepEqual(refused({ $filter: "name eq 'x'" }), ['InvalidMetricQuery', '$filter']);
  assert.deepEqual(refused({ timespan: 'P30D', interval: 'PT1S' }), ['InvalidMetricQuery', 'interval']);
});
