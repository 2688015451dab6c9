// A rolling update as one level-triggered step: from the update's recorded state, the members as they are and
// the clock, what to do next (make, remove or repoint members, wait) and what the update's state becomes.
//
// Replace mode (the default, as in ACI): each batch makes new members at the target revision beside
// the old ones and removes as many old ones only once the new ones are healthy, so the update never
// costs healthy members. In-place mode repoints old members to the target revision (a PUT each), one
// batch at a time. A batch that fails (its members fail, or are not healthy by the deadline, beyond
// maxUnhealthyUpdatedPercent) ends the update: with autoRollback (berth's default) it rolls back, the
// same way, to the revision it came from; without, it is Faulted and the members stay as they are.
import { formatDuration } from '../lib/duration.js';
import type { RollingUpdateStatus } from '../client/index.js';
import { runs, type Member, type RevisionRef } from './members.js';
import { chooseVictims, fullestZone, type Layout } from './placement.js';

export interface RolloutConfig {
  /** Members per batch (from maxBatchPercent, at least one). */
  batchSize: number;
  maxUnhealthyUpdatedPercent: number;
  pauseMs: number;
  inPlace: boolean;
  autoRollback: boolean;
  healthyDeadlineMs: number;
}

/** What berth keeps in an update's record beyond what Microsoft's docs show of it. */
export interface Rollout extends RollingUpdateStatus {
  profileId: string;
  toRevision: number;
  fromProfileId: string;
  fromRevision: number;
  /** The current batch: when it began, and the zone it is in. */
  batchStartTime?: string;
  batchZone?: string;
  batches?: number;
  lastBatchEndTime?: string;
  /** Why it failed (it then rolls back, or is Faulted). */
  reason?: string;
  /** A cancelled update whose outcome the orchestrator has taken in. */
  settled?: boolean;
}

export interface RolloutStep {
  update: Rollout;
  /** New members to make at the target revision, in `zone` when given. */
  create: number;
  zone?: string;
  remove: Member[];
  /** In-place: members to PUT at the target revision. */
  repoint: Member[];
  /** Look again after this long at the latest (nothing else will say the time has come). */
  waitMs?: number;
  event?: { name: string; message: string; type: 'Normal' | 'Warning' };
}

export const isActive = (u: { state: string } | undefined) => u?.state === 'RollingForward' || u?.state === 'RollingBack';

/** The revision the update brings members to now: forward, or back. */
export const targetOf = (u: Rollout): Required<RevisionRef> =>
  u.state === 'RollingBack' ? { profileId: u.fromProfileId, revision: u.fromRevision } : { profileId: u.profileId, revision: u.toRevision };

/** The update's progress in Microsoft's terms: members at the target and healthy, failed, and to do. */
function progressOf(u: Rollout, live: Member[], desired: number) {
  const at = live.filter((m) => runs(m, targetOf(u)));
  const succeededCount = at.filter((m) => m.health === 'healthy').length;
  const failedCount = at.filter((m) => m.health === 'failed').length;
  return { containerGroupsUpdateSummary: { succeededCount, failedCount, pendingCount: Math.max(0, desired - succeededCount - failedCount) } };
}

