// What the host shows of a group's containers, as the reconcile acts on it: leftovers of an interrupted start cleared, exits recorded once.
import type { ContainerStatus } from '../runtime/types.js';
import type { ReconcileContext } from './group.js';
import { containerId } from './ids.js';
import type { PlacedHostSpec } from './spec.js';
import type { ContainerView, GroupStatus } from './types.js';
import { addEvent, terminated, viewOf } from './views.js';

/**
 * A container's status as the reconcile acts on it. One found created but never started, or started without a
 * trace of its process or exit, is what a crash of berth in the middle of a start leaves (starts of a group run
 * only inside its reconcile, so none of ours is in flight): it is removed, and counts as missing, so this pass
 * starts it afresh.
 */
export async function currentStatus(ctx: ReconcileContext, p: PlacedHostSpec, s: GroupStatus, name: string): Promise<ContainerStatus | undefined> {
  const id = containerId(p.uid, p.generation, name);
  const st = await ctx.rt.containers.status(id);
  if (st?.state !== 'created' && st?.state !== 'unknown') return st;
  const v = viewOf(s, name);
  if (v) addEvent(v.events, 'Recovering', `Container ${name} was left ${st.state === 'created' ? 'created but not started' : 'half-started'} by an interrupted start; starting it again`, 'Warning');
  await ctx.rt.containers.remove(id);
  return undefined;
}

/** Records a container's exit in its view once per run (an OOM kill as an event too). */
export function observeExit(ctx: ReconcileContext, s: GroupStatus, name: string, v: ContainerView, st: ContainerStatus) {
  if (v.currentState.state === 'Terminated' && v.currentState.startTime === st.startedAt) return;
  v.currentState = terminated(st);
  if (st.oomKilled) addEvent(v.events, 'OOMKilled', `Container ${name} exceeded its memory limit and was killed`, 'Warning');
  ctx.emit(s);
}
