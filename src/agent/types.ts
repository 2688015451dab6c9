// What the instances service asks of a host agent (desired groups) and what the agent reports back.

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';
export type Protocol = 'TCP' | 'UDP';

export interface EnvVar {
  name: string;
  value?: string;
  secureValue?: string;
}

export interface ProbeDef {
  exec?: { command: string[] };
  httpGet?: { path: string; port: number; scheme: 'http' | 'https'; httpHeaders: { name: string; value: string }[] };
  initialDelaySeconds: number;
  periodSeconds: number;
  failureThreshold: number;
  successThreshold: number;
  timeoutSeconds: number;
}

export interface VolumeMountDef {
  name: string;
  mountPath: string;
  readOnly: boolean;
}

export interface ContainerDef {
  name: string;
  image: string;
  command: string[];
  ports: { port: number; protocol: Protocol }[];
  environmentVariables: EnvVar[];
  requests: { cpu: number; memoryInGB: number };
  limits?: { cpu?: number; memoryInGB?: number };
  volumeMounts: VolumeMountDef[];
  livenessProbe?: ProbeDef;
  readinessProbe?: ProbeDef;
}

/** Runs to completion, in order, before the group's containers start. */
export interface InitContainerDef {
  name: string;
  image: string;
  command: string[];
  environmentVariables: EnvVar[];
  volumeMounts: VolumeMountDef[];
}

export interface VolumeDef {
  name: string;
  emptyDir?: Record<string, never>;
  /** file name -> base64 content */
  secret?: Record<string, string>;
  gitRepo?: { repository: string; directory?: string; revision?: string };
}

export interface RegistryCredentialDef {
  server: string;
  username: string;
  password: string;
}

export interface GroupSpec {
  containers: ContainerDef[];
  /** Absent in specs stored before init containers existed. */
  initContainers?: InitContainerDef[];
  restartPolicy: RestartPolicy;
  osType: 'Linux';
  ipAddress?: { type: 'Public' | 'Private'; ports: { port: number; protocol: Protocol }[]; dnsNameLabel?: string };
  volumes: VolumeDef[];
  imageRegistryCredentials: RegistryCredentialDef[];
  sku: 'Standard';
}

/** One group as the agent must make it. `generation` changes on every change the agent must act on. */
export interface DesiredGroup {
  uid: string;
  /** Host name inside the group's containers (the group's name). */
  hostname: string;
  generation: number;
  spec: GroupSpec;
  state: 'Running' | 'Stopped';
}

export interface Event {
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  name: string;
  message: string;
  type: 'Normal' | 'Warning';
}

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

export interface LogOptions {
  tail?: number;
  timestamps?: boolean;
}

/** The agent as the instances service sees it: in-process today, over the network later. */
export interface AgentHandle {
  readonly name: string;
  /** Level-triggered: the full desired state of one group. Safe to call repeatedly. */
  apply(desired: DesiredGroup, lastStatus?: GroupStatus): void;
  /** Tear the group down completely; `onRemoved` fires when nothing of it is left. */
  remove(uid: string): void;
  /** The complete desired set: anything else found on the host is torn down. */
  sync(all: { desired: DesiredGroup; lastStatus?: GroupStatus }[]): Promise<void>;
  onStatus(fn: (s: GroupStatus) => void): void;
  onRemoved(fn: (uid: string) => void): void;
  logs(uid: string, container: string, opts: LogOptions): Promise<string>;
  followLogs(uid: string, container: string, opts: LogOptions, onChunk: (s: string) => void, signal: AbortSignal): Promise<void>;
  exec(uid: string, container: string, argv: string[]): import('node:child_process').ChildProcess;
  /** References of the images this host has locally. */
  cachedImages(): Promise<string[]>;
  close(): Promise<void>;
}
