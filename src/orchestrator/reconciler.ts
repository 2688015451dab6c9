// One NGroup's reconcile: read its status, compare its spec with its members, decide (scale, replace what failed,
// step a rolling update, autoscale), record the decision in the status, then act through the API.
//
// Level-triggered and crash-safe: members are the container groups that carry the NGroup's id (found by
// listing, never remembered), and what cannot be seen in them (a rolling update's progress, the members
// known to be the NGroup's, the autoscaler's recommendations) is written to the NGroup's status before
// anything is done about it. A reconcile that dies halfway leaves nothing the next one cannot see and
// finish; nothing is made twice, because a member in flight is either listed or was never made.
import { isDeepStrictEqual } from 'node:util';
import type { ContainerGroupResource, ContainerInstanceClient, NGroupResource, NGroupStatus } from '../client/index.js';
import { isArmError } from '../client/index.js';
import { parseDuration } from '../lib/duration.js';
import { againAfter, done, type ReconcileResult } from '../lib/workqueue.js';
import { autoscaleStep, type AutoscaleState } from './autoscaling.js';
import { Expectations, addEvent } from './expectations.js';
import { memberBody, needsContainerNames, newMemberName } from './member-body.js';
import { failUnavailableZones, memberOf, revisionCounts, runs, sameProfile, type Member, type RevisionRef } from './members.js';
import { chooseVictims, placeNew, type Layout, type Slot } from './placement.js';
import { isActive, stepRollout, targetOf, type Rollout, type RolloutConfig } from './rollout.js';

/** What a reconcile reads: the NGroups and the container groups as the informers cache them, and a client per subscription. */
export interface ReconcileSources {
  ngroup(key: string): NGroupResource | undefined;
  /** The container groups of a subscription, or undefined while they are not listed yet. */
  groups(subscriptionId: string): ContainerGroupResource[] | undefined;
  client(subscriptionId: string): ContainerInstanceClient;
  now(): number;
}

/** What the orchestrator keeps in an NGroup's status beyond what the server reads. */
interface OrchestratorStatus extends NGroupStatus {
  /** The revision members are made at when no rolling update is under way. */
  stable?: RevisionRef;
  /** The profile reference of the spec last acted on (a change of it starts a rolling update). */
  specReference?: RevisionRef;
  /** The members known to be the NGroup's (one that disappears from it was deleted or detached by someone else). */
  members?: string[];
  rollingUpdate?: Rollout;
  autoscale?: AutoscaleState;
  /**
   * A desiredCount this orchestrator decided (a member left without maintainDesiredCount, the autoscaler) and
   * writes through the API, with the NGroup's generation it was decided at: until the NGroup has moved past that
   * generation the write has not landed (or a crash came first: it is made again), and the count is this one.
   */
  desiredCountWrite?: { count: number; generation: number };
}

/** The desiredCount in force: one this orchestrator is writing, else the NGroup's. */
const desiredOf = (ng: NGroupResource, status: OrchestratorStatus) => status.desiredCountWrite?.count ?? ng.properties?.elasticProfile?.desiredCount ?? 0;

const ROLLING_DEFAULTS = { maxBatchPercent: 20, maxUnhealthyPercent: 20, pause: 'PT1M', healthyDeadline: 'PT10M' };
/** Waits after failed API actions of one NGroup: doubled per failure in a row, up to a minute. */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 60_000;

function rolloutConfig(ng: NGroupResource, desired: number): RolloutConfig {
  const r = ng.properties?.updateProfile?.rollingUpdateProfile ?? {};
  const batchPercent = r.maxBatchPercent ?? ROLLING_DEFAULTS.maxBatchPercent;
  return {
    batchSize: Math.max(1, Math.floor((desired * batchPercent) / 100)),
    maxUnhealthyUpdatedPercent: r.maxUnhealthyUpdatedPercent ?? r.maxUnhealthyPercent ?? ROLLING_DEFAULTS.maxUnhealthyPercent,
    pauseMs: parseDuration(r.pauseTimeBetweenBatches ?? ROLLING_DEFAULTS.pause) ?? 60_000,
    inPlace: r.inPlaceUpdate === true,
    autoRollback: r.autoRollback !== false,
    healthyDeadlineMs: parseDuration(r.healthyDeadline ?? ROLLING_DEFAULTS.healthyDeadline) ?? 600_000,
  };
}

export const idParts = (id: string) => {
  const p = id.split('/');
  return { subscriptionId: p[2], resourceGroup: p[4], name: p[8] };
};

