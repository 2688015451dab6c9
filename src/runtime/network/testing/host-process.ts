// A test "host"'s own process (run in the host's network and mount namespaces by hosts.ts): the real NetworkManager and Overlay, driven by JSON lines on stdin.
import { createInterface } from 'node:readline';
import { errorToWire } from '../../../lib/errors.js';
import { NetworkManager, type NetworkManagerOptions } from '../network.js';
import { Overlay, type OverlayOptions, type OverlayPeer } from '../overlay.js';
import type { PublishedPort } from '../../types.js';

let network: NetworkManager | undefined;
let overlay: Overlay | undefined;

const need = <T>(what: string, v: T | undefined): T => {
  if (!v) throw new Error(`${what} is not set up in this host process`);
  return v;
};

/** What the test asks of the host; each answers with a JSON value. */
const methods: Record<string, (args: never) => Promise<unknown>> = {
  network: async (opts: NetworkManagerOptions) => {
    network = new NetworkManager(opts);
    await network.startPool();
    return null;
  },
  sandbox: async ({ id, ports, segment, tag }: { id: string; ports?: PublishedPort[]; segment?: string; tag?: number }) =>
    need('the network', network).setup(id, ports ?? [], segment, tag),
  removeSandbox: async ({ id }: { id: string }) => need('the network', network).teardown(id),
  sandboxes: async () => need('the network', network).list(),
  destroyNetwork: async () => {
    const nm = need('the network', network);
    for (const id of await nm.list()) await nm.teardown(id);
    await nm.destroy();
    network = undefined;
    return null;
  },
  overlay: async (opts: OverlayOptions) => (overlay = new Overlay(opts)).setup(),
  setPeers: async (peers: OverlayPeer[]) => need('the overlay', overlay).setPeers(peers),
  teardownOverlay: async () => need('the overlay', overlay).teardown(),
};

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const { id, method, args } = JSON.parse(line) as { id: number; method: string; args: unknown };
  const fn = methods[method];
  const answer = fn ? fn(args as never) : Promise.reject(new Error(`no method ${method}`));
  answer.then(
    (value) => process.stdout.write(`${JSON.stringify({ id, value: value ?? null })}\n`),
    (e) => process.stdout.write(`${JSON.stringify({ id, error: errorToWire(e) })}\n`),
  );
});
// stdin closed: the test is done with this process (the host's kernel state stays, as a crashed agent's would)
lines.on('close', () => process.exit(0));
process.stdout.write(`${JSON.stringify({ ready: process.pid })}\n`);
