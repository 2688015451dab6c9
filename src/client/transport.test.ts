// The client's HTTP against a real berth server: retries (faults injected by a proxy in front of it), typed errors, TLS trust, service-principal sign-in.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { armErrorOf } from '../../test/helpers/assertions.js';
import { endE2e, startBerth, type BerthProcess } from '../../test/helpers/berth.js';
import { startProxy, type FaultyProxy } from '../../test/helpers/proxy.js';
import { ContainerInstanceClient } from './client.js';
import { ServicePrincipalCredential, StaticTokenCredential } from './credentials.js';
import { retryAfterMs } from './transport.js';

const BRIDGE = 'btclient1';
const SP = { clientId: '1b7e5c3a-2d4f-4a6b-8c9d-0e1f2a3b4c5d', clientSecret: 'client-test-secret', tenantId: '7c2d9e4f-6a1b-4c3d-9e8f-1a2b3c4d5e6f', subscriptions: ['sp-sub'] };
let berth: BerthProcess;
let proxy: FaultyProxy;

before(async () => {
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.81.0/24', config: { servicePrincipals: [SP], subscriptions: ['sp-sub'] } });
  proxy = await startProxy(berth.url);
});
after(async () => {
  await proxy?.stop();
  await endE2e({ berth, subscriptions: [], bridge: BRIDGE });
});

const clientVia = (endpoint: string, o: Partial<ConstructorParameters<typeof ContainerInstanceClient>[0]> = {}) =>
  new ContainerInstanceClient({ endpoint, subscriptionId: 'transport-sub', credential: new StaticTokenCredential(berth.token), retryDelayMs: 10, ...o });


