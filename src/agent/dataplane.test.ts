// An agent's own HTTPS API and the control plane's client of it, over real TLS with a fake host behind it (the
// real agent behind it is tested end to end in test/e2e/cluster.test.ts): tokens, pinning, streams, errors.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { BerthError, Codes } from '../lib/errors.js';
import { ensureServerCert } from '../lib/tls.js';
import { newSigningKeyPair, TokenSigner, TokenVerifier } from '../lib/signed-token.js';
import type { ExecResult } from '../runtime/types.js';
import { RemoteHostDataPlane } from './dataplane-client.js';
import { startDataPlaneServer, type DataPlaneServer } from './dataplane-server.js';
import { fingerprintOf, type DataPlaneClaims } from './dataplane-wire.js';
import type { HostDataPlane } from './link.js';
import type { PublishedPort } from './spec.js';
import type { ExecHandle, ExecOptions, GroupUsage, LogOptions, TerminalSize } from './types.js';

/** A host with one group 'g1' and its container 'c1'; it records what it was asked. */
class FakeHost implements HostDataPlane {
  calls: string[] = [];
  followAborted = false;
  killed = 0;
  resizes: TerminalSize[] = [];
  private check(uid: string, container: string) {
    if (uid !== 'g1' || container !== 'c1') throw new BerthError(Codes.ContainerNotFound, `The container '${container}' was not found in the container group.`, 404, 'containerName');
  }
  async logs(uid: string, container: string, opts: LogOptions) {
    this.check(uid, container);
    this.calls.push(`logs ${JSON.stringify(opts)}`);
    return `log of ${uid}/${container}\n`;
  }
  async followLogs(uid: string, container: string, _opts: LogOptions, onChunk: (s: string) => void, signal: AbortSignal) {
    this.check(uid, container);
    onChunk('one\n');
    onChunk('two\n');
    if (container === 'c1') {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      this.followAborted = true;
    }
  }
  async exec(uid: string, container: string, argv: string[], opts?: ExecOptions): Promise<ExecHandle> {
    this.check(uid, container);
    if (argv[0] === 'missing') throw new BerthError(Codes.ContainerGroupNotRunning, `The container '${container}' is not running.`, 409);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let input = '';
    let finish!: (r: ExecResult) => void;
    const done = new Promise<ExecResult>((r) => (finish = r));
    const stdin = new Writable({
      write: (c: Buffer, _e, cb) => {
        input += c.toString();
        stdout.write(c.toString().toUpperCase());
        cb();
      },
      final: (cb) => {
        stderr.end(`argv=${argv.join(' ')} tty=${JSON.stringify(opts?.tty)} input=${input.length}\n`);
        stdout.end();
        finish({ exitCode: 3 });
        cb();
      },
    });
    return {
      tty: opts?.tty !== undefined, stdin, stdout, stderr, done,
      resize: (s) => this.resizes.push(s),
      kill: () => {
        this.killed++;
        finish({ exitCode: 137 });
      },
    };
  }
  /** Two readings of 'g1', at 1000 and 2000. */
  async usage(uid: string, since: number): Promise<GroupUsage[]> {
    if (uid !== 'g1') throw new BerthError(Codes.ResourceNotFound, 'no such group', 404);
    this.calls.push(`usage ${since}`);
    return [1000, 2000].filter((at) => at >= since).map((at) => ({ uid, at, containers: { c1: { cpuNanos: at * 1000, memoryBytes: 4096 } }, rxBytes: at, txBytes: 2 * at }));
  }
  async cachedImages() {
    return ['registry/a:1', 'registry/b:2'];
  }
  /** The host's own sshd and resolver. */
  async unavailablePorts(ports: PublishedPort[]) {
    this.calls.push(`ports ${ports.map((p) => `${p.protocol}/${p.port}`).join(',')}`);
    return ports.filter((p) => (p.port === 22 && p.protocol === 'TCP') || (p.port === 53 && p.protocol === 'UDP'));
  }
}

