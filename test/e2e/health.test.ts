// End to end: liveness and readiness probes, init containers and gitRepo volumes on real containers.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Api, containerProcesses, endE2e, hostFootprint, ociContainers, startBerth, type BerthProcess } from '../helpers/berth.js';
import { startRemoteHost, type RemoteHost } from '../helpers/remote.js';

const BRIDGE = 'bthealth0';
const SUBNET = '10.213.100.0/24';
const RG = 'health';

let registry: TestRegistry;
let berth: BerthProcess;
let api: Api;
let image: string;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'health', '1', { cmd: ['httpd', '-f', '-p', '80', '-h', '/www'] })).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET });
  api = new Api(berth);
});

after(() => endE2e({ berth, subscriptions: [api?.sub ?? 'e2e-sub'], registry, bridge: BRIDGE }));

const container = (name: string, props: Record<string, unknown>) => ({
  name,
  properties: { image, resources: { requests: { cpu: 0.25, memoryInGB: 0.125 } }, ...props },
});

const body = (props: Record<string, unknown>) => ({ location: 'local', properties: { osType: 'Linux', restartPolicy: 'Always', ...props } });

const get = async (name: string) => (await api.req('GET', api.groupPath(RG, name))).body;
const view = (g: any, i = 0) => g.properties.containers[i].properties.instanceView;
const events = (v: any) => (v?.events ?? []) as { name: string; message: string; type: string; count: number }[];
const logs = async (name: string, c: string) => (await api.req('GET', `${api.groupPath(RG, name)}/containers/${c}/logs`)).body?.content as string;

async function exec(name: string, c: string, command: string) {
  // Through the ARM exec API and its WebSocket, as a client would.
  const r = await api.req('POST', `${api.groupPath(RG, name)}/containers/${c}/exec`, { command, terminalSize: { rows: 24, cols: 80 } });
  assert.equal(r.status, 200, r.text);
  const ws = new WebSocket(r.body.webSocketUri);
  await new Promise<void>((res, rej) => {
    ws.on('open', () => ws.send(r.body.password));
    ws.on('close', () => res());
    ws.on('error', rej);
  });
}

describe('liveness probes', () => {
  test('an exec liveness probe that starts failing gets the container killed and restarted, with Unhealthy and Killing events', async () => {
    await api.createAndWait(RG, 'live', body({
      containers: [container('app', {
        command: ['sh', '-c', 'touch /tmp/healthy; echo started; sleep 2; rm /tmp/healthy; exec sleep 600'],
        livenessProbe: { exec: { command: ['cat', '/tmp/healthy'] }, periodSeconds: 1, failureThreshold: 2, timeoutSeconds: 1 },
      })],
    }));
    const g = await api.waitFor('a restart after the liveness probe failed', async () => {
      const x = await get('live');
      return view(x).restartCount >= 1 && view(x).currentState.state === 'Running' && x;
    }, 30_000);
    const v = view(g);
    const unhealthy = events(v).find((e) => e.name === 'Unhealthy');
    assert.ok(unhealthy, JSON.stringify(events(v)));
    assert.equal(unhealthy.type, 'Warning');
    assert.match(unhealthy.message, /^Liveness probe failed: command exited with 1/);
    assert.ok(unhealthy.count >= 2, 'failureThreshold 2: two failures before the kill');
    assert.ok(events(v).some((e) => e.name === 'Killing' && /failed liveness probe/.test(e.message)));
    assert.equal(v.previousState.state, 'Terminated');
    // The restarted instance is the same container with a fresh log; the killed run's log is the previous one.
    assert.equal(await api.waitFor('the new run\'s log', async () => (await logs('live', 'app'))?.includes('started') && logs('live', 'app')), 'started\n');
    assert.equal((await api.req('GET', `${api.groupPath(RG, 'live')}/containers/app/logs?previous=true`)).body?.content, 'started\n');
    // The spec shows the probe as given, with Kubernetes' defaults filled in.
    assert.deepEqual(g.properties.containers[0].properties.livenessProbe, {
      exec: { command: ['cat', '/tmp/healthy'] }, initialDelaySeconds: 0, periodSeconds: 1, failureThreshold: 2, successThreshold: 1, timeoutSeconds: 1,
    });
    await api.deleteAndWait(RG, 'live');
  });

  test('a liveness probe that never fails leaves the container alone; a hung probe times out and counts as a failure', async () => {
    await api.createAndWait(RG, 'steady', body({
      containers: [
        container('ok', { command: ['sleep', '600'], livenessProbe: { exec: { command: ['true'] }, periodSeconds: 1 } }),
        container('hang', {
          command: ['sleep', '600'],
          livenessProbe: { exec: { command: ['sleep', '30'] }, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 1, initialDelaySeconds: 1 },
        }),
      ],
    }));
    const g = await api.waitFor('the hung probe to restart its container', async () => {
      const x = await get('steady');
      return view(x, 1).restartCount >= 1 && x;
    }, 30_000);
    assert.equal(view(g, 0).restartCount, 0);
    assert.ok(!events(view(g, 0)).some((e) => e.name === 'Unhealthy'));
    assert.ok(events(view(g, 1)).some((e) => e.name === 'Unhealthy' && /timed out after 1s/.test(e.message)), JSON.stringify(events(view(g, 1))));
    // The timed-out probe process was killed, not left running in the container.
    // (in this berth's containers only: another run on the machine may sleep 30 too)
    const probeSleeps = () => [...ociContainers(berth.runcRoot).keys()].flatMap((id) => containerProcesses(id)).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\x0030\x00';
      } catch {
        return false; // ended meanwhile
      }
    });
    await api.waitFor('no probe sleep left in the containers', async () => probeSleeps().length === 0, 5000);
    await api.deleteAndWait(RG, 'steady');
  });
});

