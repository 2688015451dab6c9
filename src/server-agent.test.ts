// The agent contract suite over the in-process link of the embedded default: the local agent following its specs in a SQLite store through the instances' gateway.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { agentContract } from './agent/conformance/index.js';
import { HostGateway } from './instances/hosts/gateway.js';
import { hostOnStore } from './instances/testing.js';
import { LOCAL_HOST, startLocalAgent, type LocalAgent } from './server-agent.js';
import { SqliteStore } from './store/sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-agent-contract-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

agentContract({
  name: 'in-process link over SQLite',
  async start(runtime) {
    const store = new SqliteStore(join(dir, `s${n++}.db`));
    const host = hostOnStore(store, LOCAL_HOST);
    const gateway = new HostGateway(store, { onRemoved: host.onRemoved });
    const startAgent = () => startLocalAgent(gateway, { runtime, address: '127.0.0.1', backoffMs: 20, retryMs: 20, stopGraceSeconds: 0, pollMs: 60_000, usageIntervalMs: 50 });
    let local: LocalAgent | undefined = await startAgent();
    return {
      ...host,
      dataPlane: () => local!.agent,
      stopAgent: async () => {
        await local?.close();
        local = undefined;
      },
      startAgent: async () => {
        local = await startAgent();
      },
      close: async () => {
        await local?.close();
        gateway.close();
        await store.close();
      },
    };
  },
});
