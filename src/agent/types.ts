// What the instances service asks of a host agent (desired groups) and what the agent reports back.

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';
export type Protocol = 'TCP' | 'UDP';

export interface EnvVar {
  name: string;
  value?: string;
  secureValue?: string;
}

export interface ContainerDef {
  name: string;
  image: string;
  command: string[];
  ports: { port: number; protocol: Protocol }[];
  environmentVariables: EnvVar[];
  requests: { cpu: number; memoryInGB: number };
  limits?: { cpu?: number; memoryInGB?: number };
  volumeMounts: { name: string; mountPath: string; readOnly: boolean }[];
}

export interface VolumeDef {
  name: string;
  emptyDir?: Record<string, never>;
  /** file name -> base64 content */
  secret?: Record<string, string>;
}

export interface RegistryCredentialDef {
  server: string;
  username: string;
  password: string;
}

export interface GroupSpec {
  containers: ContainerDef[];
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
