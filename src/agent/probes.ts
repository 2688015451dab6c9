// Liveness and readiness probes of a group's running containers: started per container run, and what their results change in its status.
import { execProbe, type ProbeResult } from '../runtime/probe.js';
import type { ContainerStatus, Sandbox } from '../runtime/types.js';
import type { TrackedGroup } from './group.js';
import type { HostRuntime } from './host-runtime.js';
import { containerId, parseId } from './ids.js';
import { Prober, type ProbeReport } from './prober.js';
import type { HostContainer, PlacedHostSpec, ProbeSpec } from './spec.js';
import type { ContainerView, GroupStatus } from './types.js';
import { addEvent } from './views.js';

export interface GroupProbesDeps {
  rt: HostRuntime;
  stopGraceSeconds: number;
  group(uid: string): TrackedGroup | undefined;
  emit(s: GroupStatus): void;
  /** Reconciles the group again (after a container failed its liveness probe and was stopped). */
  reconcile(uid: string): void;
}

export class GroupProbes {
  private prober = new Prober((r) => this.onReport(r));

  constructor(private readonly d: GroupProbesDeps) {}

  /**
   * Keeps the probes of one running container going (a worker per container run: a restart gets new ones).
   * Adds the run's key to `probing`; `retain` stops what a reconcile did not add.
   */
  ensure(p: PlacedHostSpec, c: HostContainer, v: ContainerView, st: ContainerStatus, sandbox: Sandbox, probing: Set<string>) {
    if (!c.livenessProbe && !c.readinessProbe) return;
    const id = containerId(p.uid, p.generation, c.name);
    const started = v.currentState.startTime ?? st.startedAt ?? '';
    const key = `${id}@${started}`;
    probing.add(key);
    const startedMs = Date.parse(started) || Date.now();
    if (c.livenessProbe) this.prober.ensure(key, 'liveness', c.livenessProbe, startedMs, true, (ms) => this.probe(id, c.livenessProbe!, sandbox.ip, ms));
    if (c.readinessProbe)
      this.prober.ensure(key, 'readiness', c.readinessProbe, startedMs, v.currentState.detailStatus === 'Ready', (ms) => this.probe(id, c.readinessProbe!, sandbox.ip, ms));
  }

  /** Stops the probes of the group's container runs not in `probing`. */
  retain(uid: string, probing: Set<string>) {
    this.prober.retain(`${uid}-`, probing);
  }

  close() {
    this.prober.close();
  }

  private probe(id: string, p: ProbeSpec, ip: string, timeoutMs: number): Promise<ProbeResult> {
    if (p.httpGet) return this.d.rt.httpProbe({ host: ip, port: p.httpGet.port, path: p.httpGet.path, scheme: p.httpGet.scheme, headers: p.httpGet.headers, timeoutMs });
    return execProbe(() => this.d.rt.containers.exec(id, p.exec!.command), timeoutMs);
  }

  private onReport(r: ProbeReport) {
    const m = /^(.*)@(.*)$/.exec(r.key)!;
    const id = parseId(m[1]);
    const t = id && this.d.group(id.uid);
    const s = t?.status;
    const v = id?.name ? s?.containers[id.name] : undefined;
    // A report about an instance that is no longer current (restarted, replaced) changes nothing.
    if (!id || !t || !s || !v || s.generation !== id.gen || v.currentState.state !== 'Running' || (v.currentState.startTime ?? '') !== m[2]) return;
    const name = id.name!;
    if (!r.result.ok) addEvent(v.events, 'Unhealthy', `${r.kind === 'liveness' ? 'Liveness' : 'Readiness'} probe failed: ${r.result.message}`, 'Warning');
    if (r.kind === 'readiness') {
      if (r.changed || !r.result.ok) {
        v.currentState.detailStatus = r.healthy ? 'Ready' : 'NotReady';
        this.d.emit(s);
      }
      return;
    }
    if (!r.result.ok) this.d.emit(s);
    if (!r.healthy) {
      // Killed and then restarted (or not) by the restart policy, as Kubernetes does.
      addEvent(v.events, 'Killing', `Container ${name} failed liveness probe, will be restarted`, 'Normal');
      this.d.emit(s);
      void this.d.rt.containers.stop(m[1], this.d.stopGraceSeconds)
        .catch((e) => console.error(`agent: stop ${m[1]} after failed liveness probe: ${(e as Error).message}`))
        .finally(() => this.d.reconcile(id.uid));
    }
  }
}
