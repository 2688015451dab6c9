// An NGroup's members as the orchestrator sees them: the container groups that carry its id, each with the
// profile revision it was made from, the zone and fault domain it was put in, and its health.
import { createHash } from 'node:crypto';
import type { ContainerGroupResource } from '../client/index.js';

/**
 * healthy: provisioned, every container running and ready (readiness probes pass). pending: on its
 * way (provisioning, starting, not ready yet, restarting). failed: its provisioning failed, it ended
 * in failure, or a container is stuck restarting. stopped: stopped or completed on purpose.
 * deleting: going.
 */
export type Health = 'healthy' | 'pending' | 'failed' | 'stopped' | 'deleting';

export interface Member {
  name: string;
  resourceGroup: string;
  id: string;
  profileId?: string;
  revision?: number;
  zone?: string;
  faultDomain?: number;
  /** The host it runs on (berth's placement extension); undefined while it waits for one, or where none is shown. */
  host?: string;
  health: Health;
  /** Why a failed member is failed. */
  reason?: string;
  group: ContainerGroupResource;
}

/** The tags the orchestrator puts on a member to remember where it placed it (a berth convention). */
export const ZONE_TAG = 'berth.zone';
export const FAULT_DOMAIN_TAG = 'berth.faultDomain';
/** The tag that tells an NGroup's members apart from other groups in placement rules' selectors (ids do not fit a tag value). */
export const NGROUP_TAG = 'berth.ngroup';
export const ngroupTagOf = (ngroupId: string) => createHash('sha256').update(ngroupId.toLowerCase()).digest('hex').slice(0, 32);

/** Restarts after which a container that is not running counts as stuck in a restart loop. */
export const RESTART_LOOP_THRESHOLD = 3;

export function healthOf(g: ContainerGroupResource, restartThreshold = RESTART_LOOP_THRESHOLD): { health: Health; reason?: string } {
  const p = g.properties;
  if (p.provisioningState === 'Deleting') return { health: 'deleting' };
  if (p.provisioningState === 'Failed') return { health: 'failed', reason: 'its provisioning failed' };
  const state = p.instanceView?.state;
  const views = p.containers.map((c) => ({ name: c.name, view: c.properties.instanceView }));
  const exited = views.find((v) => v.view?.currentState?.state === 'Terminated' && v.view.currentState.exitCode !== 0);
  const why = exited ? `its container '${exited.name}' exited with ${exited.view?.currentState?.exitCode}` : undefined;
  if (state === 'Failed') return { health: 'failed', reason: why ?? 'it failed' };
  if (state === 'Stopped' || state === 'Succeeded') return { health: 'stopped' };
  for (const { name, view } of views) {
    const restarts = view?.restartCount ?? 0;
    if (restarts >= restartThreshold && view?.currentState?.state !== 'Running')
      return { health: 'failed', reason: `its container '${name}' is stuck restarting (${restarts} restarts)` };
  }
  // a list shows no group instance view: a group that will not restart what ended in failure has failed
  const ended = views.every((v) => v.view?.currentState?.state === 'Terminated');
  if (ended && views.length > 0 && p.restartPolicy === 'Never') return why ? { health: 'failed', reason: why } : { health: 'stopped' };
  const ready = views.every((v) => v.view?.currentState?.state === 'Running' && v.view.currentState.detailStatus !== 'NotReady');
  return { health: p.provisioningState === 'Succeeded' && ready ? 'healthy' : 'pending' };
}

export function memberOf(g: ContainerGroupResource): Member {
  const fd = g.tags?.[FAULT_DOMAIN_TAG];
  return {
    name: g.name,
    resourceGroup: g.id.split('/')[4],
    id: g.id,
    ...(g.properties.containerGroupProfile?.id && { profileId: g.properties.containerGroupProfile.id }),
    ...(g.properties.containerGroupProfile?.revision !== undefined && { revision: g.properties.containerGroupProfile.revision }),
    ...(g.tags?.[ZONE_TAG] !== undefined && { zone: g.tags[ZONE_TAG] }),
    ...(fd !== undefined && /^\d+$/.test(fd) && { faultDomain: Number(fd) }),
    ...(g.properties.placement?.host && { host: g.properties.placement.host }),
    ...healthOf(g),
    group: g,
  };
}

/**
 * On a cluster, a member whose zone has no Ready host cannot run there until one comes back: it counts as failed (and
 * is replaced in a zone that has one). Only while another zone has a Ready host: with every zone down, nothing would
 * run its replacement, and a cluster whose hosts all look NotReady for a moment must not lose its members to it.
 */
export function failUnavailableZones(members: Member[], ngroupZones: string[], readyZones: string[]): Member[] {
  if (!ngroupZones.some((z) => readyZones.includes(z))) return members;
  return members.map((m) => (m.zone === undefined || readyZones.includes(m.zone) || m.health === 'deleting' ? m
    : { ...m, health: 'failed', reason: `its zone '${m.zone}' has no Ready host` }));
}

/** A profile revision: which profile, and which revision (none: the latest when a member is made). */
export interface RevisionRef {
  profileId: string;
  revision?: number;
}

export const sameProfile = (a: string | undefined, b: string | undefined) => a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();

/** Whether a member runs `ref` (any revision of its profile when `ref` names none). */
export const runs = (m: Member, ref: RevisionRef) => sameProfile(m.profileId, ref.profileId) && (ref.revision === undefined || m.revision === ref.revision);

/** Members per revision, for the NGroup's instance view. */
export function revisionCounts(members: Member[]): { revision: number; count: number }[] {
  const counts = new Map<number, number>();
  for (const m of members) if (m.revision !== undefined) counts.set(m.revision, (counts.get(m.revision) ?? 0) + 1);
  return [...counts].sort((a, b) => a[0] - b[0]).map(([revision, count]) => ({ revision, count }));
}

/** The CPU a member requests, in cores (the sum over its containers). */
export const cpuRequestOf = (g: ContainerGroupResource) => g.properties.containers.reduce((n, c) => n + (c.properties.resources?.requests?.cpu ?? 0), 0);