describe('transport', () => {
  it('retries a safe request after 503 and 429 (as Retry-After says) and after dropped connections, a bounded number of times', async () => {
    const c = clientVia(proxy.url, { maxRetries: 3 });
    const requests = () => proxy.seen.length;
    let n = requests();
    proxy.failNext(2, 503, '0');
    assert.deepEqual(await c.containerGroups.list().toArray(), []);
    assert.equal(requests() - n, 3, 'two refusals, then the answer');

    n = requests();
    proxy.failNext(1, 429, '1');
    const t0 = Date.now();
    await c.containerGroups.list().toArray();
    assert.ok(Date.now() - t0 >= 1000, 'waited the second Retry-After asked for');
    assert.equal(requests() - n, 2);

    n = requests();
    proxy.dropNext(2);
    await c.containerGroups.list().toArray();
    assert.equal(requests() - n, 3, 'two dropped connections, then the answer');

    n = requests();
    proxy.failNext(10, 503, '0');
    const busy = await armErrorOf(c.containerGroups.list().toArray());
    assert.equal(requests() - n, 4, 'the first try and 3 retries');
    assert.deepEqual([busy.status, busy.code], [503, 'ServerBusy']);
    proxy.failNext(0, 0);

    // A Retry-After longer than the client waits ends the retries at once.
    n = requests();
    proxy.failNext(1, 503, '3600');
    assert.equal((await armErrorOf(c.containerGroups.list().toArray())).status, 503);
    assert.equal(requests() - n, 1);
    c.close();
  });

  it('never repeats a request that is not idempotent after its connection broke', async () => {
    const c = clientVia(proxy.url, { maxRetries: 3 });
    const n = proxy.seen.length;
    proxy.dropNext(1);
    const e = await armErrorOf(c.containerGroups.stop('rg', 'nope'));
    assert.equal(e.code, 'ServiceUnreachable');
    assert.equal(e.status, 503);
    assert.deepEqual(proxy.seen.slice(n).map((l) => l.split(' ')[0]), ['POST'], 'one POST, not retried');
    // The same POST through a healthy connection reaches berth and gets its answer.
    assert.equal((await armErrorOf(c.containerGroups.stop('rg', 'nope'))).code, 'ResourceNotFound');
    c.close();
  });

  it('gives every failure as an ArmError: status, ARM code, message and target, or ServiceUnreachable', async () => {
    const c = clientVia(berth.url);
    const missing = await armErrorOf(c.containerGroups.get('rg', 'nope'));
    assert.deepEqual([missing.status, missing.code], [404, 'ResourceNotFound']);
    assert.match(missing.message, /nope/);
    assert.ok(missing.requestId, 'the x-ms-request-id of the answer');

    const invalid = await armErrorOf(c.containerGroups.createOrUpdate('rg', 'bad', {
      location: 'local', properties: { osType: 'Linux', containers: [{ name: 'Main', properties: { image: 'x', resources: { requests: { cpu: 1, memoryInGB: 1 } } } }] },
    }));
    assert.deepEqual([invalid.status, invalid.code], [400, 'InvalidContainerName']);
    assert.match(invalid.target ?? '', /containers\[0\]\.name/);

    const stranger = new ContainerInstanceClient({ endpoint: berth.url, subscriptionId: 's', credential: new StaticTokenCredential('not-a-token') });
    const denied = await armErrorOf(stranger.containerGroups.list().toArray());
    assert.equal(denied.status, 401);
    assert.equal(denied.code, 'InvalidAuthenticationToken');

    // Nothing listens there: after its retries, the client says it could not reach the endpoint.
    const closed = clientVia('http://127.0.0.1:9', { maxRetries: 1 });
    const gone = await armErrorOf(closed.containerGroups.list().toArray());
    assert.deepEqual([gone.status, gone.code], [503, 'ServiceUnreachable']);
    assert.match(gone.message, /ECONNREFUSED/);
    for (const x of [c, stranger, closed]) x.close();
  });

  it('trusts the CA it is given, and only that one', async () => {
    const trusted = clientVia(berth.httpsUrl, { ca: readFileSync(berth.caCert) });
    assert.deepEqual(await trusted.containerGroups.list().toArray(), []);
    const dir = mkdtempSync(join(tmpdir(), 'berth-other-ca-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=other-ca', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'ca.pem')], { stdio: 'ignore' });
      const other = clientVia(berth.httpsUrl, { ca: readFileSync(join(dir, 'ca.pem')), maxRetries: 0 });
      const e = await armErrorOf(other.containerGroups.list().toArray());
      assert.equal(e.code, 'ServiceUnreachable');
      assert.match(e.message, /certificate/);
      other.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    trusted.close();
  });

  it('signs a service principal in as az does (OpenID discovery, client credentials) and refreshes its token before it expires', async () => {
    let now = Date.now();
    const credential = new ServicePrincipalCredential({
      authority: `${berth.httpsUrl}/adfs`, clientId: SP.clientId, clientSecret: SP.clientSecret, ca: readFileSync(berth.caCert), now: () => now,
    });
    const c = new ContainerInstanceClient({ endpoint: berth.httpsUrl, subscriptionId: 'sp-sub', credential, ca: readFileSync(berth.caCert) });
    assert.deepEqual(await c.containerGroups.list().toArray(), []);
    const scope = `${berth.httpsUrl}/.default`;
    const first = await credential.getToken(scope);
    assert.equal((await credential.getToken(scope)).token, first.token, 'kept while it is fresh');
    // berth's tokens live an hour: 56 minutes on, the credential asks for a new one.
    now += 56 * 60_000;
    const second = await credential.getToken(scope);
    assert.notEqual(second.token, first.token);
    assert.ok(second.expiresOnTimestamp > first.expiresOnTimestamp);
    // The principal may use only its own subscriptions.
    const elsewhere = new ContainerInstanceClient({ endpoint: berth.httpsUrl, subscriptionId: 'other-sub', credential, ca: readFileSync(berth.caCert) });
    const e = await armErrorOf(elsewhere.containerGroups.list().toArray());
    assert.deepEqual([e.status, e.code], [403, 'AuthorizationFailed']);

    // A wrong secret: the token endpoint's refusal is what a call fails with.
    const wrong = new ServicePrincipalCredential({ authority: `${berth.httpsUrl}/adfs`, clientId: SP.clientId, clientSecret: 'wrong', ca: readFileSync(berth.caCert) });
    const refused = await armErrorOf(wrong.getToken(scope));
    assert.deepEqual([refused.status, refused.code], [401, 'invalid_client']);
    const refusedClient = new ContainerInstanceClient({ endpoint: berth.httpsUrl, subscriptionId: 'sp-sub', credential: wrong, ca: readFileSync(berth.caCert) });
    const failed = await armErrorOf(refusedClient.containerGroups.list().toArray());
    assert.deepEqual([failed.status, failed.code], [401, 'invalid_client']);
    refusedClient.close();
    c.close();
    elsewhere.close();
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    assert.equal(retryAfterMs({ 'retry-after': '2' }), 2000);
    assert.equal(retryAfterMs({ 'retry-after': new Date(10_000).toUTCString() }, 4000), 6000);
    assert.equal(retryAfterMs({}), undefined);
    assert.equal(retryAfterMs({ 'retry-after': 'soon' }), undefined);
  });
});
