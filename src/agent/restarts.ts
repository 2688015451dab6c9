// Restart backoff per container of a group: the delay doubles per consecutive restart, and resets once a run lasted long enough.
import type { ContainerStatus } from '../runtime/types.js';
import type { ContainerState, ContainerView } from './types.js';
import { addEvent } from './views.js';

export interface BackoffSettings {
  /** First restart delay; doubles per consecutive restart up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /** A container that ran this long has its backoff reset. */
  backoffResetMs: number;
}

export class RestartBackoff {
  private byContainer = new Map<string, { notBefore: number; streak: number }>();

  constructor(private readonly o: BackoffSettings) {}

  /**
   * How long the exited container `name` must wait before it starts again (0: now). The first look at an exit
   * starts its wait, and says BackOff when restarts repeat.
   */
  remainingMs(name: string, st: ContainerStatus, v: ContainerView): number {
    const r = this.byContainer.get(name) ?? { notBefore: 0, streak: 0 };
    const ranMs = st.startedAt && st.finishedAt ? Date.parse(st.finishedAt) - Date.parse(st.startedAt) : 0;
    if (r.notBefore === 0) {
      if (ranMs >= this.o.backoffResetMs) r.streak = 0;
      r.notBefore = Date.now() + Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** r.streak);
      this.byContainer.set(name, r);
      if (r.streak > 0) addEvent(v.events, 'BackOff', `Back-off restarting failed container ${name}`, 'Warning');
    }
    return Math.max(0, r.notBefore - Date.now());
  }

  /** The container was started again: its view shows the new run, the ended one as previous. */
  restarted(name: string, v: ContainerView, state: ContainerState) {
    const r = this.byContainer.get(name) ?? { notBefore: 0, streak: 0 };
    r.streak++;
    r.notBefore = 0;
    this.byContainer.set(name, r);
    v.previousState = v.currentState;
    v.restartCount++;
    v.currentState = state;
    addEvent(v.events, 'Started', `Started container ${name}`);
  }

  clear() {
    this.byContainer.clear();
  }
}