/** The work one reconcile decided, done after its status is written. */
interface Plan {
  /** The endpoint places groups on hosts: members carry their zone and fault domain as placement (see memberBody). */
  placed: boolean;
  create: { target: RevisionRef; slots: Slot[] };
  remove: Member[];
  repoint: { member: Member; target: RevisionRef }[];
  desiredCount?: number;
  waits: number[];
}

type Failure = { code: string; message: string };

export class NGroupReconciler {
  private readonly expectations = new Map<string, Expectations>();
  /** Failed actions of an NGroup, reported by its next reconcile, and when it may try again. */
  private readonly failures = new Map<string, { report: Failure[]; streak: number; retryAt: number }>();

  constructor(private readonly src: ReconcileSources) {}

  async reconcile(key: string): Promise<ReconcileResult> {
    const known = this.src.ngroup(key);
    if (!known) {
      this.expectations.delete(key);
      this.failures.delete(key);
      return done;
    }
    const { subscriptionId, resourceGroup, name } = idParts(known.id);
    const listed = this.src.groups(subscriptionId);
    if (!listed) return againAfter(200);
    const client = this.src.client(subscriptionId);
    const missing = (e: unknown) => (isArmError(e) && e.status === 404 ? undefined : Promise.reject(e));
    // the NGroup as it is now, then its status: the informer's copy may not show yet what this orchestrator wrote
    // a moment ago (a desiredCount), and a decision on it would undo that
    const ng = await client.ngroups.get(resourceGroup, name).catch(missing);
    const read = ng && (await client.ngroups.getStatus(resourceGroup, name).catch(missing));
    if (!ng || !read) return done;
    const now = this.src.now();
    const iso = new Date(now).toISOString();
    const before = read.status as OrchestratorStatus;
    const status: OrchestratorStatus = structuredClone(before);
    // a desiredCount written since it was decided (or changed by a user since): the NGroup's own is in force
    if (status.desiredCountWrite && read.generation > status.desiredCountWrite.generation) delete status.desiredCountWrite;
    const exp = this.expectationsOf(key);
    const readyZones = await this.zonesServed(client, ng);
    let all = listed.filter((g) => g.properties.orchestratorId?.toLowerCase() === key).map(memberOf);
    if (readyZones) all = failUnavailableZones(all, ng.zones ?? [], readyZones);
    exp.settle(all, now);
    const live = all.filter((m) => m.health !== 'deleting' && !exp.isDeleting(m.name));
    const plan: Plan = { placed: readyZones !== undefined, create: { target: { profileId: '' }, slots: [] }, remove: [], repoint: [], waits: [] };
    // a member waiting for a host: its zone may be turning NotReady (the reconcile that follows sees it replaced)
    if (plan.placed && live.some((m) => m.host === undefined && m.group.properties.provisioningState !== 'Failed')) plan.waits.push(1000);
    const event = (n: string, message: string, type: 'Normal' | 'Warning' = 'Normal') => addEvent(status, n, message, type, iso);
    const failed = this.failures.get(key);
    for (const f of failed?.report ?? []) event(f.code, f.message, 'Warning');
    if (failed) failed.report = [];

    if (ng.properties?.provisioningState === 'Deleting') {
      status.members = [];
      plan.remove = live;
      if (live.length > 0) plan.waits.push(1000);
    } else {
      await this.decide(ng, client, status, live, all, exp, plan, now, read.generation !== status.observedGeneration, event, readyZones);
      // after failures, nothing new is made until the retry time
      if (failed && now < failed.retryAt && (plan.create.slots.length > 0 || plan.repoint.length > 0)) {
        plan.create.slots = [];
        plan.repoint = [];
        plan.waits.push(failed.retryAt - now);
      }
      const wanted = plan.desiredCount ?? status.desiredCountWrite?.count;
      if (wanted === undefined || wanted === ng.properties?.elasticProfile?.desiredCount) delete status.desiredCountWrite;
      else {
        status.desiredCountWrite = { count: wanted, generation: read.generation };
        plan.desiredCount = wanted;
      }
    }
    this.settleProvisioning(ng, read.generation, status, live, exp, plan, this.lastFailure.get(key));
    status.observedGeneration = read.generation;
    status.currentCount = live.length;
    status.readyCount = live.filter((m) => m.health === 'healthy').length;
    status.revisions = revisionCounts(live);

    if (!isDeepStrictEqual(status, before)) {
      const written = await client.ngroups.putStatus(resourceGroup, name, status, { ifMatch: read.etag }).then(() => true, (e) => {
        if (isArmError(e) && (e.status === 412 || e.status === 404)) return false;
        throw e;
      });
      // someone else wrote it (a cancel): decide again on what it says now
      if (!written) return againAfter(0);
    }
    await this.act(key, ng, plan, exp, now);
    const waits = [...plan.waits, ...(exp.pending() ? [1000] : [])];
    return waits.length > 0 ? againAfter(Math.max(0, Math.min(...waits))) : done;
  }

