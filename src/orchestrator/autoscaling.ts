// The autoscaler's sync of one NGroup (the HPA's loop): every sync period its members' CPU use, read from Azure Monitor's metrics, makes a recommendation which, stabilised, may change desiredCount.
import type { ContainerInstanceClient, NGroupResource } from '../client/index.js';
import { decide, recommend, settingsOf, utilization, type AutoscaleSettings } from './autoscaler.js';
import { cpuRequestOf, type Member } from './members.js';

/** What the autoscaler keeps in the NGroup's status between syncs (a type, not an interface: the status is a record). */
export type AutoscaleState = {
  lastSyncTime?: string;
  utilizationPercent?: number;
  desiredCount?: number;
  recommendations?: [number, number][];
};

export interface AutoscaleStep {
  /** The state to keep (undefined: the NGroup does not autoscale). */
  state?: AutoscaleState;
  /** When the next sync is due. */
  waitMs?: number;
  /** A desiredCount decided (written by the reconciler through the API, as a user would). */
  desiredCount?: number;
  /** Why, for the NGroup's Autoscaled event. */
  event?: string;
}

export async function autoscaleStep(ng: NGroupResource, client: ContainerInstanceClient, state: AutoscaleState | undefined, current: number, serving: Member[], now: number): Promise<AutoscaleStep> {
  const profile = ng.properties?.elasticProfile?.autoscale;
  if (!profile) return {};
  const s = settingsOf(profile);
  const last = state?.lastSyncTime ? Date.parse(state.lastSyncTime) : 0;
  if (now - last < s.syncPeriodMs) return { state, waitMs: last + s.syncPeriodMs - now };
  const rec = recommend(current, await samples(client, serving, s, now), s);
  const history = (state?.recommendations ?? []).map(([at, count]) => ({ at, count }));
  const d = decide(current, rec.count, history, s, now);
  return {
    state: {
      lastSyncTime: new Date(now).toISOString(),
      ...(rec.utilizationPercent !== undefined && { utilizationPercent: Math.round(rec.utilizationPercent * 10) / 10 }),
      desiredCount: d.count, recommendations: d.history.map((r) => [r.at, r.count]),
    },
    waitMs: s.syncPeriodMs,
    ...(d.count !== current && {
      desiredCount: d.count,
      event: `desiredCount ${current} -> ${d.count}: CPU use ${Math.round(rec.utilizationPercent ?? 0)}% of the requests (target ${s.targetPercent}%).`,
    }),
  };
}

/**
 * Each member's CPU utilisation over the metric window, from Azure Monitor's metrics of the group. A member
 * whose containers started within the window counts as not ready: its window holds its start-up, not its
 * load (the HPA's CPU initialization period does the same).
 */
function samples(client: ContainerInstanceClient, members: Member[], s: AutoscaleSettings, now: number) {
  const window = `PT${Math.max(1, Math.round(s.metricWindowMs / 1000))}S`;
  const started = (m: Member) => Math.max(...m.group.properties.containers.map((c) => Date.parse(c.properties.instanceView?.currentState?.startTime ?? '') || 0));
  return Promise.all(members.map(async (m) => {
    const ready = m.health === 'healthy' && now - started(m) > s.metricWindowMs;
    if (!ready) return { ready };
    const r = await client.metrics.list(m.id, { metricnames: 'CpuUsage', timespan: window, interval: window, aggregation: 'Average' }).catch(() => undefined);
    const points = r?.value[0]?.timeseries[0]?.data.filter((x) => x.average !== undefined) ?? [];
    const millicores = points.length > 0 ? points[points.length - 1].average! : undefined;
    return { ready, ...(millicores !== undefined && { utilizationPercent: utilization(millicores, cpuRequestOf(m.group)) }) };
  }));
}
