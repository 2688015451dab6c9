// One group as the agent tracks it, and what the parts of its reconcile share (the host's runtime, settings, how statuses go out).
import type { Semaphore } from '../lib/semaphore.js';
import type { ContainerSpec, PulledImage, Sandbox } from '../runtime/types.js';
import type { HostRuntime } from './host-runtime.js';
import { sandboxId, containerId } from './ids.js';
import { RestartBackoff, type BackoffSettings } from './restarts.js';
import type { HostInitContainer, PlacedHostSpec } from './spec.js';
import type { GroupStatus } from './types.js';

export interface TrackedGroup {
  /** The newest spec placed for it (never an older generation than one seen). */
  placed?: PlacedHostSpec;
  status?: GroupStatus;
  /** The spec was taken off this host: tear everything down, then forget the group. */
  removing: boolean;
  restarts: RestartBackoff;
  /** While the current generation provisions: when it must be done by, and how to stop its work. */
  provisioning?: { deadline: number; abort?: AbortController };
  /** The generation's disk was full when last looked at (its event is added once per time it fills). */
  diskFull?: boolean;
}

export const newTrackedGroup = (o: BackoffSettings): TrackedGroup => ({ removing: false, restarts: new RestartBackoff(o) });

export interface AgentSettings extends BackoffSettings {
  stopGraceSeconds: number;
}

export interface ReconcileContext {
  rt: HostRuntime;
  settings: AgentSettings;
  /** Groups provisioned (network + container starts) and torn down at once; the rest queue. */
  startSlots: Semaphore;
  /** Sends a copy of the status to whoever follows the agent. */
  emit(s: GroupStatus): void;
}

/**
 * When a reconcile wants to run again although nothing else would make it (a restart's backoff ends): the
 * earliest of what its parts asked for.
 */
export class Wake {
  afterMs?: number;

  at(ms: number) {
    this.afterMs = this.afterMs === undefined ? ms : Math.min(this.afterMs, ms);
  }
}

/** What the runtime runs for one container (or init container) of the placed generation. */
export function runSpec(ctx: ReconcileContext, p: PlacedHostSpec, c: HostInitContainer, image: PulledImage, sandbox: Sandbox): ContainerSpec {
  const sid = sandboxId(p.uid, p.generation);
  return {
    id: containerId(p.uid, p.generation, c.name),
    image,
    command: c.command.length ? c.command : undefined,
    env: Object.fromEntries(c.env.map((e) => [e.name, e.value])),
    cpuLimit: c.cpu,
    memoryLimitBytes: c.memoryBytes,
    netnsPath: sandbox.netnsPath,
    ip: sandbox.ip,
    hostname: p.spec.hostname,
    mounts: c.volumeMounts.map((m) => ({ source: ctx.rt.storage.volumeDir(sid, m.name), destination: m.mountPath, readOnly: m.readOnly })),
    scratchDir: ctx.rt.storage.scratchDir(sid, c.name),
  };
}
