// The cluster overlay's settings and peers as the control plane keeps them (subnet races are in admission.test.ts, on SQLite and etcd).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBerthError } from '../../lib/errors.js';
import { SqliteStore } from '../../store/sqlite.js';
import { checkOverlaySettings, DEFAULT_OVERLAY, ensureOverlaySettings, overlayPeers } from './cluster-overlay.js';
import type { HostRecord } from './gateway.js';

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return isBerthError(e) ? { code: e.code, target: e.target } : { code: String(e) };
  }
  return { code: 'none' };
};

test('settings: a CIDR, a host prefix that cuts it into subnets of 16 addresses or more, a VNI and a port; errors name the flag', () => {
  assert.deepEqual(checkOverlaySettings({ ...DEFAULT_OVERLAY, clusterCidr: '10.252.7.9/16' }).clusterCidr, '10.252.0.0/16', 'normalised');
  assert.deepEqual(refusal(() => checkOverlaySettings({ ...DEFAULT_OVERLAY, clusterCidr: '10.252.0.0' })), { code: 'InvalidRequestContent', target: 'clusterCidr' });
  assert.deepEqual(refusal(() => checkOverlaySettings({ ...DEFAULT_OVERLAY, hostPrefix: 29 })), { code: 'InvalidRequestContent', target: 'hostPrefix' });
  assert.deepEqual(refusal(() => checkOverlaySettings({ ...DEFAULT_OVERLAY, hostPrefix: 15 })), { code: 'InvalidRequestContent', target: 'hostPrefix' });
  assert.deepEqual(refusal(() => checkOverlaySettings({ ...DEFAULT_OVERLAY, vni: 0 })), { code: 'InvalidRequestContent', target: 'vni' });
});

test("the first replica's settings are the cluster's: another started with others is refused, one with the same starts", async () => {
  const store = new SqliteStore(':memory:');
  assert.deepEqual(await ensureOverlaySettings(store, DEFAULT_OVERLAY), DEFAULT_OVERLAY);
  await assert.rejects(ensureOverlaySettings(store, { ...DEFAULT_OVERLAY, clusterCidr: '10.99.0.0/16' }), (e) => isBerthError(e) && e.code === 'InvalidRequestContent' && /10\.252\.0\.0\/16/.test(e.message));
  assert.deepEqual(await ensureOverlaySettings(store, DEFAULT_OVERLAY), DEFAULT_OVERLAY);
  await store.close();
});

test("peers: every registered host whose overlay is up (Ready or not), by name; the version changes with them and only with them", () => {
  const host = (name: string, o: Partial<HostRecord> = {}): HostRecord => ({
    name, address: `10.250.0.${name.length + 10}`, labels: {}, allocatable: { cpu: 1, memoryGB: 1 }, agentVersion: 't', registeredAt: '', updatedAt: '', ...o,
  });
  const b = host('bb', { subnet: '10.252.1.0/24', overlay: { vtepMac: '02:be:0a:fa:00:0c' } });
  const a = host('a', { subnet: '10.252.0.0/24', overlay: { vtepMac: '02:be:0a:fa:00:0b' } });
  const first = overlayPeers([b, host('nosubnet', { overlay: { vtepMac: '02:be:0a:fa:00:0d' } }), a, host('notup', { subnet: '10.252.2.0/24' })]);
  assert.deepEqual(first.peers, [
    { name: 'a', underlayAddress: a.address, subnet: '10.252.0.0/24', vtepMac: '02:be:0a:fa:00:0b' },
    { name: 'bb', underlayAddress: b.address, subnet: '10.252.1.0/24', vtepMac: '02:be:0a:fa:00:0c' },
  ]);
  assert.equal(overlayPeers([a, b]).version, first.version, 'the same peers, the same version (whatever else the records say)');
  assert.notEqual(overlayPeers([a, { ...b, address: '10.250.0.99' }]).version, first.version);
});
