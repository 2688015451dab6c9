// Runs each running container's liveness and readiness probes on their schedule and reports what changes.
import type { ProbeSpec } from './spec.js';
import type { ProbeResult } from '../runtime/probe.js';

export type ProbeKind = 'liveness' | 'readiness';

export interface ProbeReport {
  /** The container instance this worker probes (runtime id and start time). */
  key: string;
  kind: ProbeKind;
  result: ProbeResult;
  /** Readiness: the container's readiness after this result. Liveness: false once the failure threshold is reached. */
  healthy: boolean;
  /** True when `healthy` changed with this result. */
  changed: boolean;
}

interface Worker {
  timer?: NodeJS.Timeout;
  stopped: boolean;
  healthy: boolean;
  successes: number;
  failures: number;
}

/**
 * One worker per (container instance, probe kind). A worker starts `initialDelaySeconds` after the
 * container started, then probes every `periodSeconds`, one probe at a time. Readiness flips after
 * `successThreshold` successes or `failureThreshold` failures in a row; liveness reports once when
 * `failureThreshold` failures in a row are reached and then stops (the container is restarted as a
 * new instance with a worker of its own).
 */
export class Prober {
  private workers = new Map<string, Worker>();

  constructor(private onReport: (r: ProbeReport) => void) {}

  /**
   * Starts the worker for `key` unless it runs. `initiallyHealthy` carries readiness across a
   * restart of berth, so a ready container stays ready until a probe says otherwise.
   */
  ensure(key: string, kind: ProbeKind, def: ProbeSpec, startedAtMs: number, initiallyHealthy: boolean, probe: (timeoutMs: number) => Promise<ProbeResult>) {
    const wkey = `${kind}:${key}`;
    if (this.workers.has(wkey)) return;
    const w: Worker = { stopped: false, healthy: initiallyHealthy, successes: 0, failures: 0 };
    this.workers.set(wkey, w);
    const tick = async () => {
      if (w.stopped) return;
      const result = await probe(def.timeoutSeconds * 1000).catch((e: Error) => ({ ok: false, message: e.message }));
      if (w.stopped) return;
      const before = w.healthy;
      if (result.ok) {
        w.failures = 0;
        w.successes++;
        if (kind === 'readiness' && w.successes >= def.successThreshold) w.healthy = true;
      } else {
        w.successes = 0;
        w.failures++;
        if (w.failures >= def.failureThreshold) w.healthy = false;
      }
      const changed = before !== w.healthy;
      this.onReport({ key, kind, result, healthy: w.healthy, changed });
      if (kind === 'liveness' && !w.healthy) {
        w.stopped = true;
        return;
      }
      w.timer = setTimeout(tick, def.periodSeconds * 1000);
      w.timer.unref();
    };
    const delay = Math.max(0, startedAtMs + def.initialDelaySeconds * 1000 - Date.now());
    w.timer = setTimeout(tick, delay);
    w.timer.unref();
  }

  /** Stops every worker whose key is not in `keep` and whose key starts with `prefix`. */
  retain(prefix: string, keep: Set<string>) {
    for (const [wkey, w] of this.workers) {
      const key = wkey.slice(wkey.indexOf(':') + 1);
      if (key.startsWith(prefix) && !keep.has(key)) {
        w.stopped = true;
        clearTimeout(w.timer);
        this.workers.delete(wkey);
      }
    }
  }

  close() {
    this.retain('', new Set());
  }
}
