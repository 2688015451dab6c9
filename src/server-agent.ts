// The embedded default's host: the local agent over its runtime, following its specs through the in-process link (the same contract a remote agent follows over HTTPS).
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { Agent, type AgentOptions } from './agent/agent.js';
import { SpecFollower } from './agent/follower.js';
import type { HostRegistration } from './agent/link.js';
import { InProcessLink } from './instances/hosts/local-link.js';
import type { HostGateway } from './instances/hosts/gateway.js';

/** The name of the embedded default's only host. */
export const LOCAL_HOST = 'local';

const GiB = 1024 ** 3;

function berthVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export interface LocalAgent {
  agent: Agent;
  /** Stops following and the agent; containers keep running. */
  close(): Promise<void>;
}

/** Starts the local agent; resolves once it has adopted what is placed on this host (and removed the rest). */
export async function startLocalAgent(gateway: HostGateway, opts: AgentOptions & { address: string; host?: string }): Promise<LocalAgent> {
  const agent = new Agent(opts);
  const host = opts.host ?? LOCAL_HOST;
  const registration = (): HostRegistration => ({
    name: host, address: opts.address, labels: {}, allocatable: { cpu: cpus().length, memoryGB: Math.round((totalmem() / GiB) * 10) / 10 }, agentVersion: berthVersion(),
  });
  const follower = new SpecFollower(new InProcessLink(gateway, host), agent, registration);
  await follower.start();
  return {
    agent,
    async close() {
      // the agent first: what its reconciles in flight report is sent by the follower's last flush
      await agent.close();
      await follower.close();
    },
  };
}