  /**
   * The zones the endpoint places groups in now (its registration's zoneMappings: a berth cluster's zones with a
   * Ready host), or undefined where groups are not placed on hosts by it (a single-host berth) or the NGroup asks for
   * neither zones nor fault domains. Read at every reconcile of such an NGroup: a zone lost is acted on at once.
   */
  private async zonesServed(client: ContainerInstanceClient, ng: NGroupResource): Promise<string[] | undefined> {
    if (!ng.zones?.length && (ng.properties?.placementProfile?.faultDomainCount ?? 1) <= 1) return undefined;
    const location = (ng.location ?? '').toLowerCase();
    // a registration that cannot be read now: as last read (members made meanwhile still carry their placement)
    const zones = await client.provider.zones(location).then((z) => ({ z }), () => undefined);
    if (zones) this.zonesRead.set(location, zones.z);
    return zones ? zones.z : this.zonesRead.get(location);
  }

  /** The zones each location's registration mapped when last read. */
  private readonly zonesRead = new Map<string, string[] | undefined>();

  private expectationsOf(key: string) {
    let e = this.expectations.get(key);
    if (!e) this.expectations.set(key, (e = new Expectations()));
    return e;
  }

  /** Everything an NGroup that is not being deleted needs now, into the plan and the status. */
  private async decide(
    ng: NGroupResource, client: ContainerInstanceClient, status: OrchestratorStatus, live: Member[], all: Member[], exp: Expectations, plan: Plan,
    now: number, newGeneration: boolean, event: (n: string, m: string, t?: 'Normal' | 'Warning') => void, readyZones?: string[],
  ) {
    const stub = ng.properties?.containerGroupProfiles?.[0];
    const specRef: RevisionRef | undefined = stub && { profileId: stub.resource.id, ...(stub.revision !== undefined && { revision: stub.revision }) };
    let desired = desiredOf(ng, status);
    const layout: Layout = { zones: ng.zones ?? [], faultDomainCount: ng.properties?.placementProfile?.faultDomainCount ?? 1 };
    // new members go to the zones that can run them now (all of them when none can: they wait there with the reason)
    const open = readyZones ? layout.zones.filter((z) => readyZones.includes(z)) : layout.zones;
    const creation: Layout = open.length > 0 ? { ...layout, zones: open } : layout;

    // members gone from the NGroup without the orchestrator: deleted or detached by someone
    const gone = (status.members ?? []).filter((n) => !all.some((m) => m.name === n && m.health !== 'deleting'));
    if (gone.length > 0) {
      const them = gone.length === 1 ? 'it' : 'them';
      if (ng.properties?.elasticProfile?.maintainDesiredCount === true) event('MemberRemoved', `${gone.join(', ')} left the NGroup; replacing ${them} (maintainDesiredCount).`, 'Warning');
      else {
        desired = Math.max(0, desired - gone.length);
        plan.desiredCount = desired;
        event('MemberRemoved', `${gone.join(', ')} left the NGroup; desiredCount is now ${desired} (maintainDesiredCount is not set).`);
      }
    }
    status.members = live.map((m) => m.name).sort();

    if (ng.properties?.instanceView?.state === 'Stopped') return;
    if (!specRef) {
      if (newGeneration && desired > 0) event('NoProfile', 'The NGroup names no container group profile: it cannot make members.', 'Warning');
      return;
    }
    await this.followSpec(ng, client, status, specRef, live, now, event);

    // members that failed are replaced (a rolling update judges those at its target itself)
    const u = status.rollingUpdate;
    const judgedByUpdate = (m: Member) => u?.state === 'RollingForward' && runs(m, targetOf(u));
    const failed = live.filter((m) => m.health === 'failed' && !judgedByUpdate(m));
    for (const m of failed) event('MemberReplaced', `${m.name} is replaced: ${m.reason}.`, 'Warning');
    plan.remove.push(...failed);
    const serving = live.filter((m) => !failed.includes(m));
    const inFlight = exp.creating();

    if (u && isActive(u) && exp.pending()) {
      // members made or removed that the informer does not show yet: step on what is, not on what was
      plan.waits.push(200);
    } else if (u && isActive(u)) {
      const step = stepRollout(u, serving, desired, layout, rolloutConfig(ng, desired), now);
      status.rollingUpdate = step.update;
      if (step.event) event(step.event.name, step.event.message, step.event.type);
      const target = targetOf(step.update);
      if (step.create > 0) plan.create = { target, slots: placeNew(creation, serving, step.create, step.zone) };
      plan.remove.push(...step.remove);
      plan.repoint.push(...step.repoint.map((member) => ({ member, target })));
      if (step.waitMs !== undefined) plan.waits.push(step.waitMs);
      if (!isActive(step.update)) status.stable = step.update.state === 'RolledBack' ? { profileId: u.fromProfileId, revision: u.fromRevision } : { profileId: u.profileId, revision: u.toRevision };
    } else {
      const count = serving.length + inFlight;
      if (count < desired) {
        plan.create = { target: status.stable ?? specRef, slots: placeNew(creation, serving, desired - count) };
        event('ScaledOut', `Making ${desired - count} member${desired - count === 1 ? '' : 's'} (desiredCount ${desired}).`);
      }
      if (count > desired) {
        plan.remove.push(...chooseVictims(layout, serving, serving, count - desired));
        event('ScaledIn', `Removing ${count - desired} member${count - desired === 1 ? '' : 's'} (desiredCount ${desired}).`);
      }
    }
    status.members = status.members.filter((n) => !plan.remove.some((m) => m.name === n));
    await this.autoscale(ng, client, status, serving, plan, now, event);
  }

