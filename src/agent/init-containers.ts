// A group's init containers: run one after another, each to exit 0, before its containers start; a failed one is retried with backoff.
import type { PulledImage, Sandbox } from '../runtime/types.js';
import { runSpec, type ReconcileContext, type TrackedGroup, type Wake } from './group.js';
import { currentStatus, observeExit } from './observe.js';
import type { PlacedHostSpec } from './spec.js';
import type { GroupStatus } from './types.js';
import { announceStart, runningState, waitingView } from './views.js';

/**
 * Runs the init containers one after another. True once all have exited 0; false while one runs, waits out its
 * restart backoff (`wake` says when to look again), or failed for good (restart policy Never).
 */
export async function runInitContainers(
  ctx: ReconcileContext, p: PlacedHostSpec, s: GroupStatus, t: TrackedGroup, images: Map<string, PulledImage>, sandbox: Sandbox, wake: Wake,
): Promise<boolean> {
  const views = (s.initContainers ??= {});
  for (const ic of p.spec.initContainers) {
    const v = (views[ic.name] ??= waitingView());
    const st = await currentStatus(ctx, p, s, ic.name);
    if (!st) {
      // Gone from the host after it completed (a crash between steps): done is done.
      if (v.currentState.state === 'Terminated' && v.currentState.exitCode === 0) continue;
      announceStart(v, ic, await ctx.rt.containers.start(runSpec(ctx, p, ic, images.get(ic.image)!, sandbox)));
      ctx.emit(s);
      return false;
    }
    if (st.state === 'running') {
      if (v.currentState.state !== 'Running') {
        v.currentState = runningState(ic, st.startedAt);
        ctx.emit(s);
      }
      return false;
    }
    if (st.state !== 'exited') return false;
    observeExit(ctx, s, ic.name, v, st);
    if (st.exitCode === 0) continue;
    // A failed init container is retried unless the group never restarts anything (then the group has failed).
    if (p.spec.restartPolicy === 'Never') return false;
    const waitMs = t.restarts.remainingMs(ic.name, st, v);
    if (waitMs > 0) {
      wake.at(waitMs);
      return false;
    }
    const again = await ctx.rt.containers.start(runSpec(ctx, p, ic, images.get(ic.image)!, sandbox));
    t.restarts.restarted(ic.name, v, runningState(ic, again.startedAt));
    ctx.emit(s);
    return false;
  }
  return true;
}
