// kube-scheduler placing the same workload as bench/placement.ts: equivalent pods on equivalent fake nodes, on a
// real kube-apiserver + etcd of this machine (the ones the Kubernetes tests build), side by side with berth.
//
// Method: nodes (16 cores, 64 GiB, 1000 pods, a zone label, Ready) and pending pods are created while no
// scheduler runs; then kube-scheduler starts (client QPS raised to 5000, as kube's own scheduler_perf does, so
// its API rate limit does not cap it) and the rate is pods bound between the first and the last binding,
// seen through a watch: the scheduling work without its start-up. berth is timed the same way (bench/placement.ts:
// decisions only, its cache already built).
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { get } from 'node:https';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kube } from '../src/connectors/kubernetes/kube.js';
import { startControlPlane } from '../test/helpers/kube.js';
import type { GroupDemand, HostInfo } from '../src/instances/placement/types.js';
import { workload } from './placement.js';

const node = (h: HostInfo) => ({
  apiVersion: 'v1', kind: 'Node',
  metadata: { name: h.name, labels: { 'kubernetes.io/hostname': h.name, 'topology.kubernetes.io/zone': h.zone! } },
  status: {
    capacity: { cpu: String(h.allocatable.cpu), memory: `${h.allocatable.memoryGB}Gi`, pods: '1000' },
    allocatable: { cpu: String(h.allocatable.cpu), memory: `${h.allocatable.memoryGB}Gi`, pods: '1000' },
    conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'fake', lastHeartbeatTime: new Date().toISOString(), lastTransitionTime: new Date().toISOString() }],
  },
});

/** The pod a group stands for: its requests; a zone as a node selector; its service's anti-affinity by hostname. */
const pod = (g: GroupDemand) => {
  const anti = g.rules?.antiAffinity?.[0];
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: g.name, labels: g.tags },
    spec: {
      automountServiceAccountToken: false,
      containers: [{ name: 'c', image: 'pause', resources: { requests: { cpu: `${Math.round(g.cpu * 1000)}m`, memory: `${Math.round(g.memoryGB * 1024)}Mi` } } }],
      ...(g.zones.length > 0 && { nodeSelector: { 'topology.kubernetes.io/zone': g.zones[0] } }),
      ...(anti && {
        affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: anti.selector.tags }, topologyKey: 'kubernetes.io/hostname' }] } },
      }),
    },
  };
};

/** GET over HTTPS from the scheduler, whose serving certificate is its own self-signed one. */
function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { rejectUnauthorized: false }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d)).on('end', () => resolve(text)).on('error', reject);
    }).on('error', reject);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function inBatches<T>(items: T[], width: number, fn: (t: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

export async function kubeSchedulerRate(o: { hosts: number; pods: number; zones: number; seed: number }) {
  const cp = await startControlPlane({ apiServerOnly: true });
  let scheduler: ReturnType<typeof spawn> | undefined;
  try {
    const kube = new Kube(cp.kubeconfig);
    const w = workload({ hosts: o.hosts, groups: o.pods, zones: o.zones, seed: o.seed });
    await inBatches(w.hosts, 32, (h) => kube.req('POST', '/api/v1/nodes', node(h)));
    // the status of a created node may be dropped: make sure it is there as the scheduler will read it
    const probe = await kube.get(`/api/v1/nodes/${w.hosts[0].name}`);
    if (!probe.status?.allocatable?.cpu) await inBatches(w.hosts, 32, (h) => kube.mergePatch(`/api/v1/nodes/${h.name}/status`, { status: node(h).status }));
    // the API server taints a new node not-ready until its kubelet says otherwise; these have no kubelet
    await inBatches(w.hosts, 32, (h) => kube.mergePatch(`/api/v1/nodes/${h.name}`, { spec: { taints: null } }));
    // no controller-manager makes the namespace's service account: the admission of pods wants one
    await kube.req('POST', '/api/v1/namespaces/default/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
    await inBatches(w.groups, 32, (g) => kube.req('POST', '/api/v1/namespaces/default/pods', pod(g)));

    const bound = new Set<string>();
    let first = 0;
    let last = 0;
    const done = new Promise<void>((resolve, reject) => {
      const watch = kube.listWatch<{ metadata: { name: string; resourceVersion?: string }; spec: { nodeName?: string } }>(
        '/api/v1/namespaces/default/pods', {},
        () => undefined,
        (e) => {
          if (e.object.spec?.nodeName && !bound.has(e.object.metadata.name)) {
            bound.add(e.object.metadata.name);
            last = performance.now();
            first ||= last;
            if (bound.size === w.groups.length) {
              watch.stop();
              resolve();
            }
          }
        },
        reject,
      );
    });
    const config = join(cp.dir, 'scheduler-bench.yaml');
    writeFileSync(config, [
      'apiVersion: kubescheduler.config.k8s.io/v1', 'kind: KubeSchedulerConfiguration',
      'clientConnection:', `  kubeconfig: ${join(cp.dir, 'scheduler.kubeconfig')}`, '  qps: 5000', '  burst: 5000',
      'leaderElection:', '  leaderElect: false', '',
    ].join('\n'));
    const t0 = performance.now();
    const metricsPort = await freePort();
    scheduler = spawn(join(cp.bindir, 'kube-scheduler'), ['--config', config, '--bind-address', '127.0.0.1', '--secure-port', String(metricsPort),
      '--authorization-always-allow-paths', '/healthz,/metrics', '--v', '0'], { stdio: 'ignore' });
    const timeout = setTimeout(() => scheduler?.kill('SIGKILL'), 30 * 60_000);
    await Promise.race([done, new Promise((_, reject) => scheduler!.once('exit', (c) => reject(new Error(`kube-scheduler exited (${c}) with ${bound.size} of ${w.groups.length} pods bound`))))]);
    clearTimeout(timeout);
    const ms = last - first;
    // its own account of the time spent deciding (filter and score, without binding): the algorithm alone
    const metrics = await getText(`https://127.0.0.1:${metricsPort}/metrics`);
    const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    const algoSeconds = metric('scheduler_scheduling_algorithm_duration_seconds_sum');
    const algoCount = metric('scheduler_scheduling_algorithm_duration_seconds_count');
    return {
      pods: w.groups.length, hosts: w.hosts.length, bindingSeconds: ms / 1000, startToFirstBindMs: Math.round(first - t0),
      podsPerSecond: Math.round((bound.size / ms) * 1000), algorithmDecisionsPerSecond: Math.round(algoCount / algoSeconds),
    };
  } finally {
    if (scheduler && scheduler.exitCode === null) {
      const exited = new Promise((r) => scheduler!.once('exit', r));
      process.kill(scheduler.pid!, 'SIGKILL');
      await exited;
    }
    await cp.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  console.log(JSON.stringify(await kubeSchedulerRate({ hosts: arg('hosts', 5000), pods: arg('pods', 10_000), zones: arg('zones', 5), seed: arg('seed', 1) })));
}
