// Benchmark: pod creation -> Ready on the berth virtual node over N pods (image cached), against a real control plane.
// Run: flock /tmp/berth-tests.lock node dist/test/k8s/pod-startup.bench.js [N]
import { execFileSync, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBerth } from '../helpers/berth.js';
import { buildImage } from '../helpers/images.js';
import { startRegistry } from '../helpers/registry.js';
import { startControlPlane } from '../helpers/kube.js';
import { Kube } from '../../src/connectors/kubernetes/kube.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const N = Number(process.argv[2] ?? 50);
const NODE = 'berth-bench';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];

const cp = await startControlPlane();
const registry = await startRegistry();
const berth = await startBerth({ bridge: 'btk8sb0', subnet: '10.213.91.0/24' });
let log = '';
const connector = spawn(process.execPath, [
  join(repo, 'dist/src/cli/main.js'), 'kubernetes-node', '--kubeconfig', cp.kubeconfig, '--node-name', NODE, '--node-ip', '127.0.0.1',
  '--kubelet-listen', '127.0.0.1', '--kubelet-port', '0', '--berth-endpoint', berth.url, '--berth-token', berth.token, '--subscription', 'k8s-bench',
], { stdio: ['ignore', 'pipe', 'pipe'] });
connector.stderr!.on('data', (d) => (log += d));
try {
  const image = (await buildImage(registry.host, 'k8s-bench', '1', { cmd: ['httpd', '-f', '-p', '8080', '-h', '/www'] })).reference;
  while (!/is Ready/.test(log)) await sleep(100);
  const kube = new Kube(cp.kubeconfig);
  while (!(await kube.find('/api/v1/namespaces/default/serviceaccounts/default'))) await sleep(200);
  const podBody = (name: string) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: {
      nodeName: NODE, automountServiceAccountToken: false, terminationGracePeriodSeconds: 0,
      tolerations: [{ key: 'virtual-kubelet.io/provider', operator: 'Exists' }],
      containers: [{ name: 'web', image, ports: [{ containerPort: 8080 }] }],
    },
  });
  const runOne = async (name: string) => {
    const t0 = performance.now();
    await kube.req('POST', '/api/v1/namespaces/default/pods', podBody(name));
    for (;;) {
      const p = await kube.get(`/api/v1/namespaces/default/pods/${name}`);
      if (p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True')) return performance.now() - t0;
      await sleep(10);
    }
  };
  await runOne('warmup'); // pulls the image once: the figures are for a cached image
  const times: number[] = [];
  for (let i = 0; i < N; i++) times.push(await runOne(`p${i}`));
  const r = (x: number) => Math.round(x);
  console.log(JSON.stringify({ pods: N, medianMs: r(pct(times, 50)), p90Ms: r(pct(times, 90)), p99Ms: r(pct(times, 99)), maxMs: r(Math.max(...times)) }));
  for (const name of ['warmup', ...times.map((_, i) => `p${i}`)])
    await kube.req('DELETE', `/api/v1/namespaces/default/pods/${name}`).catch(() => undefined);
  const api = (await import('../helpers/berth.js')).Api;
  const a = new api(berth, 'k8s-bench');
  for (;;) {
    const gs = (await a.req('GET', `/subscriptions/k8s-bench/resourceGroups/k8s-${NODE}/providers/Microsoft.ContainerInstance/containerGroups`)).body?.value ?? [];
    if (gs.length === 0) break;
    await sleep(500);
  }
} finally {
  const exited = new Promise((r) => connector.once('exit', r));
  process.kill(connector.pid!, 'SIGTERM');
  await exited;
  await berth.destroy(['k8s-bench']);
  await registry.stop();
  await cp.stop();
  execFileSync('bash', ['-c', 'ip link del btk8sb0 2>/dev/null || true']);
}