/** The next step of an active update. `members` are the NGroup's live members (none being deleted). */
export function stepRollout(u: Rollout, members: Member[], desired: number, layout: Layout, cfg: RolloutConfig, now: number): RolloutStep {
  const iso = new Date(now).toISOString();
  const step = (update: Rollout, rest: Partial<RolloutStep> = {}): RolloutStep =>
    ({ create: 0, remove: [], repoint: [], ...rest, update: { ...update, progress: progressOf(update, members, desired) } });
  const target = targetOf(u);
  const targets = members.filter((m) => runs(m, target));
  const olds = members.filter((m) => !runs(m, target));

  if (u.state === 'RollingForward') {
    const failed = targets.filter((m) => m.health === 'failed');
    const pending = targets.filter((m) => m.health === 'pending');
    const late = u.batchStartTime !== undefined && now - Date.parse(u.batchStartTime) > cfg.healthyDeadlineMs ? pending : [];
    const unhealthy = failed.length + late.length;
    if (unhealthy > 0 && (unhealthy * 100) / Math.max(targets.length, 1) > cfg.maxUnhealthyUpdatedPercent) {
      const reason = late.length > 0
        ? `${late.length} of the ${targets.length} members at revision ${u.toRevision} did not become healthy within ${formatDuration(cfg.healthyDeadlineMs)}`
        : `${failed.length} of the ${targets.length} members at revision ${u.toRevision} failed (${failed.map((m) => `${m.name}: ${m.reason}`).join('; ')})`;
      const error = { code: 'RollingUpdateFailed', message: `The rolling update to revision ${u.toRevision} failed: ${reason}.` };
      if (cfg.autoRollback) {
        const back: Rollout = { ...u, state: 'RollingBack', reason, error, batchStartTime: undefined, lastBatchEndTime: undefined, batchZone: undefined };
        return step(back, { event: { name: 'RollingBack', message: `Rolling back to revision ${u.fromRevision}: ${reason}.`, type: 'Warning' } });
      }
      return step({ ...u, state: 'Faulted', reason, error, finishTime: iso }, { event: { name: 'RollingUpdateFailed', message: `${error.message} Members stay as they are (autoRollback is off).`, type: 'Warning' } });
    }
  }

  // the batch in flight: wait for it (an update's deadline above; a rollback waits as long as it takes)
  const inFlight = targets.filter((m) => m.health === 'pending');
  if (inFlight.length > 0) return step(u, { waitMs: 1000 });

  // short of members (some failed, or desiredCount grew): made at the target, on the clock of a batch
  if (members.length < desired) return step({ ...u, batchStartTime: u.batchStartTime ?? iso }, { create: desired - members.length, zone: u.batchZone });
  if (members.length > desired) {
    const surplus = members.length - desired;
    const victims = chooseVictims(layout, members, olds, Math.min(surplus, olds.length));
    if (victims.length < surplus) victims.push(...chooseVictims(layout, members.filter((m) => !victims.includes(m)), targets, surplus - victims.length));
    const ended = u.batchStartTime !== undefined ? { batchStartTime: undefined, batchZone: undefined, lastBatchEndTime: iso } : {};
    return step({ ...u, ...ended }, { remove: victims });
  }

  if (olds.length === 0) {
    const state = u.state === 'RollingBack' ? 'RolledBack' : 'Completed';
    const message = state === 'Completed' ? `Every member runs revision ${u.toRevision}.` : `Every member is back on revision ${u.fromRevision}: ${u.reason ?? 'the update failed'}.`;
    return step({ ...u, state, finishTime: iso, batchStartTime: undefined, batchZone: undefined }, { event: { name: state === 'Completed' ? 'RollingUpdateCompleted' : 'RolledBack', message, type: state === 'Completed' ? 'Normal' : 'Warning' } });
  }
  if (u.batchStartTime !== undefined) {
    // an in-place batch whose members are all repointed and healthy is over
    return step({ ...u, batchStartTime: undefined, batchZone: undefined, lastBatchEndTime: iso });
  }

  if (u.lastBatchEndTime !== undefined) {
    const wait = Date.parse(u.lastBatchEndTime) + cfg.pauseMs - now;
    if (wait > 0) return step(u, { waitMs: wait });
  }

  // The next batch, within one zone (the first from anywhere), never more than maxBatchPercent of the members: the
  // unhealthy old members go first (the surplus's victims and in-place targets are chosen least healthy first).
  const first = (u.batches ?? 0) === 0;
  const zone = fullestZone(layout, olds);
  const inZone = zone === undefined ? olds : olds.filter((m) => m.zone === zone);
  const size = Math.min(cfg.batchSize, first ? olds.length : inZone.length);
  const batch: Rollout = { ...u, batchStartTime: iso, ...(zone !== undefined && !first && { batchZone: zone }), batches: (u.batches ?? 0) + 1 };
  if (cfg.inPlace) return step(batch, { repoint: chooseVictims(layout, members, first ? olds : inZone, size) });
  return step(batch, { create: size, ...(batch.batchZone !== undefined && { zone: batch.batchZone }) });
}