describe('readiness probes', () => {
  test('an httpGet readiness probe: NotReady until the path answers, Ready after, NotReady again when it stops', async () => {
    await api.createAndWait(RG, 'ready', body({
      containers: [container('web', {
        ports: [{ port: 80 }],
        readinessProbe: { httpGet: { path: '/ready.txt', port: 80, httpHeaders: [{ name: 'X-Probe', value: 'berth' }] }, periodSeconds: 1, failureThreshold: 1 },
      })],
    }));
    let g = await get('ready');
    assert.equal(view(g).currentState.state, 'Running');
    assert.equal(view(g).currentState.detailStatus, 'NotReady');
    // (the first probe may come before httpd listens: connection refused, then the 404 of a missing path)
    const notFound = /^Readiness probe failed: HTTP probe failed with statuscode: 404/;
    g = await api.waitFor('an Unhealthy readiness event for the missing path', async () => {
      const x = await get('ready');
      return events(view(x)).some((e) => e.name === 'Unhealthy' && notFound.test(e.message)) && x;
    }, 10_000);
    assert.equal(view(g).currentState.detailStatus, 'NotReady');

    await exec('ready', 'web', 'touch /www/ready.txt');
    g = await api.waitFor('Ready', async () => {
      const x = await get('ready');
      return view(x).currentState.detailStatus === 'Ready' && x;
    }, 10_000);
    // Readiness does not restart anything.
    assert.equal(view(g).restartCount, 0);

    await exec('ready', 'web', 'rm /www/ready.txt');
    await api.waitFor('NotReady again', async () => view(await get('ready')).currentState.detailStatus === 'NotReady', 10_000);
    assert.equal(view(await get('ready')).restartCount, 0);
    await api.deleteAndWait(RG, 'ready');
  });

  test('readiness survives a restart of berth: a Ready container stays Ready and keeps being probed', async () => {
    await api.createAndWait(RG, 'ready2', body({
      containers: [container('web', { ports: [{ port: 80 }], readinessProbe: { httpGet: { path: '/', port: 80 }, periodSeconds: 1 } })],
    }));
    await api.waitFor('Ready', async () => view(await get('ready2')).currentState.detailStatus === 'Ready', 10_000);
    const dataDir = berth.dataDir;
    const runcRoot = berth.runcRoot;
    await berth.stop('SIGKILL');
    berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET, dataDir, runcRoot });
    api = new Api(berth);
    assert.equal(view(await get('ready2')).currentState.detailStatus, 'Ready');
    await exec('ready2', 'web', 'rm /www/index.html');
    await api.waitFor('NotReady once the probe fails after the restart', async () => view(await get('ready2')).currentState.detailStatus === 'NotReady', 15_000);
    await api.deleteAndWait(RG, 'ready2');
  });
});

