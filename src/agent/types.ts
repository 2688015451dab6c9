// What an agent reports about the groups it runs (statuses, container views, events), and the data plane's option types.

export type { ExecHandle, ExecOptions, LogOptions, TerminalSize } from '../runtime/types.js';

export type { Event } from '../lib/events.js';
import type { Event } from '../lib/events.js';

export interface ContainerState {
  state: 'Waiting' | 'Running' | 'Terminated';
  startTime?: string;
  finishTime?: string;
  exitCode?: number;
  /**
   * For a running container with a readiness probe: 'Ready' or 'NotReady' (berth's way to show
   * readiness within ACI's schema); '' when it has none.
   */
  detailStatus?: string;
}

export interface ContainerView {
  restartCount: number;
  currentState: ContainerState;
  previousState?: ContainerState;
  events: Event[];
}

export type GroupState = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Stopped';

export interface GroupStatus {
  uid: string;
  /** The generation this status describes. */
  generation: number;
  provisioning: 'Creating' | 'Succeeded' | 'Failed';
  error?: { code: string; message: string };
  state: GroupState;
  /** The group's address on the host network (its sandbox IP). */
  ip?: string;
  containers: Record<string, ContainerView>;
  /** Init containers' views, in spec order; absent when the group has none. */
  initContainers?: Record<string, ContainerView>;
  events: Event[];
}

/**
 * What a running group has used, read at `at` (ms since the epoch, the host's clock): per container, CPU time (ns)
 * and memory in use; the group's network bytes. CPU and network are counters: rates come from two readings.
 */
export interface GroupUsage {
  uid: string;
  at: number;
  containers: Record<string, { cpuNanos: number; memoryBytes: number }>;
  rxBytes?: number;
  txBytes?: number;
}
