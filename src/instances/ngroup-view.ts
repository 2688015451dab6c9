// An NGroup in the store and on the wire: its record (what users ask for), the status its orchestrator reports back
// (berth's `…/status`, checked for the fields the server reads), and the NGroup as ARM shows it.
import type { Event } from '../agent/types.js';
import { BerthError, Codes } from '../lib/errors.js';
import { NGROUP_TYPE, ngroupId, type NGroupProperties } from './ngroup-model.js';
import type { TrackedRecord } from './profile-model.js';

export interface NGroupRecord extends TrackedRecord {
  zones: string[];
  properties: NGroupProperties;
  /** Bumped by every change of `properties` or `zones` (not of tags). */
  generation: number;
  /** Start and stop of the NGroup: a stopped NGroup's members are not replaced or scaled. */
  state: 'Running' | 'Stopped';
  deleting: boolean;
  createdAt: string;
}

/** An NGroup's events have the shape of a container group's. */
export type NGroupEvent = Event;

export const ROLLING_UPDATE_STATES = ['RollingForward', 'RollingBack', 'Completed', 'Cancelled', 'Faulted', 'RolledBack'] as const;
export type RollingUpdateState = (typeof ROLLING_UPDATE_STATES)[number];
/** The states of a rolling update under way (one a cancel stops). */
export const ACTIVE_ROLLING_UPDATE: readonly RollingUpdateState[] = ['RollingForward', 'RollingBack'];

export interface RollingUpdateStatus {
  state: RollingUpdateState;
  startTime: string;
  finishTime?: string;
  lastAction: 'Start' | 'Cancel';
  lastActionTime: string;
  error?: { code: string; message: string };
  progress?: { containerGroupsUpdateSummary: { succeededCount: number; failedCount: number; pendingCount: number } };
  [more: string]: unknown;
}

/**
 * What the orchestrator reports of an NGroup (berth's `…/status`, written with If-Match). The server
 * reads the generation it has acted on and its outcome (the NGroup's provisioningState and LROs), the
 * rolling update (latestRollingUpdate, cancelRollingUpdate), and shows the counts and events; the
 * rest is the orchestrator's own bookkeeping, kept here so that it survives the orchestrator.
 */
export interface NGroupStatus {
  observedGeneration?: number;
  provisioning?: { generation: number; state: 'Succeeded' | 'Failed'; error?: { code: string; message: string } };
  currentCount?: number;
  readyCount?: number;
  revisions?: { revision: number; count: number }[];
  rollingUpdate?: RollingUpdateStatus;
  autoscale?: Record<string, unknown>;
  events?: NGroupEvent[];
  [more: string]: unknown;
}

export interface NGroupView {
  record: NGroupRecord;
  status: NGroupStatus;
  provisioningState: 'Creating' | 'Updating' | 'Succeeded' | 'Failed' | 'Deleting';
}

/** The status document's fields the server reads, checked for their shape. */
export function checkStatus(s: NGroupStatus) {
  const fail = (target: string, message: string): never => {
    throw new BerthError(Codes.InvalidRequestContent, message, 400, target);
  };
  if (typeof s !== 'object' || s === null || Array.isArray(s)) fail('body', 'The status must be a JSON object.');
  if (s.observedGeneration !== undefined && !Number.isInteger(s.observedGeneration)) fail('observedGeneration', "'observedGeneration' must be a whole number.");
  if (s.provisioning !== undefined && (!Number.isInteger(s.provisioning?.generation) || !['Succeeded', 'Failed'].includes(s.provisioning?.state)))
    fail('provisioning', "'provisioning' must have a whole-number 'generation' and a 'state' of Succeeded or Failed.");
  const u = s.rollingUpdate;
  if (u !== undefined && (typeof u !== 'object' || u === null || !ROLLING_UPDATE_STATES.includes(u.state) || typeof u.startTime !== 'string' || !['Start', 'Cancel'].includes(u.lastAction)))
    fail('rollingUpdate', `'rollingUpdate' must have a 'state' (${ROLLING_UPDATE_STATES.join(', ')}), a 'startTime' and a 'lastAction' (Start or Cancel).`);
  if (s.events !== undefined && (!Array.isArray(s.events) || s.events.length > 100)) fail('events', "'events' must be an array of at most 100 events.");
}

/** An NGroup as ARM shows it, with berth's `instanceView` (read-only): its state, members and events. */
export function renderNGroup(v: NGroupView) {
  const r = v.record;
  const s = v.status;
  return {
    id: ngroupId(r),
    name: r.name,
    type: NGROUP_TYPE,
    location: r.location,
    ...(Object.keys(r.tags).length > 0 && { tags: r.tags }),
    ...(r.zones.length > 0 && { zones: r.zones }),
    properties: {
      ...r.properties,
      provisioningState: v.provisioningState,
      instanceView: {
        state: r.state,
        currentCount: s.currentCount ?? 0,
        readyCount: s.readyCount ?? 0,
        ...(s.revisions && { revisions: s.revisions }),
        ...(s.rollingUpdate && { rollingUpdate: { state: s.rollingUpdate.state, ...(s.rollingUpdate.error && { error: s.rollingUpdate.error }) } }),
        ...(s.autoscale && { autoscale: s.autoscale }),
        events: s.events ?? [],
      },
    },
  };
}
