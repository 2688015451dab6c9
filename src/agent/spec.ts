// The host spec: what one host runs for one group, as the agent owns it (no ACI concepts: the control plane translates into it).
import type { PublishedPort, RegistryCredentials } from '../runtime/types.js';
import type { PlacedSpec } from './link.js';

export type { PublishedPort, RegistryCredentials } from '../runtime/types.js';

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

export interface EnvVar {
  name: string;
  value: string;
}

export interface ProbeSpec {
  exec?: { command: string[] };
  httpGet?: { path: string; port: number; scheme: 'http' | 'https'; headers: { name: string; value: string }[] };
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
  successThreshold: number;
}

export interface VolumeMountSpec {
  name: string;
  mountPath: string;
  readOnly: boolean;
}

/** One process of the group: an init container (run to completion first) or one of its containers. */
export interface HostInitContainer {
  name: string;
  image: string;
  /** Replaces the image's entrypoint and cmd when not empty. */
  command: string[];
  env: EnvVar[];
  /** Limits: CPU cores and memory bytes. */
  cpu: number;
  memoryBytes: number;
  volumeMounts: VolumeMountSpec[];
}

export interface HostContainer extends HostInitContainer {
  livenessProbe?: ProbeSpec;
  readinessProbe?: ProbeSpec;
}

export interface VolumeSpec {
  name: string;
  emptyDir?: Record<string, never>;
  /** File name -> base64 content. */
  secret?: Record<string, string>;
  /** Cloned from inside the group's network namespace (http, https and git transports only). */
  gitRepo?: { repository: string; directory?: string; revision?: string };
}

export interface HostSpec {
  /** Host name inside the group's containers. */
  hostname: string;
  state: 'Running' | 'Stopped';
  restartPolicy: RestartPolicy;
  /** Run one after another, each to exit 0, before the containers start. */
  initContainers: HostInitContainer[];
  containers: HostContainer[];
  volumes: VolumeSpec[];
  /** Ports published on this host's address (and reaching the group). */
  ports: PublishedPort[];
  /**
   * What the host's network needs to place the group. `key` is opaque: groups with the same key reach each
   * other on the host's network; absent, the host's default. `tag`: the key's number across the cluster's hosts
   * (1..65535, the same on every host), on a cluster with an overlay: without one the group reaches no other host.
   */
  network: { key?: string; tag?: number };
  /** Credentials for the registries the images come from. */
  registryCredentials: RegistryCredentials[];
  /** Provisioning (pulls, network, volumes, first starts) that takes longer fails, and what it made is removed. */
  provisioningTimeoutSeconds: number;
}

/** A host spec as placed on a host: the group's uid and the generation that fences it. */
export type PlacedHostSpec = PlacedSpec<HostSpec>;
