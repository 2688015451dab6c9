// The cluster's identity, shared by every replica through the store: the CA (the API's certificates and agents'),
// and the key that signs data-plane tokens. The first replica to start makes them; the others adopt them.
//
// Both secrets sit in the store in clear: whoever can write the store can place any spec on any host already,
// so it is the cluster's root of trust either way (etcd's own TLS and auth protect it; see README).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newSigningKeyPair, TokenSigner, type SigningKeyPair } from '../../lib/signed-token.js';
import { ensureCa } from '../../lib/tls.js';
import type { Store } from '../../store/store.js';
import { CLUSTER_CA_KEY, CLUSTER_SIGNING_KEY } from '../keys.js';

interface CaRecord {
  certPem: string;
  keyPem: string;
}

export interface ClusterIdentity {
  /** The CA certificate (PEM) clients and agents trust. */
  caCertPem: string;
  /** Where this replica keeps the CA's files (what signs certificates). */
  tlsDir: string;
  signer: TokenSigner;
  publicKeyPem: string;
}

/** The value at `key`, put there by this call unless another replica's was there first. */
async function createOnce<T>(store: Store, key: string, make: () => Promise<T>): Promise<T> {
  for (;;) {
    const kv = await store.get<T>(key);
    if (kv) return kv.value;
    const value = await make();
    if ((await store.txn({ if: [{ key, exists: false }], then: [{ put: key, value }] })).succeeded) return value;
  }
}

/**
 * The cluster's CA in `tlsDir` (the store's, when another replica made it: then this replica's own files are
 * replaced and its server certificate made again) and its signing key.
 */
export async function ensureClusterIdentity(store: Store, tlsDir: string): Promise<ClusterIdentity> {
  const caFile = join(tlsDir, 'ca.crt');
  const keyFile = join(tlsDir, 'ca.key');
  const ca = await createOnce<CaRecord>(store, CLUSTER_CA_KEY, async () => {
    await ensureCa(tlsDir);
    return { certPem: readFileSync(caFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
  });
  if (!existsSync(caFile) || readFileSync(caFile, 'utf8') !== ca.certPem) {
    mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
    writeFileSync(keyFile, ca.keyPem, { mode: 0o600 });
    writeFileSync(caFile, ca.certPem);
    // signed by another CA: made again by ensureServerCert
    for (const f of ['server.crt', 'server.key', 'server.sans']) rmSync(join(tlsDir, f), { force: true });
  }
  const keys = await createOnce<SigningKeyPair>(store, CLUSTER_SIGNING_KEY, async () => newSigningKeyPair());
  return { caCertPem: ca.certPem, tlsDir, signer: new TokenSigner(keys.privateKeyPem), publicKeyPem: keys.publicKeyPem };
}