describe('init containers', () => {
  test('run in order to completion before the containers start, sharing the group\'s volumes; their logs and states are visible', async () => {
    const g0 = await api.createAndWait(RG, 'init', body({
      volumes: [{ name: 'work', emptyDir: {} }],
      initContainers: [
        { name: 'first', properties: { image, command: ['sh', '-c', 'echo one > /work/order; echo first done'], volumeMounts: [{ name: 'work', mountPath: '/work' }] } },
        { name: 'second', properties: { image, command: ['sh', '-c', 'sleep 1; echo "two $GREETING" >> /work/order'], environmentVariables: [{ name: 'GREETING', value: 'hi' }], volumeMounts: [{ name: 'work', mountPath: '/work' }] } },
      ],
      containers: [container('app', { command: ['sh', '-c', 'cat /work/order; exec sleep 600'], volumeMounts: [{ name: 'work', mountPath: '/work' }] })],
    }));
    assert.equal(g0.properties.initContainers.length, 2);
    const g = await api.waitFor('the app running', async () => {
      const x = await get('init');
      return view(x).currentState.state === 'Running' && x;
    }, 20_000);
    assert.equal(g.properties.instanceView.state, 'Running');
    for (const ic of g.properties.initContainers) {
      assert.equal(ic.properties.instanceView.currentState.state, 'Terminated', ic.name);
      assert.equal(ic.properties.instanceView.currentState.exitCode, 0);
      assert.equal(ic.properties.instanceView.currentState.detailStatus, 'Completed');
    }
    // Each ran to its end before the next began, and both before the app.
    const [first, second] = g.properties.initContainers.map((ic: any) => ic.properties.instanceView.currentState);
    assert.ok(Date.parse(first.finishTime) <= Date.parse(second.startTime));
    assert.ok(Date.parse(second.finishTime) <= Date.parse(view(g).currentState.startTime));
    assert.equal(await api.waitFor('app log', async () => (await logs('init', 'app'))?.includes('two') && logs('init', 'app')), 'one\ntwo hi\n');
    assert.equal(await logs('init', 'first'), 'first done\n');
    await api.deleteAndWait(RG, 'init');
  });

  test('a failing init container with restartPolicy Never fails the group and its containers never start', async () => {
    await api.createAndWait(RG, 'init-fail', body({
      restartPolicy: 'Never',
      initContainers: [{ name: 'setup', properties: { image, command: ['sh', '-c', 'echo cannot set up; exit 4'] } }],
      containers: [container('app', { command: ['sh', '-c', 'echo app ran; sleep 600'] })],
    }));
    const g = await api.waitFor('the group Failed', async () => {
      const x = await get('init-fail');
      return x.properties.instanceView.state === 'Failed' && x;
    }, 20_000);
    const iv = g.properties.initContainers[0].properties.instanceView;
    assert.equal(iv.currentState.exitCode, 4);
    assert.equal(iv.currentState.detailStatus, 'Error');
    assert.equal(view(g).currentState.state, 'Waiting');
    assert.equal(await logs('init-fail', 'setup'), 'cannot set up\n');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(view(await get('init-fail')).currentState.state, 'Waiting', 'the app never starts');
    await api.deleteAndWait(RG, 'init-fail');
  });

  test('a failing init container is retried with backoff under OnFailure, and the group goes on once it succeeds', async () => {
    await api.createAndWait(RG, 'init-retry', body({
      restartPolicy: 'OnFailure',
      volumes: [{ name: 'state', emptyDir: {} }],
      // Fails the first time, succeeds the second.
      initContainers: [{ name: 'flaky', properties: { image, command: ['sh', '-c', 'if [ -e /s/tried ]; then echo ok; else touch /s/tried; echo not yet; exit 1; fi'], volumeMounts: [{ name: 'state', mountPath: '/s' }] } }],
      containers: [container('app', { command: ['sleep', '600'] })],
    }));
    const g = await api.waitFor('the app running after one init retry', async () => {
      const x = await get('init-retry');
      return view(x).currentState.state === 'Running' && x;
    }, 30_000);
    const iv = g.properties.initContainers[0].properties.instanceView;
    assert.equal(iv.restartCount, 1);
    assert.equal(iv.previousState.exitCode, 1);
    assert.equal(iv.currentState.exitCode, 0);
    await api.deleteAndWait(RG, 'init-retry');
  });
});

