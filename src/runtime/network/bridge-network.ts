// The host bridge's network as CNI makes it: its options, the bridge plugin's configuration with host-local IPAM, and what a CNI result says of a sandbox.
import type { PublishedPort } from '../types.js';
import type { CniNetworkConfig, CniResult } from './cni.js';

export interface NetworkManagerOptions {
  /** CNI network name. Default 'berth'. */
  name?: string;
  /** Host bridge. Default 'berth0'. */
  bridge?: string;
  /** Default 10.89.0.0/16. */
  subnet?: string;
  /** Default /usr/lib/cni. */
  cniPath?: string;
  /** One <sandboxId>.json per sandbox. */
  stateDir: string;
  /** host-local's allocation store. Default /var/lib/cni/networks. */
  ipamDataDir?: string;
  /**
   * Sandboxes (netns, veth, IP) made before any request needs them, as ACI's standby pools do; a
   * setup claims one and only publishes its ports. Refilled in the background. Default 0 (none).
   */
  poolSize?: number;
  /**
   * The host address published ports answer on (IPv4; '0.0.0.0': every local address, loopback
   * included). Default 127.0.0.1.
   */
  hostAddress?: string;
  /** Ports the host keeps for itself (berth's API and DNS): never published, whatever listens. */
  reservedPorts?: () => PublishedPort[];
  /** Ports of the bridge's gateway address the sandboxes may reach (none: they reach no host service). */
  hostServices?: PublishedPort[];
  /** The sandboxes' MTU (the bridge plugin's `mtu`); on a cluster host, the overlay's (Overlay.setup's `mtu`). Default: the kernel's (1500). */
  mtu?: number;
  /** The cluster overlay's VXLAN device (overlay.ts), on a cluster host: sandboxes reach their segment on other hosts through it. */
  overlayDevice?: string;
}

/** The CNI network list of the bridge: one bridge plugin, addresses from `subnet` by host-local. */
export function bridgeNetworkConfig(o: { name: string; bridge: string; subnet: string; mtu?: number; ipamDataDir?: string }): CniNetworkConfig {
  return {
    cniVersion: '1.0.0',
    name: o.name,
    plugins: [
      // the loopback is brought up where the namespace is made (berth-spawnd's @netns-add, one
      // syscall), not by the loopback plugin (a Go program run per sandbox, for ADD and DEL)
      {
        type: 'bridge',
        bridge: o.bridge,
        isGateway: true,
        // masquerade and FORWARD accepts are per network, not per sandbox: ensureNetworkRules()
        ipMasq: false,
        hairpinMode: true,
        ...(o.mtu !== undefined && { mtu: o.mtu }),
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: o.subnet }]],
          routes: [{ dst: '0.0.0.0/0' }],
          ...(o.ipamDataDir ? { dataDir: o.ipamDataDir } : {}),
        },
      },
      // host ports are published by hostports.ts, in one iptables-restore at claim time
    ],
  };
}

/** The bridge plugin reports the bridge, the host-side veth and the sandbox's interface: the veth is the one left. */
export const hostVeth = (result: CniResult, bridge: string) => result.interfaces?.find((i) => !i.sandbox && i.name !== bridge)?.name;

/** The sandbox's IPv4 address (without its prefix length). */
export const ipv4Of = (result: CniResult) => (result.ips?.find((i) => !i.address.includes(':'))?.address ?? result.ips?.[0]?.address)?.split('/')[0];
