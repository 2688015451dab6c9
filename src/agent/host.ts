// One host's runtime (images, containers, networks, group disks) and its settings, as both the embedded server and `berth agent` make them.
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Pick } from '../lib/config-file.js';
import { chooseOciRuntime } from '../runtime/container/oci-runtime.js';
import { ContainerRuntime } from '../runtime/container/runtime.js';
import { GroupDisks } from '../runtime/disk/disks.js';
import { ImageStore } from '../runtime/image/store.js';
import { NetworkManager } from '../runtime/network/network.js';
import { httpProbe } from '../runtime/probe.js';
import type { PublishedPort } from '../runtime/types.js';
import type { HostRuntime } from './host-runtime.js';
import { GroupStorage } from './storage.js';

export interface HostRuntimeConfig {
  dataDir: string;
  /** runc state dir; on tmpfs so a reboot forgets containers that a reboot killed. */
  runcRoot: string;
  bridge: string;
  subnet: string;
  /** The host's IPv4 address clients reach Public groups on: their ports are published there, and only there. */
  advertiseAddress: string;
  /** Host ports no group may publish (TCP and UDP), besides berth's own (the API's, DNS, the agent's). */
  reservedPorts: number[];
  insecureRegistries: string[];
  stopGraceSeconds: number;
  /** Warm sandboxes (netns + IP) and group disks kept ready for creates; 0 makes each on demand. Default 8. */
  sandboxPool: number;
  /** 'auto' (the default) takes crun where the host lets it run (it starts containers faster), else runc. */
  ociRuntime: 'runc' | 'crun' | 'auto';
  /** Exits are seen as conmon records them; this backstop re-checks every running group (ms). Default 10000. */
  agentPollMs: number;
  /** How often the running groups' CPU, memory and network counters are read for their metrics (ms). Default 5000. */
  metricsIntervalMs: number;
  /**
   * Each group's disk, in GB (GiB, as ACI's memoryInGB): its containers' writable layers and its
   * emptyDir, secret and gitRepo volumes share it; writes past it fail with ENOSPC. 0: no limit
   * (they live in the data dir). Default 10.
   */
  diskLimitGB: number;
}

/** The runtime settings with their defaults, each from `pick` (flags over the config file). */
export function hostRuntimeConfig<C extends HostRuntimeConfig>(dataDir: string, pick: Pick<C>, defaults: { advertiseAddress: () => string }): HostRuntimeConfig {
  return {
    dataDir,
    runcRoot: pick('runcRoot', '/run/berth/runc'),
    bridge: pick('bridge', 'berth0'),
    subnet: pick('subnet', '10.89.0.0/16'),
    advertiseAddress: pick('advertiseAddress', '') || defaults.advertiseAddress(),
    reservedPorts: pick('reservedPorts', []),
    insecureRegistries: pick('insecureRegistries', []),
    stopGraceSeconds: pick('stopGraceSeconds', 5),
    sandboxPool: pick('sandboxPool', 8),
    ociRuntime: pick('ociRuntime', 'auto'),
    agentPollMs: pick('agentPollMs', 10_000),
    metricsIntervalMs: pick('metricsIntervalMs', 5000),
    diskLimitGB: pick('diskLimitGB', 10),
  };
}

const GiB = 1024 ** 3;

/** What this host offers groups when not told otherwise: all its cores and memory. */
export function hostCapacity(): { cpu: number; memoryGB: number } {
  return { cpu: cpus().length, memoryGB: Math.round((totalmem() / GiB) * 10) / 10 };
}

/** This host's runtime, and its warm pools (sandboxes and group disks ready for creates). */
export interface HostRuntimeParts {
  runtime: HostRuntime;
  /** Fills the warm pools: after the agent has adopted what runs (what a crash left in them is torn down first). */
  startPools(): Promise<void>;
  /** Empties them: warm sandboxes and disks belong to no group (claimed ones stay with their containers). */
  stopPools(): Promise<void>;
}

export interface HostRuntimeOptions {
  /** berth's own ports on this host (the configured ones and those the kernel picked once it listened). */
  reservedPorts: () => PublishedPort[];
  warn: (why: string) => void;
  /** On a cluster host: the overlay's VXLAN device and its MTU (the sandboxes' then), set up before the network. */
  overlay?: { device: string; mtu: number };
}

export function createHostRuntime(cfg: HostRuntimeConfig, opts: HostRuntimeOptions): HostRuntimeParts {
  const network = new NetworkManager({
    bridge: cfg.bridge, subnet: cfg.subnet, stateDir: join(cfg.dataDir, 'network'), ipamDataDir: join(cfg.dataDir, 'ipam'), poolSize: cfg.sandboxPool,
    hostAddress: cfg.advertiseAddress, reservedPorts: opts.reservedPorts, ...(opts.overlay && { mtu: opts.overlay.mtu, overlayDevice: opts.overlay.device }),
  });
  const ociRuntime = chooseOciRuntime(cfg.ociRuntime, undefined, opts.warn);
  // also with limits off: disks made while they were on are adopted, and released with their groups
  const disks = new GroupDisks({ root: join(cfg.dataDir, 'disks'), sizeBytes: Math.round(cfg.diskLimitGB * GiB), poolSize: cfg.sandboxPool });
  return {
    runtime: {
      images: new ImageStore({ root: join(cfg.dataDir, 'images'), insecureRegistries: cfg.insecureRegistries }),
      containers: new ContainerRuntime({ root: join(cfg.dataDir, 'containers'), runcRoot: cfg.runcRoot, runcPath: ociRuntime }),
      network,
      storage: new GroupStorage(cfg.dataDir, disks),
      httpProbe,
    },
    async startPools() {
      await network.startPool();
      await disks.startPool();
    },
    async stopPools() {
      await network.stopPool();
      await disks.stopPool();
    },
  };
}