let dir: string;
let server: DataPlaneServer;
const host = new FakeHost();
const keys = newSigningKeyPair();
const signer = new TokenSigner(keys.privateKeyPem);
let pin: string;
let ca: string;
const client = (o: { mint?: (c: DataPlaneClaims) => string; certSha256?: string } = {}) =>
  new RemoteHostDataPlane({ host: 'h1', url: server.url, ca, certSha256: o.certSha256 ?? pin, mint: o.mint ?? ((c) => signer.sign(c, 60)) });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-dataplane-'));
  const tls = await ensureServerCert(dir, ['127.0.0.1']);
  ca = readFileSync(tls.caCert, 'utf8');
  pin = fingerprintOf(new X509Certificate(readFileSync(tls.cert)).fingerprint256);
  server = await startDataPlaneServer({
    host: 'h1', dataPlane: host, verifier: new TokenVerifier(keys.publicKeyPem),
    tls: { key: readFileSync(tls.key), cert: readFileSync(tls.cert) }, listen: { host: '127.0.0.1', port: 0 },
  });
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const rejectsWith = (p: Promise<unknown>, code: string, status: number) =>
  assert.rejects(p, (e: BerthError) => {
    assert.equal(e.code, code, e.message);
    assert.equal(e.status, status);
    return true;
  });

test('logs with their options, and the cached images, through the agent API', async () => {
  const c = client();
  assert.equal(await c.logs('g1', 'c1', { tail: 5, timestamps: true, previous: true }), 'log of g1/c1\n');
  assert.deepEqual(host.calls.at(-1), 'logs {"tail":5,"timestamps":true,"previous":true}');
  assert.deepEqual(await c.cachedImages(), ['registry/a:1', 'registry/b:2']);
  c.close();
});

test("a group's usage readings since a time, through the agent API", async () => {
  const c = client();
  assert.deepEqual(await c.usage('g1', 1500), [{ uid: 'g1', at: 2000, containers: { c1: { cpuNanos: 2_000_000, memoryBytes: 4096 } }, rxBytes: 2000, txBytes: 4000 }]);
  assert.equal(host.calls.at(-1), 'usage 1500');
  assert.equal((await c.usage('g1', 0)).length, 2);
  await rejectsWith(c.usage('g2', 0), Codes.ResourceNotFound, 404);
  c.close();
});

test('the ports the host keeps for itself, of those asked (none asked: no call)', async () => {
  const c = client();
  const asked: PublishedPort[] = [{ port: 22, protocol: 'TCP' }, { port: 22, protocol: 'UDP' }, { port: 53, protocol: 'UDP' }, { port: 8080, protocol: 'TCP' }];
  assert.deepEqual(await c.unavailablePorts(asked), [{ port: 22, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }]);
  assert.equal(host.calls.at(-1), 'ports TCP/22,UDP/22,UDP/53,TCP/8080');
  const calls = host.calls.length;
  assert.deepEqual(await c.unavailablePorts([]), []);
  assert.equal(host.calls.length, calls);
  c.close();
});

test("the host's errors arrive as the same BerthError (code, status, target)", async () => {
  const c = client();
  await assert.rejects(c.logs('g1', 'nope', {}), (e: BerthError) => {
    assert.ok(e instanceof BerthError);
    assert.deepEqual([e.code, e.status, e.target], [Codes.ContainerNotFound, 404, 'containerName']);
    return true;
  });
  await rejectsWith(c.exec('g1', 'c1', ['missing']), Codes.ContainerGroupNotRunning, 409);
  await rejectsWith(c.followLogs('g9', 'c1', {}, () => {}, new AbortController().signal), Codes.ContainerNotFound, 404);
  c.close();
});

