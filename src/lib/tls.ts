// The certificate authority berth makes on first start, and the server certificate it signs for the API.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TlsFiles {
  dir: string;
  caCert: string;
  cert: string;
  key: string;
}

const paths = (dir: string) => ({
  caKey: join(dir, 'ca.key'),
  caCert: join(dir, 'ca.crt'),
  key: join(dir, 'server.key'),
  csr: join(dir, 'server.csr'),
  cert: join(dir, 'server.crt'),
  sans: join(dir, 'server.sans'),
});

/** A name as a subjectAltName entry: `IP:` for addresses, `DNS:` for names. */
const sanOf = (n: string) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`);

/** Creates the CA in `dir` unless it exists. Clients trust berth by trusting `ca.crt` (NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE). */
export async function ensureCa(dir: string): Promise<string> {
  const p = paths(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(p.caCert) && existsSync(p.caKey)) return p.caCert;
  await run('openssl', ['req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-sha256',
    '-keyout', p.caKey, '-out', p.caCert, '-days', '3650', '-subj', '/CN=berth local CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return p.caCert;
}

/**
 * A server certificate for these names and addresses, signed by the CA; made again when the names change
 * (a new advertise address), so clients that trust the CA keep working.
 */
export async function ensureServerCert(dir: string, names: string[]): Promise<TlsFiles> {
  const p = paths(dir);
  await ensureCa(dir);
  const sans = [...new Set(names)].map(sanOf).join(',');
  const current = existsSync(p.sans) ? readFileSync(p.sans, 'utf8') : '';
  if (current !== sans || !existsSync(p.cert) || !existsSync(p.key)) {
    await run('openssl', ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', p.key, '-out', p.csr, '-subj', '/CN=berth']);
    const ext = join(dir, 'server.ext');
    writeFileSync(ext, `subjectAltName=${sans}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
    await run('openssl', ['x509', '-req', '-sha256', '-in', p.csr, '-CA', p.caCert, '-CAkey', p.caKey, '-CAcreateserial', '-out', p.cert, '-days', '825', '-extfile', ext]);
    writeFileSync(p.sans, sans);
  }
  return { dir, caCert: p.caCert, cert: p.cert, key: p.key };
}


/** A new P-256 key and a certificate signing request for it (PEM): the key never leaves the caller. */
export async function newKeyAndCsr(commonName: string): Promise<{ keyPem: string; csrPem: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-csr-'));
  try {
    await run('openssl', ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', join(dir, 'key'), '-out', join(dir, 'csr'), '-subj', `/CN=${commonName}`]);
    return { keyPem: readFileSync(join(dir, 'key'), 'utf8'), csrPem: readFileSync(join(dir, 'csr'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A server certificate for the key of `csrPem`, signed by the CA in `caDir`, for exactly `names` (what the
 * request itself asks for besides its key is ignored: the signer decides the names).
 */
export async function signCsr(caDir: string, csrPem: string, commonName: string, names: string[]): Promise<string> {
  const p = paths(caDir);
  const dir = mkdtempSync(join(tmpdir(), 'berth-sign-'));
  try {
    writeFileSync(join(dir, 'csr'), csrPem);
    writeFileSync(join(dir, 'ext'), `subjectAltName=${[...new Set(names)].map(sanOf).join(',')}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
    await run('openssl', ['x509', '-req', '-sha256', '-in', join(dir, 'csr'), '-CA', p.caCert, '-CAkey', p.caKey, '-CAcreateserial', '-CAserial', join(dir, 'serial'),
      '-out', join(dir, 'crt'), '-days', '825', '-extfile', join(dir, 'ext'), '-subj', `/CN=${commonName}`]);
    return readFileSync(join(dir, 'crt'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
