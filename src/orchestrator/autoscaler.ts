// Autoscaling an NGroup on its members' CPU utilisation, with the algorithm of Kubernetes' HorizontalPodAutoscaler:
// desired = ceil(ready members × utilisation / target), nothing when the ratio is within the tolerance, missing
// metrics taken conservatively, scale-up limited per period, and stabilisation windows over past recommendations.
import { parseDuration } from '../lib/duration.js';
import type { AutoscaleProfile } from '../client/index.js';

/** The HPA's defaults (kube-controller-manager's and autoscaling/v2's behavior). */
export const AUTOSCALE_DEFAULTS = {
  tolerance: 0.1,
  syncPeriodMs: 15_000,
  metricWindowMs: 30_000,
  scaleUpStabilizationMs: 0,
  scaleDownStabilizationMs: 300_000,
};

export interface AutoscaleSettings {
  minCount: number;
  maxCount: number;
  targetPercent: number;
  tolerance: number;
  syncPeriodMs: number;
  metricWindowMs: number;
  scaleUpStabilizationMs: number;
  scaleDownStabilizationMs: number;
}

export function settingsOf(p: AutoscaleProfile): AutoscaleSettings {
  const ms = (v: string | undefined, d: number) => (v === undefined ? d : parseDuration(v) ?? d);
  return {
    minCount: p.minCount, maxCount: p.maxCount, targetPercent: p.targetCpuUtilizationPercent,
    tolerance: p.tolerance ?? AUTOSCALE_DEFAULTS.tolerance,
    syncPeriodMs: ms(p.syncPeriod, AUTOSCALE_DEFAULTS.syncPeriodMs),
    metricWindowMs: ms(p.metricWindow, AUTOSCALE_DEFAULTS.metricWindowMs),
    scaleUpStabilizationMs: ms(p.scaleUpStabilizationWindow, AUTOSCALE_DEFAULTS.scaleUpStabilizationMs),
    scaleDownStabilizationMs: ms(p.scaleDownStabilizationWindow, AUTOSCALE_DEFAULTS.scaleDownStabilizationMs),
  };
}

/** One member as the autoscaler sees it: ready or not, and its CPU utilisation (percent of its request) when known. */
export interface Sample {
  ready: boolean;
  utilizationPercent?: number;
}

/**
 * What the members' metrics ask for (the HPA's replica calculator): the ratio of their mean
 * utilisation to the target, applied to the ready members. Within the tolerance nothing changes.
 * Members without a metric count as 0% when scaling up and 100% of the target when scaling down, and
 * members not ready as 0% when scaling up (they are not counted when scaling down): a missing number
 * never makes the NGroup move further than what is measured says.
 */
export function recommend(current: number, samples: Sample[], s: AutoscaleSettings): { count: number; utilizationPercent?: number } {
  const measured = samples.filter((x) => x.ready && x.utilizationPercent !== undefined);
  if (measured.length === 0) return { count: current };
  const mean = measured.reduce((n, x) => n + x.utilizationPercent!, 0) / measured.length;
  const ratio = mean / s.targetPercent;
  const missing = samples.filter((x) => x.ready && x.utilizationPercent === undefined).length;
  const notReady = samples.filter((x) => !x.ready).length;
  if (Math.abs(ratio - 1) <= s.tolerance) return { count: current, utilizationPercent: mean };
  if (missing === 0 && notReady === 0) return { count: Math.ceil(ratio * measured.length), utilizationPercent: mean };
  let used = measured.map((x) => x.utilizationPercent!);
  if (ratio > 1) used = [...used, ...Array(missing + notReady).fill(0)];
  else used = [...used, ...Array(missing).fill(s.targetPercent)];
  const adjusted = used.reduce((n, x) => n + x, 0) / used.length / s.targetPercent;
  // the fill-ins may turn the direction around or into the tolerance: then nothing changes
  const count = Math.ceil(adjusted * used.length);
  if (Math.abs(adjusted - 1) <= s.tolerance || (adjusted > 1) !== (ratio > 1) || (ratio > 1 ? count < current : count > current)) return { count: current, utilizationPercent: mean };
  return { count, utilizationPercent: mean };
}

export interface Recommendation {
  /** ms since the epoch */
  at: number;
  count: number;
}

/**
 * The count to scale to now: the recommendation limited to [min, max], scale-ups to at most double or
 * four more per sync period (the HPA's default policy), then stabilised: up to the lowest
 * recommendation of the scale-up window, down to the highest of the scale-down window.
 */
export function decide(current: number, recommended: number, history: Recommendation[], s: AutoscaleSettings, now: number): { count: number; history: Recommendation[] } {
  const bounded = Math.min(s.maxCount, Math.max(s.minCount, recommended));
  const kept = [...history.filter((r) => now - r.at <= Math.max(s.scaleUpStabilizationMs, s.scaleDownStabilizationMs)), { at: now, count: bounded }];
  const upWindow = kept.filter((r) => now - r.at <= s.scaleUpStabilizationMs).map((r) => r.count);
  const downWindow = kept.filter((r) => now - r.at <= s.scaleDownStabilizationMs).map((r) => r.count);
  const up = Math.min(...upWindow);
  const down = Math.max(...downWindow);
  let count = current;
  if (up > current) count = Math.min(up, Math.max(2 * current, current + 4), s.maxCount);
  else if (down < current) count = Math.max(down, s.minCount);
  // outside the bounds (they changed): back within them at once
  count = Math.min(s.maxCount, Math.max(s.minCount, count));
  return { count, history: kept };
}

/** Utilisation in percent of the CPU requested, from millicores used and cores requested. */
export const utilization = (millicores: number, requestedCores: number) => (requestedCores > 0 ? (millicores / (requestedCores * 1000)) * 100 : undefined);