  /** A new profile reference or revision in the spec: a rolling update in Rolling mode, else the revision new members get. */
  private async followSpec(
    ng: NGroupResource, client: ContainerInstanceClient, status: OrchestratorStatus, specRef: RevisionRef, live: Member[], now: number,
    event: (n: string, m: string, t?: 'Normal' | 'Warning') => void,
  ) {
    const iso = new Date(now).toISOString();
    const u = status.rollingUpdate;
    // a cancelled update stays where it was going (the server says Cancelled; the orchestrator settles it once)
    if (u?.state === 'Cancelled' && !u.settled) {
      status.stable = u.reason ? { profileId: u.fromProfileId, revision: u.fromRevision } : { profileId: u.profileId, revision: u.toRevision };
      status.rollingUpdate = { ...u, settled: true };
      event('RollingUpdateCancelled', `The rolling update to revision ${u.toRevision} was cancelled; members stay on the revision they run.`, 'Warning');
    }
    const seen = status.specReference;
    if (seen && sameProfile(seen.profileId, specRef.profileId) && seen.revision === specRef.revision) return;
    const rolling = ng.properties?.updateProfile?.updateMode === 'Rolling';
    if (!seen || !rolling || live.length === 0) {
      status.specReference = specRef;
      status.stable = specRef;
      if (seen) event('ProfileChanged', `New members are made from revision ${specRef.revision ?? 'latest'} of ${specRef.profileId}; members there are stay as they are (updateMode Manual).`);
      return;
    }
    // an update goes to a revision, the latest when the spec names none
    const { resourceGroup, name } = idParts(specRef.profileId);
    const toRevision = specRef.revision ?? (await client.containerGroupProfiles.get(resourceGroup, name)).properties.revision!;
    // from where a running update came from, else from the revision most members run
    const from = u && isActive(u) ? { profileId: u.fromProfileId, revision: u.fromRevision }
      : { profileId: status.stable?.profileId ?? seen.profileId, revision: status.stable?.revision ?? mostRun(live) ?? 1 };
    status.specReference = specRef;
    status.rollingUpdate = {
      state: 'RollingForward', startTime: iso, lastAction: 'Start', lastActionTime: iso,
      profileId: specRef.profileId, toRevision, fromProfileId: from.profileId, fromRevision: from.revision,
    };
    event('RollingUpdateStarted', `Rolling update from revision ${from.revision} to ${toRevision}.`);
  }

  /** The autoscaler's sync (see autoscaling.ts): its state in the status, a desiredCount it decides into the plan. */
  private async autoscale(ng: NGroupResource, client: ContainerInstanceClient, status: OrchestratorStatus, serving: Member[], plan: Plan, now: number, event: (n: string, m: string, t?: 'Normal' | 'Warning') => void) {
    const step = await autoscaleStep(ng, client, status.autoscale, plan.desiredCount ?? desiredOf(ng, status), serving, now);
    if (step.state) status.autoscale = step.state;
    else delete status.autoscale;
    if (step.waitMs !== undefined) plan.waits.push(step.waitMs);
    if (step.desiredCount !== undefined) plan.desiredCount = step.desiredCount;
    if (step.event) event('Autoscaled', step.event);
  }

