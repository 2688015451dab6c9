// The agent's contract with the control plane: the host specs placed on its host, followed from a revision, and
// what it reports back. One interface, two links: in-process over the Store (the embedded default) and HTTPS
// to the control plane's agent API (remote hosts); an agent never knows which one it has.
import type { OverlayPeer } from '../runtime/network/overlay.js';
import type { PublishedPort } from '../runtime/types.js';
import type { ExecHandle, ExecOptions, GroupStatus, GroupUsage, LogOptions } from './types.js';

/**
 * What one host runs for one group, as the control plane placed it. The agent owns the spec's shape (no ACI
 * concepts in it); links carry it as JSON without looking inside. `generation` fences: an agent never runs a
 * generation older than the newest it has seen for a uid.
 */
export interface PlacedSpec<Spec = unknown> {
  uid: string;
  generation: number;
  spec: Spec;
}

/**
 * The specs placed on a host as a stream: a `reset` (the whole set at a revision: the first event, and again
 * whenever the link could not resume — a compacted revision, a long disconnect), then each change after it,
 * in order, each once. A `delete` means: tear the group down, then report it removed.
 */
export type SpecEvent<Spec = unknown> =
  | { type: 'reset'; revision: number; specs: PlacedSpec<Spec>[] }
  | { type: 'put'; revision: number; placed: PlacedSpec<Spec> }
  | { type: 'delete'; revision: number; uid: string };

/** A host as it registers: where it is, what it offers, how to reach its own API (logs, exec). */
export interface HostRegistration {
  name: string;
  /** Address other hosts and the control plane reach it on (its underlay address in a cluster). */
  address: string;
  zone?: string;
  labels: Record<string, string>;
  /**
   * What groups may use: CPU cores and memory in GB (read from the host, overridable); on a cluster host, how many
   * groups its subnet has addresses for (one each).
   */
  allocatable: { cpu: number; memoryGB: number; addresses?: number };
  /** The agent's own HTTPS API (absent for the in-process agent). */
  dataPlane?: { url: string; certSha256: string };
  agentVersion: string;
  /** The host's end of the cluster overlay once it is up (cluster hosts only): where peers send its subnet's packets. */
  overlay?: { vtepMac: string };
}

/** The cluster overlay as the control plane assigns it to a host at registration: the same subnet at every registration. */
export interface OverlayAssignment {
  /** Every host's subnet lies in it. */
  clusterCidr: string;
  /** This host's sandboxes' subnet. */
  subnet: string;
  vni: number;
  /** VXLAN's UDP port. */
  port: number;
}

/** The overlay's hosts as every host programs them, and a version that changes whenever they do. */
export interface OverlayPeers {
  version: string;
  peers: OverlayPeer[];
}

export type { OverlayPeer } from '../runtime/network/overlay.js';

/** What the control plane holds for a host beyond its specs, for an agent that starts (again). */
export interface HostResume {
  /**
   * The last status the host reported for each group placed on it: a restarted agent continues from it
   * (restart counts, events, readiness; a provisioning that failed stays failed instead of starting over).
   */
  statuses: GroupStatus[];
  /**
   * Groups taken off the host whose removal the control plane has not heard of (the agent was away, or went
   * down before it reported): the agent makes sure nothing of them is left, then reports each removed.
   */
  removing: string[];
}

/** What a registration answers: the host is Ready while heartbeats arrive within `leaseTtlMs`, sent every `heartbeatMs`. */
export interface LeaseTerms {
  leaseTtlMs: number;
  /** Absent from control planes before failover in seconds: a third of the lease then. */
  heartbeatMs?: number;
  /** On a cluster with an overlay: this host's share of it (registration answers only). */
  overlay?: OverlayAssignment;
  /** On a cluster with an overlay: the version of its peers (OverlayPeers), to fetch them again when it changes. */
  peersVersion?: string;
}

/** Held ports a host reports at most (the agent API takes no more); one beyond them is still refused by the host itself. */
export const MAX_HELD_PORTS = 4096;

export interface ControlPlaneLink {
  /** Registers or refreshes the host (see LeaseTerms). */
  register(host: HostRegistration): Promise<LeaseTerms>;
  /** Keeps the host's lease alive; rejects when the control plane cannot be reached (the agent keeps running). */
  heartbeat(): Promise<LeaseTerms | void>;
  /** The overlay's hosts (a link to a cluster with an overlay). */
  peers?(): Promise<OverlayPeers>;
  /** Asked once as the agent starts, after the first set of specs arrived (see HostResume). */
  resume(): Promise<HostResume>;
  /**
   * Follows the specs placed on this host. `fromRevision` 0 (or one the link cannot resume from) starts with
   * a `reset`. Returns a function that stops following. Errors that end the stream are told to `onError`; the
   * link reconnects by itself and resumes after the last revision it delivered.
   */
  watchSpecs(fromRevision: number, onEvent: (e: SpecEvent) => void, onError: (e: Error) => void): () => void;
  /** The latest status of groups (batched by the caller; a link splits what its transport cannot carry at once). */
  reportStatuses(statuses: GroupStatus[]): Promise<void>;
  /** The group is gone from this host: nothing of it is left. */
  reportRemoved(uid: string): Promise<void>;
  /**
   * Every port this host keeps for its own sockets (and berth's) where groups' ports are published, in order, sent
   * whenever it changes: the placement keeps groups that publish one of them off this host, deciding from its copy
   * instead of asking the host. Absent where the control plane asks the host itself (the in-process link).
   */
  reportHeldPorts?(ports: PublishedPort[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * What the control plane asks of one host's agent directly rather than through the store: its containers'
 * output and processes. The local agent answers in-process; a remote one over its HTTPS API, to callers that
 * hold a token the control plane signed for that host, group and container.
 */
export interface HostDataPlane {
  logs(uid: string, container: string, opts: LogOptions): Promise<string>;
  followLogs(uid: string, container: string, opts: LogOptions, onChunk: (s: string) => void, signal: AbortSignal): Promise<void>;
  /** Starts a process in a running container; the caller must end it (kill) or see it end (done). */
  exec(uid: string, container: string, argv: string[], opts?: ExecOptions): Promise<ExecHandle>;
  /**
   * The readings of a group's usage the host took (its containers' cgroup counters, every few seconds, kept for an
   * hour) at or after `since` (ms since the epoch, the host's clock): what the group's metrics are made from.
   */
  usage(uid: string, since: number): Promise<GroupUsage[]>;
  /** References of the images the host has locally. */
  cachedImages(): Promise<string[]>;
  /** The ports of `ports` this host cannot publish: its own services hold them (berth's API and DNS, or any socket listening there). */
  unavailablePorts(ports: PublishedPort[]): Promise<PublishedPort[]>;
}
