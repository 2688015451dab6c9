// The server's own NGroup orchestrator: a client of the API the server serves (over loopback, with a token made at each start); on a cluster, one replica's at a time, elected through the store.
import { ORCHESTRATOR_ELECTION } from './instances/keys.js';
import { orchestratorClient } from './orchestrator/command.js';
import { Orchestrator } from './orchestrator/orchestrator.js';
import { Election, type Leadership } from './store/election.js';
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
  const ended = (...signals: AbortSignal[]) => new Promise<void>((resolve) => {
    for (const s of signals) s.addEventListener('abort', () => resolve(), { once: true });
    if (signals.some((s) => s.aborted)) resolve();
  });
  const lead = async () => {
    const election = new Election(store, ORCHESTRATOR_ELECTION);
    while (!closing.signal.aborted) {
      let leadership: Leadership;
      try {
        leadership = await election.campaign({ replica }, { ttlSeconds: LEADER_LEASE_SECONDS, signal: closing.signal });
      } catch (e) {
        if (closing.signal.aborted) return;
        o.log(`campaigning to run the orchestrator failed (again in 1 s): ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      o.log(`${replica} runs the orchestrator`);
      const orchestrator = await run().catch((e: Error) => void o.log(`the orchestrator did not start: ${e.message}`));
      if (orchestrator) await ended(leadership.signal, closing.signal);
      await orchestrator?.stop();
      await leadership.resign().catch(() => undefined);
      if (closing.signal.aborted) return;
      o.log(`${replica} no longer runs the orchestrator: ${orchestrator ? (leadership.signal.reason as Error)?.message ?? 'its lease is gone' : 'it did not start'}`);
      if (!orchestrator) await new Promise((r) => setTimeout(r, 1000));
    }
  };
  const leading = lead();
  return {
    async stop() {
      closing.abort();
      await leading;
    },
  };
}
