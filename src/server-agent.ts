// The embedded default's host: the local agent over its runtime, following its specs through the in-process link (the same contract a remote agent follows over HTTPS).
import { Agent, type AgentOptions } from './agent/agent.js';
import { startFollowing, type FollowingAgent } from './agent/follower.js';
import { hostCapacity } from './agent/host.js';
import { InProcessLink } from './instances/hosts/local-link.js';
import type { HostGateway } from './instances/hosts/gateway.js';
import { berthVersion } from './lib/version.js';

/** The name of the embedded default's only host. */
export const LOCAL_HOST = 'local';

export type LocalAgent = FollowingAgent;

/** Starts the local agent; resolves once it has adopted what is placed on this host (and removed the rest). */
export function startLocalAgent(gateway: HostGateway, opts: AgentOptions & { address: string; host?: string }): Promise<LocalAgent> {
  const host = opts.host ?? LOCAL_HOST;
  const registration = () => ({ name: host, address: opts.address, labels: {}, allocatable: hostCapacity(), agentVersion: berthVersion() });
  return startFollowing(new InProcessLink(gateway, host), registration, new Agent(opts));
}
