// Test helper: a real Debian docker-registry (distribution 2.8) on 127.0.0.1, optionally behind token or htpasswd auth.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSign, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface RegistryUser {
  username: string;
  password: string;
}

export interface StartRegistryOptions {
  auth?: 'token' | 'htpasswd';
  users?: RegistryUser[];
  /** Which field the token server answers with; registries in the wild use either. */
  tokenField?: 'token' | 'access_token' | 'both';
  /** Where it listens (default 127.0.0.1 on a free port): e.g. a dev cluster's underlay address, for its hosts. */
  listen?: { host: string; port: number };
}

export interface RegistryRequest {
  method: string;
  uri: string;
  status: number;
}

export interface TestRegistry {
  /** "127.0.0.1:PORT" */
  host: string;
  /** The registry's filesystem storage root (docker/registry/v2/… below it). */
  dataDir: string;
  /** Requests the registry has completed so far, parsed from its log. */
  requests(): Promise<RegistryRequest[]>;
  /** GETs of blobs so far (downloads, as opposed to HEAD checks). */
  blobGets(): Promise<RegistryRequest[]>;
  /** Requests the token server answered (token auth only). */
  tokenRequests(): number;
  stop(): Promise<void>;
}

const SERVICE = 'berth-test-registry';
const ISSUER = 'berth-test-token-issuer';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** Starts a registry in a temp dir; stop() ends it by PID and removes the dir. */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-registry-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'registry.log');
  const users = opts.users ?? [];
  let tokenServer: Server | undefined;
  let tokenCount = 0;
  let child: ChildProcess | undefined;

  const stop = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const exited = new Promise<void>((r) => child!.once('exit', () => r()));
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      }, 3000);
      await exited;
      clearTimeout(timer);
    }
    if (tokenServer) {
      tokenServer.closeAllConnections();
      await new Promise<void>((r) => tokenServer!.close(() => r()));
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    let authYaml = '';
    if (opts.auth === 'htpasswd') {
      const lines: string[] = [];
      for (const u of users) lines.push((await execFileP('htpasswd', ['-Bbn', u.username, u.password])).stdout.trim());
      await writeFile(join(dir, 'htpasswd'), lines.join('\n') + '\n');
      authYaml = `auth:\n  htpasswd:\n    realm: berth-test\n    path: ${join(dir, 'htpasswd')}\n`;
    } else if (opts.auth === 'token') {
      const keyFile = join(dir, 'token.key');
      const certFile = join(dir, 'token.crt');
      await execFileP('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
        '-days', '2', '-subj', '/CN=berth-test-token-issuer',
      ]);
      const key = await readFile(keyFile, 'utf8');
      const certDer = new X509Certificate(await readFile(certFile)).raw;
      const tokenPort = await freePort();
      tokenServer = createHttpServer((req, res) => {
        tokenCount++;
        const url = new URL(req.url ?? '/', 'http://x');
        if (url.pathname !== '/token') {
          res.writeHead(404).end();
          return;
        }
        let subject = '';
        if (users.length > 0) {
          const user = checkBasic(req.headers.authorization, users);
          if (!user) {
            res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="berth-test"' });
            res.end(JSON.stringify({ details: 'invalid credentials' }));
            return;
          }
          subject = user;
        }
        // No users: anyone may pull and push (the helper's own pushes go through here too).
        const access = url.searchParams.getAll('scope').flatMap((scope) => {
          const m = /^(repository):(.+):([a-z*,]+)$/.exec(scope);
          return m ? [{ type: m[1], name: m[2], actions: m[3]!.split(',') }] : [];
        });
        const now = Math.floor(Date.now() / 1000);
        const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
        const claims = {
          iss: ISSUER,
          sub: subject,
          aud: url.searchParams.get('service') ?? SERVICE,
          exp: now + 300,
          nbf: now - 10,
          iat: now,
          jti: randomBytes(8).toString('hex'),
          access,
        };
        const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
        const signature = createSign('RSA-SHA256').update(signingInput).sign(key);
        const token = `${signingInput}.${b64url(signature)}`;
        const field = opts.tokenField ?? 'token';
        const body: Record<string, unknown> = { expires_in: 300, issued_at: new Date().toISOString() };
        if (field === 'token' || field === 'both') body.token = token;
        if (field === 'access_token' || field === 'both') body.access_token = token;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
      await new Promise<void>((r) => tokenServer!.listen(tokenPort, '127.0.0.1', () => r()));
      authYaml =
        `auth:\n  token:\n    realm: http://127.0.0.1:${tokenPort}/token\n    service: ${SERVICE}\n` +
        `    issuer: ${ISSUER}\n    rootcertbundle: ${certFile}\n`;
    }

    // A port can be taken between probing and binding: retry a few times.
    for (let attempt = 0; ; attempt++) {
      const host = opts.listen ? `${opts.listen.host}:${opts.listen.port}` : `127.0.0.1:${await freePort()}`;
      const config =
        `version: 0.1\nlog:\n  level: info\n  formatter: text\n` +
        `storage:\n  filesystem:\n    rootdirectory: ${dataDir}\n  delete:\n    enabled: true\n` +
        `  maintenance:\n    uploadpurging:\n      enabled: false\n` +
        `http:\n  addr: ${host}\n  secret: ${randomBytes(16).toString('hex')}\n` +
        authYaml;
      await writeFile(join(dir, 'config.yml'), config);
      const log = await open(logFile, 'a');
      child = spawn('/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], {
        stdio: ['ignore', log.fd, log.fd],
      });
      await log.close();
      const up = await waitUp(host, child);
      if (up) {
        return {
          host,
          dataDir,
          requests: () => readRequests(logFile),
          blobGets: async () => (await readRequests(logFile)).filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.uri)),
          tokenRequests: () => tokenCount,
          stop,
        };
      }
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      if (attempt >= 2 || opts.listen) throw new Error(`docker-registry did not start: ${(await readFile(logFile, 'utf8')).slice(-2000)}`);
    }
  } catch (e) {
    await stop();
    throw e;
  }
}

function checkBasic(header: string | undefined, users: RegistryUser[]): string | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  const name = decoded.slice(0, colon);
  const pass = Buffer.from(decoded.slice(colon + 1));
  const user = users.find((u) => u.username === name);
  if (!user) return undefined;
  const expected = Buffer.from(user.password);
  return expected.length === pass.length && timingSafeEqual(expected, pass) ? name : undefined;
}

async function waitUp(host: string, child: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    try {
      const res = await fetch(`http://${host}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) return true;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  return false;
}

/** The registry logs one "response completed" line per request, after the response is sent. */
async function readRequests(logFile: string): Promise<RegistryRequest[]> {
  // Let lines of requests that have just finished reach the log.
  await sleep(150);
  const text = await readFile(logFile, 'utf8');
  const out: RegistryRequest[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('msg="response completed"')) continue;
    const method = /http\.request\.method=(\S+)/.exec(line)?.[1];
    const uri = /http\.request\.uri="?([^"\s]+)"?/.exec(line)?.[1];
    const status = /http\.response\.status=(\d+)/.exec(line)?.[1];
    if (method && uri && status) out.push({ method, uri, status: Number(status) });
  }
  return out;
}