  /** The plan, through the API: members removed (the status no longer lists them), made, repointed; desiredCount changed. */
  private async act(key: string, ng: NGroupResource, plan: Plan, exp: Expectations, now: number) {
    const { subscriptionId, resourceGroup, name } = idParts(ng.id);
    const client = this.src.client(subscriptionId);
    const failures: Failure[] = [];
    const fail = (what: string) => (e: unknown) => void failures.push({ code: isArmError(e) ? e.code : 'OrchestratorError', message: `${what}: ${(e as Error).message}` });
    await Promise.all(plan.remove.map((m) => {
      exp.expectDelete(m.name, now);
      return client.containerGroups.beginDelete(m.resourceGroup, m.name).catch(fail(`Deleting ${m.name}`));
    }));
    const making = plan.create.slots.length > 0 || plan.repoint.length > 0;
    const names = making ? await this.containerNames(client, ng, plan).catch((e) => void fail('Reading the container group profile')(e)) : [];
    if (names) {
      await Promise.all(plan.create.slots.map((slot) => {
        const member = newMemberName(ng);
        exp.expectCreate(member, now);
        return client.containerGroups.beginCreateOrUpdate(resourceGroup, member, memberBody(ng, member, plan.create.target, slot, names, plan.placed)).catch((e) => {
          exp.forget(member);
          fail(`Making ${member}`)(e);
        });
      }));
      await Promise.all(plan.repoint.map(({ member, target }) => {
        const slot = { ...(member.zone !== undefined && { zone: member.zone }), faultDomain: member.faultDomain ?? 0 };
        return client.containerGroups.beginCreateOrUpdate(member.resourceGroup, member.name, memberBody(ng, member.name, target, slot, names, plan.placed)).catch(fail(`Updating ${member.name} in place`));
      }));
    }
    if (plan.desiredCount !== undefined && plan.desiredCount !== ng.properties?.elasticProfile?.desiredCount)
      await client.ngroups.beginUpdate(resourceGroup, name, { properties: { elasticProfile: { desiredCount: plan.desiredCount } } }).catch(fail('Changing desiredCount'));
    if (failures.length > 0) {
      const streak = (this.failures.get(key)?.streak ?? 0) + 1;
      this.failures.set(key, { report: failures, streak, retryAt: now + Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (streak - 1)) });
      this.lastFailure.set(key, failures[0]);
      plan.waits.push(Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (streak - 1)));
    } else if (making) {
      this.failures.delete(key);
      this.lastFailure.delete(key);
    }
  }

  private readonly lastFailure = new Map<string, Failure>();

  /** The containers of the profile revision members are made from (what the NGroup adds goes to them). */
  private async containerNames(client: ContainerInstanceClient, ng: NGroupResource, plan: Plan): Promise<string[]> {
    if (!needsContainerNames(ng)) return [];
    const target = plan.create.slots.length > 0 ? plan.create.target : plan.repoint[0].target;
    const { resourceGroup, name } = idParts(target.profileId);
    const profile = target.revision === undefined
      ? await client.containerGroupProfiles.get(resourceGroup, name)
      : await client.containerGroupProfiles.getByRevisionNumber(resourceGroup, name, target.revision);
    return profile.properties.containers.map((c) => c.name);
  }

  /**
   * The NGroup's provisioningState for its generation (what its PUT's operation waits for): Succeeded
   * once its members are made and provisioned, Failed when making them fails or it has no profile.
   */
  private settleProvisioning(ng: NGroupResource, generation: number, status: OrchestratorStatus, live: Member[], exp: Expectations, plan: Plan, failure?: Failure) {
    if (status.provisioning && status.provisioning.generation >= generation) return;
    const desired = plan.desiredCount ?? desiredOf(ng, status);
    const noProfile = !ng.properties?.containerGroupProfiles?.length;
    if ((failure || noProfile) && live.length < desired) {
      const error = failure ?? { code: 'NoContainerGroupProfile', message: 'The NGroup names no container group profile: it cannot make members.' };
      status.provisioning = { generation, state: 'Failed', error };
      return;
    }
    const settled = live.length === desired && !exp.pending() && plan.create.slots.length === 0 && plan.remove.length === 0
      && live.every((m) => m.group.properties.provisioningState === 'Succeeded' || m.group.properties.provisioningState === 'Failed');
    if (settled || ng.properties?.instanceView?.state === 'Stopped') status.provisioning = { generation, state: 'Succeeded' };
  }
}

/** The revision most of `members` run. */
function mostRun(members: Member[]): number | undefined {
  const counts = revisionCounts(members);
  return counts.reduce<{ revision: number; count: number } | undefined>((best, c) => (!best || c.count > best.count ? c : best), undefined)?.revision;
}
