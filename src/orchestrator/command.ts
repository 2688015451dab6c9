// `berth orchestrator --api URL`: the orchestrator in a process of its own, a client of a berth (or any ACI endpoint with NGroups).
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ContainerInstanceClient, NGROUPS_API_VERSION, StaticTokenCredential, loadProfile } from '../client/index.js';
import { Orchestrator } from './orchestrator.js';

interface OrchestratorCommandOptions {
  api?: string;
  token?: string;
  caCert?: string;
  concurrency: number;
}

/** A client for the orchestrator: members' profiles and NGroup ids are shown from 2024-09-01-preview on. */
export function orchestratorClient(o: { endpoint: string; token: string; ca?: Buffer }): ContainerInstanceClient {
  return new ContainerInstanceClient({
    endpoint: o.endpoint, subscriptionId: 'default', credential: new StaticTokenCredential(o.token), apiVersion: NGROUPS_API_VERSION,
    ...(o.ca && { ca: o.ca }),
  });
}

export function registerOrchestratorCommand(program: Command) {
  program
    .command('orchestrator')
    .description('Run the NGroup orchestrator in this process, against a berth API (start the server with --no-orchestrator)')
    .option('--api <url>', 'the berth API (default: BERTH_ENDPOINT or what `berth up` saved)')
    .option('--token <token>', 'API token (default: BERTH_TOKEN or what `berth up` saved); it must reach every subscription with NGroups')
    .option('--ca-cert <file>', "CA certificate of an https API (default: BERTH_CA_CERT or the saved profile's)")
    .option('--concurrency <n>', 'NGroups reconciled at once', Number, 4)
    .action(async (o: OrchestratorCommandOptions) => {
      const saved = o.api && o.token ? undefined : loadProfile((m) => process.stderr.write(`berth: warning: ${m}\n`));
      const caCert = o.caCert ?? saved?.caCert;
      const client = orchestratorClient({ endpoint: o.api ?? saved!.endpoint, token: o.token ?? saved!.token, ...(caCert && { ca: readFileSync(caCert) }) });
      const orchestrator = await new Orchestrator({ client, concurrency: o.concurrency, log: (m) => process.stderr.write(`berth orchestrator: ${m}\n`) }).start();
      process.stderr.write(`berth orchestrator: following the NGroups of ${client.endpoint} (pid ${process.pid})\n`);
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        // members keep running: a restarted orchestrator takes them up where they are
        await orchestrator.stop();
        process.exit(0);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
