// The agent's peering loop against stand-ins for the control plane and the kernel (the real ones: test/e2e/overlay.test.ts on dev-cluster.sh).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { OverlayPeer } from '../runtime/network/overlay.js';
import { OverlayPeering } from './overlay-peering.js';

const peer = (i: number): OverlayPeer => ({ name: `h${i}`, underlayAddress: `10.250.0.${10 + i}`, subnet: `10.252.${i}.0/24`, vtepMac: `02:be:0a:fa:00:${(10 + i).toString(16)}` });

test('programs the peers at start, again when a heartbeat brings a new version (not for the same one), and again every repair period', async () => {
  let served = { version: 'v1', peers: [peer(1)] };
  const applied: string[][] = [];
  let failNext = false;
  const logs: string[] = [];
  const peering = new OverlayPeering({
    peers: async () => {
      if (failNext) {
        failNext = false;
        throw new Error('control plane away');
      }
      return served;
    },
    apply: async (peers) => {
      applied.push(peers.map((p) => p.name));
      return { peers: peers.length, changes: 1 };
    },
    repairMs: 200, retryMs: 0, log: (m) => logs.push(m),
  });
  await peering.start();
  assert.deepEqual(applied, [['h1']]);
  peering.heard('v1');
  peering.heard(undefined);
  assert.equal(applied.length, 1, 'the version it holds: nothing to do');
  served = { version: 'v2', peers: [peer(1), peer(2)] };
  peering.heard('v2');
  await peering.sync(); // waits for the one in flight (and runs one more: idempotent)
  assert.deepEqual(applied.at(-1), ['h1', 'h2']);
  // a failed fetch is told and tried again on the next version heard
  failNext = true;
  served = { version: 'v3', peers: [peer(2)] };
  await peering.sync();
  assert.match(logs.at(-1)!, /control plane away/);
  peering.heard('v3');
  await peering.sync();
  assert.deepEqual(applied.at(-1), ['h2']);
  // the repair period programs them again though nothing changed
  const before = applied.length;
  for (const deadline = Date.now() + 5000; applied.length === before; await new Promise((r) => setTimeout(r, 20)))
    if (Date.now() > deadline) assert.fail('no repair within 5 s');
  await peering.close();
});
