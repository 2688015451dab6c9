// A group's status as the agent reports it: container views, events, and the group state they add up to.
import { Codes } from '../lib/errors.js';
import { addEvent } from '../lib/events.js';
export { addEvent };
import type { ContainerStatus } from '../runtime/types.js';
import type { HostContainer, HostInitContainer, PlacedHostSpec } from './spec.js';
import type { ContainerState, ContainerView, Event, GroupState, GroupStatus } from './types.js';

const now = () => new Date().toISOString();

/** The view of a container or init container of the group. */
export const viewOf = (s: GroupStatus, name: string): ContainerView | undefined => s.containers[name] ?? s.initContainers?.[name];

export const waitingView = (): ContainerView => ({ restartCount: 0, currentState: { state: 'Waiting', detailStatus: 'Waiting' }, events: [] });

/** A container that just started: not ready until its readiness probe says so. */
export const runningState = (c: HostInitContainer | HostContainer, startedAt: string | undefined): ContainerState =>
  ({ state: 'Running', startTime: startedAt ?? now(), detailStatus: 'readinessProbe' in c && c.readinessProbe ? 'NotReady' : '' });

/** A fresh start of a container (or init container) in its view. */
export function announceStart(v: ContainerView, c: HostInitContainer | HostContainer, st: ContainerStatus) {
  addEvent(v.events, 'Created', `Created container ${c.name}`);
  addEvent(v.events, 'Started', `Started container ${c.name}`);
  v.currentState = runningState(c, st.startedAt);
}

export function terminated(st: ContainerStatus): ContainerState {
  const code = st.exitCode ?? -1;
  return {
    state: 'Terminated', exitCode: code, startTime: st.startedAt, finishTime: st.finishedAt ?? now(),
    detailStatus: st.oomKilled ? 'OOMKilled' : code === 0 ? 'Completed' : 'Error',
  };
}

/** The status a generation starts from: every container waiting (stopped, for a Stopped spec), the group's events kept. */
export function freshStatus(p: PlacedHostSpec, events: Event[]): GroupStatus {
  const { spec } = p;
  const s: GroupStatus = {
    uid: p.uid, generation: p.generation, provisioning: 'Creating', state: spec.state === 'Stopped' ? 'Stopped' : 'Pending',
    containers: Object.fromEntries(spec.containers.map((c) => [c.name, waitingView()])),
    ...(spec.initContainers.length > 0 && { initContainers: Object.fromEntries(spec.initContainers.map((c) => [c.name, waitingView()])) }),
    events,
  };
  if (spec.state === 'Stopped') {
    s.provisioning = 'Succeeded';
    for (const v of Object.values(s.containers)) v.currentState = { state: 'Terminated', detailStatus: 'Stopped' };
  }
  return s;
}

export function groupState(p: PlacedHostSpec, s: GroupStatus): GroupState {
  const { spec } = p;
  if (spec.state === 'Stopped') return 'Stopped';
  if (s.provisioning === 'Failed') return 'Failed';
  const inits = Object.values(s.initContainers ?? {});
  const initFailed = inits.some((v) => v.currentState.state === 'Terminated' && v.currentState.exitCode !== 0);
  if (initFailed && spec.restartPolicy === 'Never') return 'Failed';
  const views = Object.values(s.containers);
  // Nothing started yet (images, init containers): pending, as a pod that is initializing.
  if (views.every((v) => v.currentState.state === 'Waiting')) return 'Pending';
  if (views.some((v) => v.currentState.state === 'Waiting')) return s.provisioning === 'Creating' ? 'Pending' : 'Running';
  if (views.some((v) => v.currentState.state === 'Running')) return 'Running';
  // All terminated: running still if any will be restarted.
  if (spec.restartPolicy === 'Always') return 'Running';
  if (spec.restartPolicy === 'OnFailure' && views.some((v) => v.currentState.exitCode !== 0)) return 'Running';
  return views.every((v) => v.currentState.exitCode === 0) ? 'Succeeded' : 'Failed';
}

/** The error of provisioning that outran its timeout (ARM's code and wording), with what it was still doing. */
export function provisioningTimeout(p: PlacedHostSpec, s: GroupStatus) {
  const { spec } = p;
  const pulling = [...spec.initContainers, ...spec.containers].filter((c) => {
    const ev = viewOf(s, c.name)?.events ?? [];
    return ev.some((e) => e.name === 'Pulling') && !ev.some((e) => e.name === 'Pulled');
  }).map((c) => c.image);
  const doing = pulling.length > 0 ? `; still pulling image ${[...new Set(pulling)].map((i) => `"${i}"`).join(', ')}` : '';
  return {
    code: Codes.ResourceDeploymentFailure,
    message: `The resource provision operation did not complete within the allowed timeout period: container group '${spec.hostname}' was not provisioned within ${spec.provisioningTimeoutSeconds} s (provisioningTimeoutInSeconds)${doing}. Everything it had made was removed.`,
  };
}

export function fmtBytes(n: number) {
  if (n >= 1 << 30) return `${+(n / (1 << 30)).toFixed(2)} GiB`;
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}