describe('gitRepo volumes', () => {
  let remote: RemoteHost | undefined;
  let gitDir: string;
  let firstCommit: string;
  // Clones run in the group's network namespace: they reach what its containers reach, which is
  // no service of this host, so the repository is served from another (a namespace behind a veth).
  let server: string;
  const serving = (url: string) => api.waitFor(`git daemon at ${url}`, async () => {
    try {
      execFileSync('git', ['ls-remote', url], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  }, 10_000);

  before(async () => {
    gitDir = mkdtempSync(join(tmpdir(), 'berth-git-'));
    const git = (...args: string[]) => execFileSync('git', args, { cwd: join(gitDir, 'work'), encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } }).trim();
    execFileSync('git', ['init', '-q', '-b', 'main', join(gitDir, 'work')]);
    writeFileSync(join(gitDir, 'work', 'site.txt'), 'version one\n');
    git('add', 'site.txt');
    git('commit', '-q', '-m', 'one');
    firstCommit = git('rev-parse', 'HEAD');
    writeFileSync(join(gitDir, 'work', 'site.txt'), 'version two\n');
    git('commit', '-q', '-am', 'two');
    execFileSync('git', ['clone', '-q', '--bare', join(gitDir, 'work'), join(gitDir, 'repos', 'site.git')]);
    remote = startRemoteHost(`btgit-${process.pid}`, '10.213.101');
    remote.run(['git', 'daemon', '--export-all', `--base-path=${join(gitDir, 'repos')}`, `--listen=${remote.address}`, '--reuseaddr', join(gitDir, 'repos')]);
    server = `${remote.address}:9418`;
    await serving(`git://${server}/site.git`);
  });

  after(() => {
    remote?.close();
    rmSync(gitDir, { recursive: true, force: true });
  });

  test('a repository is cloned into the volume: at a revision into ".", and by default into a directory named after it', async () => {
    await api.createAndWait(RG, 'git', body({
      volumes: [
        { name: 'pinned', gitRepo: { repository: `git://${server}/site.git`, directory: '.', revision: firstCommit } },
        { name: 'head', gitRepo: { repository: `git://${server}/site.git` } },
      ],
      containers: [container('app', {
        command: ['sh', '-c', 'cat /pinned/site.txt /head/site/site.txt; exec sleep 600'],
        volumeMounts: [{ name: 'pinned', mountPath: '/pinned' }, { name: 'head', mountPath: '/head', readOnly: true }],
      })],
    }));
    assert.equal(await api.waitFor('app log', async () => (await logs('git', 'app'))?.includes('two') && logs('git', 'app')), 'version one\nversion two\n');
    const g = await get('git');
    assert.deepEqual(g.properties.volumes[0], { name: 'pinned', gitRepo: { repository: `git://${server}/site.git`, directory: '.', revision: firstCommit } });
    await api.deleteAndWait(RG, 'git');
  });

  test('a clone that fails fails provisioning with GitRepoCloneFailed and leaves nothing behind; local paths are refused', async () => {
    const before = hostFootprint(berth.runcRoot, berth.dataDir);
    const put = await api.create(RG, 'git-bad', body({
      volumes: [{ name: 'src', gitRepo: { repository: `git://${server}/missing.git` } }],
      containers: [container('app', { command: ['sleep', '600'], volumeMounts: [{ name: 'src', mountPath: '/src' }] })],
    }));
    const op = await api.waitOp(put.headers.get('azure-asyncoperation')!);
    assert.equal(op.status, 'Failed');
    assert.equal(op.error?.code, 'GitRepoCloneFailed');
    assert.match(op.error!.message, /The gitRepo volume 'src' could not be cloned from 'git:\/\/10\.213\.101\.2:9418\/missing\.git'/);
    assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), before);
    await api.deleteAndWait(RG, 'git-bad');

    // Services of this host are out of the group's reach: on its loopback (not the group's), and
    // on its address on the group's bridge (the gateway).
    for (const host of ['127.0.0.1', '10.213.100.1']) {
      const local = spawn('git', ['daemon', '--export-all', `--base-path=${join(gitDir, 'repos')}`, `--listen=${host}`, '--reuseaddr', join(gitDir, 'repos')], { stdio: 'ignore' });
      try {
        await serving(`git://${host}:9418/site.git`);
        const lput = await api.create(RG, 'git-local', body({
          volumes: [{ name: 'src', gitRepo: { repository: `git://${host}:9418/site.git` } }],
          containers: [container('app', { command: ['sleep', '600'], volumeMounts: [{ name: 'src', mountPath: '/src' }] })],
        }));
        const lop = await api.waitOp(lput.headers.get('azure-asyncoperation')!);
        assert.equal(lop.status, 'Failed', host);
        assert.equal(lop.error?.code, 'GitRepoCloneFailed', host);
        await api.deleteAndWait(RG, 'git-local');
      } finally {
        if (local.exitCode === null && local.signalCode === null) {
          const exited = new Promise((r) => local.once('exit', r));
          process.kill(local.pid!, 'SIGTERM');
          await exited;
        }
      }
    }

    for (const repository of [gitDir, `file://${gitDir}/repos/site.git`, 'ext::sh -c touch% /tmp/pwned']) {
      const r = await api.req('PUT', api.groupPath(RG, 'git-local'), body({
        volumes: [{ name: 'src', gitRepo: { repository } }],
        containers: [container('app', { volumeMounts: [{ name: 'src', mountPath: '/src' }] })],
      }));
      assert.equal(r.status, 400, repository);
      assert.equal(r.body.error.code, 'InvalidVolume');
    }
  });
});
