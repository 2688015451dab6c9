// End-to-end: a real Kubernetes control plane schedules pods onto `berth kubernetes-node`, which runs them on a real berth server.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Api, childProcesses, execProcesses, ociContainers, startBerth, type BerthProcess } from '../helpers/berth.js';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startControlPlane, type ControlPlane } from '../helpers/kube.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SUB = 'k8s-e2e';
const NODE = 'berth-e2e';
const RG = `k8s-${NODE}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000, every = 200): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(every);
  }
}

const isReady = (p: any) => p.status?.phase === 'Running' && p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True');
const toleration = [{ key: 'virtual-kubelet.io/provider', operator: 'Equal', value: 'berth', effect: 'NoSchedule' }];

describe('kubernetes virtual node', { concurrency: false }, () => {
  let cp: ControlPlane;
  let berth: BerthProcess;
  let registry: TestRegistry;
  let image: string;
  let api: Api;
  let connector: ChildProcess | undefined;
  let connectorLog = '';

  const startConnector = async () => {
    connectorLog = '';
    connector = spawn(process.execPath, [
      join(repo, 'dist/src/cli/main.js'), 'kubernetes-node', '--kubeconfig', cp.kubeconfig, '--node-name', NODE,
      '--node-ip', '127.0.0.1', '--kubelet-listen', '127.0.0.1', '--kubelet-port', '0',
      '--berth-endpoint', berth.url, '--berth-token', berth.token, '--subscription', SUB,
      // Status comes only through berth's change stream: the backstop read is out of the test's reach.
      '--status-interval-ms', '600000', '--sweep-interval-seconds', '3',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    connector.stdout!.on('data', (d) => (connectorLog += d));
    connector.stderr!.on('data', (d) => (connectorLog += d));
    await waitFor('the connector to be ready', async () => /is Ready/.test(connectorLog) || (connector!.exitCode !== null && Promise.reject(new Error(connectorLog))), 30_000);
  };
  const killConnector = async (signal: NodeJS.Signals) => {
    if (!connector || connector.exitCode !== null || connector.signalCode !== null) return;
    const exited = new Promise((r) => connector!.once('exit', r));
    process.kill(connector.pid!, signal);
    await exited;
  };
  /** kubectl with input on its stdin; resolves with its output and exit code. */
  const kubectlIn = (input: string, ...args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
    const k = spawn(join(cp.bindir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    k.stdout!.on('data', (d) => (stdout += d));
    k.stderr!.on('data', (d) => (stderr += d));
    k.on('close', (code) => res({ code, stdout, stderr }));
    k.stdin!.end(input);
  });
  /** kubectl under a pseudo-terminal of script(1), sized by stty, typed into through script's stdin. */
  const kubectlTty = (rows: number, cols: number, ...args: string[]) => {
    const cmd = [join(cp.bindir, 'kubectl'), '--kubeconfig', cp.kubeconfig, ...args].map((a) => `'${a}'`).join(' ');
    const s = spawn('script', ['-qfec', `stty rows ${rows} cols ${cols}; exec ${cmd}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    s.stdout!.on('data', (d) => (screen += d));
    s.stderr!.on('data', (d) => (screen += d));
    const exited = new Promise<number | null>((r) => s.on('close', r));
    return {
      script: s, exited, screen: () => screen,
      type: (text: string) => s.stdin!.write(text),
      waitFor: (re: RegExp) => waitFor(`${re} on kubectl's terminal`, async () => re.test(screen), 20_000).catch((e) => {
        throw new Error(`${e.message}; the terminal shows ${JSON.stringify(screen)}`);
      }),
      /** kubectl itself (script's child): its terminal, to resize as a window manager would. */
      kubectlPid: () => childProcesses(s.pid!)[0],
    };
  };
  /** Processes that exec sessions started, in every container berth runs. */
  const execLeft = () => [...ociContainers(berth.runcRoot).keys()].flatMap((id) => {
    try {
      return execProcesses(berth.runcRoot, id);
    } catch {
      return []; // a container going away meanwhile
    }
  });
  const groups = async () => ((await api.req('GET', `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ContainerInstance/containerGroups`)).body?.value ?? []) as any[];
  const pods = async (selector: string) => (await cp.json('get', 'pods', '-l', selector)).items as any[];

  before(async () => {
    const t0 = Date.now();
    cp = await startControlPlane();
    console.error(`# control plane up in ${Date.now() - t0} ms`);
    registry = await startRegistry();
    image = (await buildImage(registry.host, 'k8s-web', '1', { cmd: ['httpd', '-f', '-p', '8080', '-h', '/www'] })).reference;
    berth = await startBerth({ bridge: 'btk8s0', subnet: '10.213.90.0/24' });
    api = new Api(berth, SUB);
    await startConnector();
    await waitFor('node Ready', async () => {
      const n = await cp.json('get', 'node', NODE);
      // The node lifecycle controller lifts the not-ready taint it was born with once it sees Ready.
      return n.status.conditions.some((c: any) => c.type === 'Ready' && c.status === 'True')
        && (n.spec.taints ?? []).every((t: any) => t.key === 'virtual-kubelet.io/provider') && n;
    });
    // Pods are refused until the service-account controller has made the namespace's default account.
    await waitFor('default service account', () => cp.kubectl('get', 'serviceaccount', 'default').then(() => true));
    await waitFor('the root CA configMap', () => cp.kubectl('get', 'configmap', 'kube-root-ca.crt').then(() => true));
  });

  after(async () => {
    try {
      if (cp) await cp.kubectl('delete', 'deployment,job,pod,service', '--all', '--wait=true', '--timeout=60s').catch((e) => console.error(e.message));
      if (cp && connector) await waitFor('no groups left', async () => (await groups()).length === 0, 30_000).catch((e) => console.error(e.message));
    } finally {
      await killConnector('SIGTERM');
      if (connectorLog) console.error(connectorLog.split('\n').slice(-40).join('\n'));
      await berth?.destroy([SUB]);
      await registry?.stop();
      await cp?.stop();
      execFileSync('bash', ['-c', 'ip link del btk8s0 2>/dev/null || true']);
    }
  });

  it('registers a Ready node with the virtual-kubelet labels, taint, capacity and a renewed Lease', async () => {
    const n = await cp.json('get', 'node', NODE);
    assert.equal(n.metadata.labels.type, 'virtual-kubelet');
    assert.equal(n.metadata.labels['kubernetes.io/role'], 'agent');
    assert.equal(n.metadata.labels['kubernetes.io/os'], 'linux');
    assert.deepEqual(n.spec.taints.map((t: any) => `${t.key}=${t.value}:${t.effect}`), ['virtual-kubelet.io/provider=berth:NoSchedule']);
    assert.equal(n.status.capacity.cpu, '1k');
    assert.ok(n.status.addresses.some((a: any) => a.type === 'InternalIP' && a.address === '127.0.0.1'));
    assert.ok(n.status.daemonEndpoints.kubeletEndpoint.Port > 0);
    const lease = await cp.json('get', 'lease', '-n', 'kube-node-lease', NODE);
    assert.equal(lease.spec.holderIdentity, NODE);
  });

  it('runs a 3-replica Deployment as 3 Ready pods, each a running berth group, behind a Service with 3 endpoints', async () => {
    await cp.apply({
      apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web-config' }, data: { GREETING: 'hello-from-configmap', 'index.html': 'page from configmap\n' },
    });
    await cp.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'web-secret' }, stringData: { TOKEN: 's3cret' } });
    const t0 = Date.now();
    await cp.apply({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            tolerations: toleration,
            nodeSelector: { type: 'virtual-kubelet' },
            terminationGracePeriodSeconds: 2,
            containers: [{
              name: 'web', image,
              command: ['sh', '-c'],
              args: ['echo started $(POD_NAME) $GREETING $TOKEN; exec httpd -f -p 8080 -h /config'],
              env: [
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'web-config', key: 'GREETING' } } },
                { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'web-secret', key: 'TOKEN' } } },
              ],
              ports: [{ containerPort: 8080 }],
              resources: { requests: { cpu: '100m', memory: '32Mi' }, limits: { memory: '64Mi' } },
              volumeMounts: [{ name: 'config', mountPath: '/config' }, { name: 'scratch', mountPath: '/scratch' }],
            }],
            volumes: [{ name: 'config', configMap: { name: 'web-config' } }, { name: 'scratch', emptyDir: {} }],
          },
        },
      },
    });
    const ready = await waitFor('3 Ready pods', async () => {
      const ps = await pods('app=web');
      return ps.length === 3 && ps.every(isReady) && ps;
    }, 60_000, 100);
    const elapsed = Date.now() - t0;
    console.error(`# 3 pods Ready ${elapsed} ms after kubectl apply`);
    assert.ok(elapsed < 10_000, `3 pods took ${elapsed} ms to be Ready (want < 10 s)`);
    for (const p of ready) {
      assert.equal(p.spec.nodeName, NODE);
      assert.ok(p.status.podIP?.startsWith('10.213.90.'), `podIP ${p.status.podIP}`);
      assert.equal(p.status.hostIP, '127.0.0.1');
      assert.ok(p.status.startTime);
      const cs = p.status.containerStatuses[0];
      assert.ok(cs.ready && cs.state.running, JSON.stringify(cs));
      for (const t of ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'])
        assert.ok(p.status.conditions.some((c: any) => c.type === t && c.status === 'True'), `${t} in ${JSON.stringify(p.status.conditions)}`);
    }
    const gs = await groups();
    assert.equal(gs.length, 3);
    for (const p of ready) {
      const g = gs.find((x) => x.tags?.['k8s-uid'] === p.metadata.uid);
      assert.ok(g, `a group for ${p.metadata.name}`);
      assert.equal(g.name, `default-${p.metadata.name}`);
      assert.equal((await api.req('GET', g.id)).body.properties.instanceView.state, 'Running');
      assert.equal(g.properties.ipAddress.ip, p.status.podIP);
    }
    // The pod serves the configMap volume's file on its own address.
    const page = await (await fetch(`http://${ready[0].status.podIP}:8080/index.html`)).text();
    assert.equal(page, 'page from configmap\n');

    await cp.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } });
    const addrs = await waitFor('3 endpoints', async () => {
      const slices = (await cp.json('get', 'endpointslices', '-l', 'kubernetes.io/service-name=web')).items as any[];
      const a = slices.flatMap((s) => (s.endpoints ?? []).filter((e: any) => e.conditions?.ready).flatMap((e: any) => e.addresses));
      return a.length === 3 && a;
    }, 30_000);
    assert.deepEqual([...addrs].sort(), ready.map((p) => p.status.podIP).sort());
  });

  it('serves kubectl logs (plain, tail, timestamps, follow) and kubectl exec through the API server', async () => {
    const [p] = await pods('app=web');
    const name = p.metadata.name;
    const logs = await cp.kubectl('logs', name);
    assert.equal(logs, `started ${name} hello-from-configmap s3cret\n`);
    const ts = await cp.kubectl('logs', name, '--timestamps', '--tail=1');
    assert.match(ts, /^\d{4}-\d\d-\d\dT\S+ started /);
    assert.equal(await cp.kubectl('logs', name, '--limit-bytes=7'), 'started');
    assert.equal(await cp.kubectl('logs', name, '--since=1h'), logs);

    // -f: the stream stays open and lines written later arrive on it.
    await cp.apply({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'ticker' },
      spec: { tolerations: toleration, nodeName: NODE, terminationGracePeriodSeconds: 1, containers: [{ name: 't', image, command: ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done'] }] },
    });
    await waitFor('ticker Ready', async () => isReady(await cp.json('get', 'pod', 'ticker')), 30_000);
    const follow = spawn(join(cp.bindir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, 'logs', '-f', 'ticker'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follow.stdout!.on('data', (d) => (out += d));
    // attach: the output from now on, as it is written
    const attach = spawn(join(cp.bindir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, 'attach', 'ticker'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let attached = '';
    attach.stdout!.on('data', (d) => (attached += d));
    attach.stderr!.on('data', (d) => (attached += d));
    try {
      await waitFor('logs -f to show a later line', async () => /tick 0\n/.test(out) && /tick [3-9]\n/.test(out), 20_000);
      assert.equal(follow.exitCode, null, 'kubectl logs -f is still streaming');
      await waitFor('kubectl attach to show two lines', async () => (attached.match(/tick \d+\n/g) ?? []).length >= 2, 20_000)
        .catch((e) => Promise.reject(new Error(`${e.message}: ${attached}`)));
      const seen = (attached.match(/tick (\d+)\n/g) ?? []).map((l) => Number(l.slice(5)));
      assert.deepEqual(seen, seen.map((_, i) => seen[0] + i));
      assert.equal(attach.exitCode, null, 'kubectl attach is still streaming');
    } finally {
      follow.kill('SIGTERM');
      attach.kill('SIGTERM');
      await cp.kubectl('delete', 'pod', 'ticker', '--wait=false');
    }
    await cp.kubectl('exec', name, '--', 'touch', '/scratch/made-by-exec');

    assert.equal(await cp.kubectl('exec', name, '--', 'cat', '/etc/hostname'), `default-${name}\n`);
    assert.equal(await cp.kubectl('exec', name, '--', 'ls', '/scratch'), 'made-by-exec\n');
    const failed = await cp.kubectl('exec', name, '--', 'false').then(() => undefined, (e) => e);
    assert.ok(failed, 'a failing command fails kubectl exec');
    assert.match(String(failed.stderr), /exit code 1/);
    // Arguments with spaces and quotes arrive whole.
    assert.equal(await cp.kubectl('exec', name, '--', 'sh', '-c', `echo "a  b" 'c'`), 'a  b c\n');
    // -i: input reaches the command and its end ends it; without -i there is no input at all.
    assert.deepEqual(await kubectlIn('piped\n', 'exec', '-i', name, '--', 'cat'), { code: 0, stdout: 'piped\n', stderr: '' });
    assert.deepEqual(await kubectlIn('', 'exec', name, '--', 'cat'), { code: 0, stdout: '', stderr: '' });
    // No restart yet: nothing to show for --previous, with the kubelet's words.
    const noPrev = await cp.kubectl('logs', name, '--previous').then(() => undefined, (e) => e);
    assert.match(String(noPrev?.stderr), /previous terminated container "web" in pod ".*" not found/);
  });

  it('kubectl exec -it gives a terminal that follows kubectl\'s own size, and a hang-up kills what it started', async () => {
    const [p] = await pods('app=web');
    const name = p.metadata.name;
    assert.deepEqual(execLeft(), []);
    const t = kubectlTty(33, 101, 'exec', '-it', name, '--', 'sh');
    try {
      t.type('tty; stty size\n');
      await t.waitFor(/\/dev\/pts\/\d+\r?\n33 101\r?\n/);
      // The window changes: kubectl sees SIGWINCH and sends the new size over the resize channel.
      execFileSync('stty', ['-F', readlinkSync(`/proc/${t.kubectlPid()}/fd/0`), 'rows', '44', 'cols', '120']);
      await sleep(300);
      t.type('stty size\n');
      await t.waitFor(/\n44 120\r?\n/);
      t.type('exit 5\n');
      assert.equal(await t.exited, 5, t.screen());
    } finally {
      t.script.kill('SIGKILL');
    }
    await waitFor('no exec process left', async () => execLeft().length === 0, 10_000);

    // kubectl dies mid-session: the API server drops the stream, and berth the session.
    const h = kubectlTty(24, 80, 'exec', '-it', name, '--', 'sh');
    try {
      h.type('sleep 1000\n');
      await waitFor('sh and sleep running', async () => execLeft().length === 2, 20_000);
      process.kill(h.kubectlPid(), 'SIGKILL');
      await h.exited;
      await waitFor('the session killed', async () => execLeft().length === 0, 15_000);
    } finally {
      h.script.kill('SIGKILL');
    }
  });

  it('follows scale to 5 and to 0 with container groups, leaving none behind', async () => {
    await cp.kubectl('scale', 'deployment/web', '--replicas=5');
    await waitFor('5 Ready pods and 5 groups', async () => {
      const ps = await pods('app=web');
      const gs = await groups();
      return ps.length === 5 && ps.every(isReady) && gs.length === 5 && gs.every((g) => g.properties.containers[0].properties.instanceView?.currentState?.state === 'Running');
    }, 60_000);
    await cp.kubectl('scale', 'deployment/web', '--replicas=0');
    await waitFor('no pods and no groups', async () => (await pods('app=web')).length === 0 && (await groups()).length === 0, 60_000);
  });

  it('restarts a failing container per the pod policy, reports restartCount and keeps the previous run\'s log', async () => {
    await cp.apply({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'crasher' },
      spec: {
        tolerations: toleration, nodeName: NODE, restartPolicy: 'Always',
        containers: [{
          name: 'c', image, volumeMounts: [{ name: 'data', mountPath: '/data' }],
          command: ['sh', '-c', 'n=$(($(cat /data/n 2>/dev/null || echo 0) + 1)); echo $n > /data/n; echo run $n; exit 3'],
        }],
        volumes: [{ name: 'data', emptyDir: {} }],
      },
    });
    try {
      const p = await waitFor('restartCount >= 2', async () => {
        const x = await cp.json('get', 'pod', 'crasher');
        return x.status.containerStatuses?.[0]?.restartCount >= 2 && x;
      }, 60_000);
      const cs = p.status.containerStatuses[0];
      // Between restarts the container is either back-off waiting or briefly running again; the last run's exit code is kept.
      assert.equal(cs.lastState.terminated?.exitCode ?? cs.state.terminated?.exitCode, 3, JSON.stringify(cs));
      assert.equal(p.status.phase, 'Running');
      // logs: the current run only; --previous: the one before (read between two restarts).
      const { cur, prev } = await waitFor('the current and the previous run\'s logs', async () => {
        const c1 = await cp.kubectl('logs', 'crasher');
        const pr = await cp.kubectl('logs', 'crasher', '--previous');
        const c2 = await cp.kubectl('logs', 'crasher');
        return c1 === c2 && /^run \d+\n$/.test(c1) && { cur: c1, prev: pr };
      }, 30_000, 100);
      const n = Number(/\d+/.exec(cur)![0]);
      assert.ok(n >= 2, cur);
      assert.equal(prev, `run ${n - 1}\n`);
    } finally {
      await cp.kubectl('delete', 'pod', 'crasher', '--wait=true', '--timeout=30s');
    }
  });

  it("runs a Job whose pod ends Succeeded", async () => {
    await cp.apply({
      apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'once' },
      spec: { backoffLimit: 0, template: { spec: { tolerations: toleration, nodeSelector: { type: 'virtual-kubelet' }, restartPolicy: 'Never', containers: [{ name: 'job', image, command: ['sh', '-c', 'echo job-done'] }] } } },
    });
    const p = await waitFor('job pod Succeeded', async () => {
      const ps = await pods('job-name=once');
      return ps.length === 1 && ps[0].status.phase === 'Succeeded' && ps[0];
    }, 60_000);
    assert.equal(p.status.containerStatuses[0].state.terminated.exitCode, 0);
    assert.equal(await cp.kubectl('logs', p.metadata.name), 'job-done\n');
    await waitFor('job Complete', async () => (await cp.json('get', 'job', 'once')).status.conditions?.some((c: any) => c.type === 'Complete' && c.status === 'True'), 30_000);
    await cp.kubectl('delete', 'job', 'once', '--cascade=foreground', '--wait=true', '--timeout=30s');
    await waitFor('job group gone', async () => (await groups()).length === 0, 30_000);
  });

  it('runs init containers first, gates Ready and Service endpoints on the readiness probe, and restarts on a failed liveness probe', async () => {
    await cp.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'probed' }, spec: { selector: { app: 'probed' }, ports: [{ port: 80, targetPort: 8080 }] } });
    await cp.apply({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'probed', labels: { app: 'probed' } },
      spec: {
        tolerations: toleration, nodeName: NODE, terminationGracePeriodSeconds: 1,
        initContainers: [{ name: 'setup', image, command: ['sh', '-c', 'echo prepared > /data/page; echo setup done'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        containers: [{
          name: 'web', image, command: ['sh', '-c', 'cat /data/page; exec httpd -f -p 8080 -h /data'],
          volumeMounts: [{ name: 'data', mountPath: '/data' }],
          readinessProbe: { httpGet: { path: '/ok', port: 8080 }, periodSeconds: 1, failureThreshold: 1 },
          // Fails once when /data/die appears (and removes it), so the restarted container is healthy again.
          livenessProbe: { exec: { command: ['sh', '-c', 'if [ -e /data/die ]; then rm /data/die; exit 1; fi'] }, periodSeconds: 1, failureThreshold: 1 },
        }],
        volumes: [{ name: 'data', emptyDir: {} }],
      },
    });
    const readyEndpoints = async () => {
      const slices = (await cp.json('get', 'endpointslices', '-l', 'kubernetes.io/service-name=probed')).items as any[];
      return slices.flatMap((x) => (x.endpoints ?? []).filter((e: any) => e.conditions?.ready)).length;
    };
    const condition = (p: any, type: string) => p.status.conditions?.find((c: any) => c.type === type)?.status;
    try {
      const running = await waitFor('the pod running, not ready', async () => {
        const x = await cp.json('get', 'pod', 'probed');
        return x.status.containerStatuses?.[0]?.state?.running && x;
      }, 30_000);
      assert.equal(condition(running, 'Initialized'), 'True');
      assert.equal(running.status.initContainerStatuses[0].state.terminated.reason, 'Completed');
      assert.equal(await cp.kubectl('logs', 'probed', '-c', 'setup'), 'setup done\n');
      assert.equal(await cp.kubectl('logs', 'probed', '-c', 'web'), 'prepared\n');
      await sleep(2000);
      let p = await cp.json('get', 'pod', 'probed');
      assert.equal(condition(p, 'Ready'), 'False', 'not ready while /ok answers 404');
      assert.equal(p.status.containerStatuses[0].ready, false);
      assert.equal(await readyEndpoints(), 0);

      await cp.kubectl('exec', 'probed', '--', 'touch', '/data/ok');
      await waitFor('Ready and one ready endpoint', async () => condition(await cp.json('get', 'pod', 'probed'), 'Ready') === 'True' && (await readyEndpoints()) === 1, 30_000);

      await cp.kubectl('exec', 'probed', '--', 'touch', '/data/die');
      p = await waitFor('a restart by the liveness probe', async () => {
        const x = await cp.json('get', 'pod', 'probed');
        return x.status.containerStatuses[0].restartCount === 1 && x.status.containerStatuses[0].ready && x;
      }, 30_000);
      // Init containers do not run again for a container restart.
      assert.equal(p.status.initContainerStatuses[0].restartCount, 0);
      assert.match(await cp.kubectl('logs', 'probed', '-c', 'web'), /prepared\n$/);
    } finally {
      await cp.kubectl('delete', 'pod,service', 'probed', '--wait=true', '--timeout=30s');
    }
  });

  it('refuses what berth cannot run with a pod event that says why', async () => {
    await cp.apply({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'hostpath' },
      spec: { tolerations: toleration, nodeName: NODE, containers: [{ name: 'c', image }], volumes: [{ name: 'h', hostPath: { path: '/etc' } }] },
    });
    const ev = await waitFor('a refusal event', async () => {
      const evs = (await cp.json('get', 'events', '--field-selector', 'involvedObject.name=hostpath')).items as any[];
      return evs.find((e) => e.reason === 'ProviderCreateFailed');
    }, 30_000);
    assert.match(ev.message, /hostPath volumes are not supported/);
    assert.equal((await cp.json('get', 'pod', 'hostpath')).status.phase, 'Failed');
    await cp.kubectl('delete', 'pod', 'hostpath', '--wait=true', '--timeout=30s');
  });

  it('leaves running pods untouched when the connector is killed and restarted', async () => {
    await cp.kubectl('scale', 'deployment/web', '--replicas=2');
    const before = await waitFor('2 Ready pods', async () => {
      const ps = await pods('app=web');
      return ps.length === 2 && ps.every(isReady) && ps;
    }, 60_000);
    const groupsBefore = await groups();
    await killConnector('SIGKILL');
    await startConnector();
    await sleep(3000); // a few status polls and a sweep
    const afterPods = await pods('app=web');
    assert.deepEqual(afterPods.map((p) => p.metadata.uid).sort(), before.map((p) => p.metadata.uid).sort());
    assert.ok(afterPods.every(isReady));
    for (const p of afterPods) {
      const b = before.find((x) => x.metadata.uid === p.metadata.uid);
      assert.equal(p.status.containerStatuses[0].restartCount, b.status.containerStatuses[0].restartCount);
      assert.equal(p.status.containerStatuses[0].state.running.startedAt, b.status.containerStatuses[0].state.running.startedAt);
    }
    const groupsAfter = await groups();
    assert.deepEqual(
      groupsAfter.map((g) => [g.name, g.properties.containers[0].properties.instanceView.currentState.startTime]).sort(),
      groupsBefore.map((g) => [g.name, g.properties.containers[0].properties.instanceView.currentState.startTime]).sort(),
    );
    await cp.kubectl('scale', 'deployment/web', '--replicas=0');
    await waitFor('no groups', async () => (await groups()).length === 0, 60_000);
  });
});
