// The client's typed operations against a real berth server (real registry, runtime and network): LROs, paging, logs, exec, attach, ARM reads.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { armErrorOf, until } from '../../test/helpers/assertions.js';
import { endE2e, group, startBerth, type BerthProcess } from '../../test/helpers/berth.js';
import { buildImage } from '../../test/helpers/images.js';
import { startRegistry, type TestRegistry } from '../../test/helpers/registry.js';
import { ContainerInstanceClient } from './client.js';
import { StaticTokenCredential } from './credentials.js';
import type { ContainerGroup, OperationStatus } from './models.js';

const BRIDGE = 'btclient0';
const SUB = 'client-sub';
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;
let client: ContainerInstanceClient;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'client-web', '1')).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.80.0/24' });
  client = new ContainerInstanceClient({ endpoint: berth.url, subscriptionId: SUB, credential: new StaticTokenCredential(berth.token) });
});
after(async () => {
  client?.close();
  await endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE });
});

const sleeper = () => group(image, { command: ['sleep', '1000'], cpu: 0.1, memoryInGB: 0.1 }) as ContainerGroup;



describe('client operations', () => {
  it('creates as a long-running operation polled as Retry-After says, and reads, pages, tags, stops, starts, restarts and deletes groups', async () => {
    const groups = client.containerGroups;
    const op = await groups.beginCreateOrUpdate('cl', 'one', sleeper());
    assert.equal(op.status, 201);
    assert.match(op.operationUrl ?? '', /\/providers\/Microsoft\.ContainerInstance\/locations\/local\/operations\//);
    assert.equal(op.initial?.name, 'one');
    const polls: [number, string][] = [];
    const t0 = Date.now();
    const made = await op.wait({ onPoll: (s: OperationStatus) => void polls.push([Date.now() - t0, s.status]) });
    assert.equal(made.properties.provisioningState, 'Succeeded');
    assert.equal(made.properties.instanceView?.state, 'Running');
    // berth answers Retry-After: 1; the client waits it before each poll.
    assert.ok(polls[0][0] >= 1000, `first poll after ${polls[0][0]} ms`);
    assert.equal(polls.at(-1)![1], 'Succeeded');

    await groups.createOrUpdate('cl', 'two', sleeper(), { pollIntervalMs: 50 });
    await groups.createOrUpdate('other', 'three', sleeper(), { pollIntervalMs: 50 });
    // One group a page: three pages, followed through nextLink.
    const pages: string[][] = [];
    for await (const page of groups.list({ top: 1 }).byPage()) pages.push(page.map((g) => g.name));
    assert.deepEqual(pages, [['one'], ['two'], ['three']]);
    assert.deepEqual((await groups.listByResourceGroup('cl').toArray()).map((g) => g.name), ['one', 'two']);

    assert.deepEqual((await groups.updateTags('cl', 'one', { team: 'a' })).tags, { team: 'a' });
    assert.deepEqual((await groups.get('cl', 'one')).tags, { team: 'a' });

    await groups.stop('cl', 'one');
    // berth's stop answers before the group has stopped (ACI's, once it has)
    await until('the group stopped', async () => (await groups.get('cl', 'one')).properties.instanceView?.state === 'Stopped');
    await groups.start('cl', 'one', { pollIntervalMs: 50 });
    assert.equal((await groups.get('cl', 'one')).properties.instanceView?.state, 'Running');
    const before = (await groups.get('cl', 'one')).properties.containers[0].properties.instanceView?.currentState?.startTime;
    await groups.restart('cl', 'one', { pollIntervalMs: 50 });
    const restarted = await groups.get('cl', 'one');
    assert.equal(restarted.properties.instanceView?.state, 'Running');
    assert.notEqual(restarted.properties.containers[0].properties.instanceView?.currentState?.startTime, before);

    assert.equal(await groups.delete('cl', 'two', { pollIntervalMs: 50 }), true);
    assert.equal((await armErrorOf(groups.get('cl', 'two'))).code, 'ResourceNotFound');
    assert.equal(await groups.find('cl', 'two'), undefined);
    assert.equal(await groups.delete('cl', 'two'), false, 'nothing to delete');
    for (const [rg, n] of [['cl', 'one'], ['other', 'three']]) await groups.delete(rg, n, { pollIntervalMs: 50 });
  });

  it('a failed provisioning makes wait() throw the operation\'s error', async () => {
    const body = group(`${registry.host}/does-not-exist:1`) as ContainerGroup;
    const e = await armErrorOf(client.containerGroups.createOrUpdate('cl', 'noimage', body, { pollIntervalMs: 50 }));
    assert.equal(e.code, 'InaccessibleImage');
    assert.equal((await client.containerGroups.get('cl', 'noimage')).properties.provisioningState, 'Failed');
    // Waiting less than an operation takes ends the wait, not the operation.
    const slow = await client.containerGroups.beginCreateOrUpdate('cl', 'slow', sleeper());
    assert.equal((await armErrorOf(slow.wait({ timeoutMs: 200 }))).code, 'OperationTimedOut');
    await slow.wait({ pollIntervalMs: 50 });
    for (const n of ['noimage', 'slow']) await client.containerGroups.delete('cl', n, { pollIntervalMs: 50 });
  });

  it('reads logs (tail, follow), runs commands (exit code, input, terminal and its resize) and attaches', async () => {
    const body = group(image, { command: ['sh', '-c', 'echo hello; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'], cpu: 0.1, memoryInGB: 0.1 }) as ContainerGroup;
    await client.containerGroups.createOrUpdate('io', 'ticker', body, { pollIntervalMs: 50 });
    const c = client.containers;
    assert.match(await c.logs('io', 'ticker', 'main'), /^hello\ntick 0\n/);
    assert.match(await c.logs('io', 'ticker', 'main', { tail: 1 }), /^tick \d+\n$/);
    assert.match(await c.logs('io', 'ticker', 'main', { tail: 1, timestamps: true }), /^\d{4}-\d\d-\d\dT\S+ tick \d+\n$/);

    // follow: lines written after it began arrive, until the caller aborts
    const ac = new AbortController();
    let followed = '';
    const reading = (async () => {
      for await (const chunk of await c.followLogs('io', 'ticker', 'main', { tail: 1, signal: ac.signal })) followed += chunk.toString();
    })().catch((e) => (ac.signal.aborted ? undefined : Promise.reject(e)));
    await until('three followed lines', () => (followed.match(/tick \d+\n/g) ?? []).length >= 3);
    ac.abort();
    await reading;

    let out = '';
    const failing = await c.openExec('io', 'ticker', 'main', { command: `sh -c 'echo "a  b"; exit 7'`, onOutput: (d) => (out += d) });
    assert.equal((await failing.ended).exitCode, 7);
    assert.equal(out, 'a  b\n');

    out = '';
    const cat = await c.openExec('io', 'ticker', 'main', { command: 'cat', onOutput: (d) => (out += d) });
    cat.write('piped input\n');
    cat.endInput();
    assert.equal((await cat.ended).exitCode, 0);
    assert.equal(out, 'piped input\n');

    out = '';
    const tty = await c.openExec('io', 'ticker', 'main', { command: `sh -c 'stty size; read x; stty size'`, terminalSize: { rows: 20, cols: 70 }, onOutput: (d) => (out += d) });
    await until('the first size', () => /20 70/.test(out));
    tty.resize({ rows: 33, cols: 101 });
    tty.write('\n');
    assert.equal((await tty.ended).exitCode, 0);
    assert.match(out.replace(/\r/g, ''), /20 70\n[\s\S]*33 101\n$/);

    const missing = await c.openExec('io', 'ticker', 'main', { command: 'no-such-command', onOutput: () => undefined });
    const why = await armErrorOf(missing.ended);
    assert.equal(why.code, 'SessionFailed');
    // runc and crun word it differently; both name the command and say it was not found
    assert.match(why.message, /no-such-command.*not found/);

    let attached = '';
    const attach = await c.openAttach('io', 'ticker', 'main', { onOutput: (d) => (attached += d) });
    await until('two attached lines', () => (attached.match(/tick \d+\n/g) ?? []).length >= 2);
    attach.close();
    await attach.ended;
    assert.doesNotMatch(attached, /hello/, 'attach gives output from now on');
    await client.containerGroups.delete('io', 'ticker', { pollIntervalMs: 50 });
  });

  it('reads usage, capabilities, cached images and the provider operations; manages resource groups; sends the api-version a call names', async () => {
    const usage = await client.location.listUsage('local').toArray();
    assert.deepEqual(usage.map((u) => u.name?.value).sort(), ['ContainerGroups', 'StandardCores']);
    assert.deepEqual((await client.location.listCapabilities('local').toArray()).map((c) => c.ipAddressType).sort(), ['Private', 'Public']);
    assert.ok((await client.location.listCachedImages('local').toArray()).some((i) => i.image === image), 'the image pulled above is cached');
    assert.ok((await client.operations.list().toArray()).some((o) => o.name === 'Microsoft.ContainerInstance/containerGroups/read'));

    const rgs = client.resourceGroups;
    assert.equal((await rgs.createOrUpdate('made', { location: 'local', tags: { a: 'b' } })).properties?.provisioningState, 'Succeeded');
    assert.deepEqual((await rgs.get('made')).tags, { a: 'b' });
    assert.ok((await rgs.list().toArray()).some((g) => g.name === 'made'));
    await rgs.delete('made', { pollIntervalMs: 50 });
    assert.equal((await armErrorOf(rgs.get('made'))).code, 'ResourceGroupNotFound');

    const op = await client.containerGroups.beginCreateOrUpdate('cl', 'versioned', sleeper(), { apiVersion: '2021-10-01' });
    assert.match(op.operationUrl ?? '', /api-version=2021-10-01/);
    assert.ok(['InProgress', 'Succeeded'].includes((await client.operationStatus(op.operationUrl!)).status));
    assert.equal((await client.waitForOperation(op.operationUrl!, { pollIntervalMs: 50 })).status, 'Succeeded');
    assert.equal((await armErrorOf(client.containerGroups.get('cl', 'versioned', { apiVersion: '1999-01-01' }))).code, 'InvalidApiVersionParameter');
    await client.containerGroups.delete('cl', 'versioned', { pollIntervalMs: 50 });
  });
});
