// The server's own NGroup orchestrator: a client of the API the server serves (over loopback, with a token made at each start); on a cluster, one replica's at a time, elected through the store.
import { ORCHESTRATOR_ELECTION } from './instances/keys.js';
import { orchestratorClient } from './orchestrator/command.js';
import { Orchestrator } from './orchestrator/orchestrator.js';
import { Election, leadWhileElected } from './store/election.js';
import type { Store } from './store/store.js';

/** How long a replica that died holding the orchestrator keeps the others from taking it over. */
const LEADER_LEASE_SECONDS = 3;

export interface ServerOrchestratorOptions {
  /** This server's plain HTTP API and the orchestrator's token for it. */
  endpoint: string;
  token: string;
  /** On a cluster: the store the replicas elect the one that runs it through (absent: it runs here, alone). */
  elect?: { store: Store; replica: string };
  log: (message: string) => void;
}

/**
 * Runs the orchestrator: here, once it follows the NGroups; on a cluster, while this replica leads (two at once
 * would both act). `stop` ends it and the candidacy; members keep running, and whoever runs it next takes them up.
 */
export async function startServerOrchestrator(o: ServerOrchestratorOptions): Promise<{ stop(): Promise<void> }> {
  const run = () => new Orchestrator({ client: orchestratorClient({ endpoint: o.endpoint, token: o.token }), log: o.log }).start();
  if (!o.elect) {
    const alone = await run();
    return { stop: () => alone.stop() };
  }
  const { store, replica } = o.elect;
  const closing = new AbortController();
  const leading = leadWhileElected(new Election(store, ORCHESTRATOR_ELECTION), {
    value: { replica }, ttlSeconds: LEADER_LEASE_SECONDS, signal: closing.signal, role: 'run the orchestrator', log: (m) => o.log(`${replica}: ${m}`),
  }, async () => {
    o.log(`${replica} runs the orchestrator`);
    const orchestrator = await run();
    return () => orchestrator.stop();
  });
  return {
    async stop() {
      closing.abort();
      await leading;
    },
  };
}