test('a followed log streams until the caller stops, and the host sees the stop', async () => {
  const c = client();
  const ac = new AbortController();
  const got: string[] = [];
  const following = c.followLogs('g1', 'c1', {}, (s) => {
    got.push(s);
    if (got.length === 2) ac.abort();
  }, ac.signal).catch(() => undefined);
  await following;
  assert.deepEqual(got, ['one\n', 'two\n']);
  for (const deadline = Date.now() + 5000; !host.followAborted && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 10));
  assert.ok(host.followAborted, 'the host stopped following when the caller went');
  c.close();
});

test('exec: input, output on both channels, resize, end of input and the exit code cross the wire', async () => {
  const c = client();
  const p = await c.exec('g1', 'c1', ['sh', '-c', 'x y'], { tty: { rows: 10, cols: 20 } });
  assert.equal(p.tty, true);
  let out = '';
  let err = '';
  p.stdout.on('data', (b) => (out += b));
  p.stderr.on('data', (b) => (err += b));
  p.resize({ rows: 30, cols: 100 });
  p.stdin.write('hello ');
  p.stdin.end('world');
  assert.deepEqual(await p.done, { exitCode: 3 });
  assert.equal(out, 'HELLO WORLD');
  assert.equal(err, 'argv=sh -c x y tty={"rows":10,"cols":20} input=11\n');
  assert.deepEqual(host.resizes.at(-1), { rows: 30, cols: 100 });
  c.close();
});

test("exec: the caller's kill ends the process on the host", async () => {
  const c = client();
  const killed = host.killed;
  const p = await c.exec('g1', 'c1', ['sleep']);
  p.kill();
  await p.done;
  for (const deadline = Date.now() + 5000; host.killed === killed && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 10));
  assert.equal(host.killed, killed + 1);
  c.close();
});

test('only tokens the control plane signed for this host, operation, group and container are taken', async () => {
  const other = new TokenSigner(newSigningKeyPair().privateKeyPem);
  const cases: [string, (c: DataPlaneClaims) => string, string, number][] = [
    ['another key', (c) => other.sign(c, 60), Codes.InvalidAuthenticationToken, 401],
    ['expired', (c) => signer.sign(c, -5), Codes.InvalidAuthenticationToken, 401],
    ['another host', (c) => signer.sign({ ...c, host: 'h2' }, 60), 'AuthorizationFailed', 403],
    ['another group', (c) => signer.sign({ ...c, uid: 'g2' }, 60), 'AuthorizationFailed', 403],
    ['another container', (c) => signer.sign({ ...c, container: 'c2' }, 60), 'AuthorizationFailed', 403],
    ['another operation', (c) => signer.sign({ ...c, op: c.op === 'exec' ? 'logs' : 'exec' }, 60), 'AuthorizationFailed', 403],
    ['none', () => '', Codes.AuthenticationFailed, 401],
  ];
  const calls = host.calls.length;
  for (const [what, mint, code, status] of cases) {
    const c = client({ mint });
    await rejectsWith(c.logs('g1', 'c1', {}), code, status).catch((e) => assert.fail(`${what}: ${e}`));
    await rejectsWith(c.exec('g1', 'c1', ['sh']), code, status).catch((e) => assert.fail(`${what}: ${e}`));
    await rejectsWith(c.unavailablePorts([{ port: 80, protocol: 'TCP' }]), code, status).catch((e) => assert.fail(`${what}: ${e}`));
    await rejectsWith(c.usage('g1', 0), code, status).catch((e) => assert.fail(`${what}: ${e}`));
    c.close();
  }
  assert.equal(host.calls.length, calls, 'nothing reached the host');
});

test('a host answering with another certificate than the one it registered is not talked to', async () => {
  const c = client({ certSha256: 'ab'.repeat(32) });
  await rejectsWith(c.logs('g1', 'c1', {}), Codes.ServiceUnavailable, 503);
  await rejectsWith(c.exec('g1', 'c1', ['sh']), Codes.ServiceUnavailable, 503);
  c.close();
});
