// The virtual node: registers with the API server, keeps its Lease and status fresh, and runs its pods through the pod reconciler.
import type { ContainerInstanceClient } from '../../client/index.js';
import { KubeError, type Kube } from './kube.js';
import { PodReconciler, type PodReconcilerOptions, type TrackedPod } from './pod-reconciler.js';

export interface NodeOptions extends PodReconcilerOptions {
  kubeletPort: number;
  cpu: string;
  memory: string;
  pods: string;
  sweepIntervalMs: number;
  leaseSeconds: number;
}

const nowIso = () => new Date().toISOString();

export class VirtualNode {
  readonly reconciler: PodReconciler;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private readonly started = nowIso();

  constructor(readonly kube: Kube, readonly berth: ContainerInstanceClient, readonly o: NodeOptions) {
    this.reconciler = new PodReconciler(kube, berth, o);
  }

  /** The pods on this node, for the kubelet API. */
  get pods(): ReadonlyMap<string, TrackedPod> {
    return this.reconciler.pods;
  }

  async start() {
    await this.register();
    await this.renewLease();
    this.every(this.o.leaseSeconds * 1000, () => this.renewLease());
    this.every(60_000, () => this.patchNodeStatus());
    await this.reconciler.start();
    this.every(this.o.sweepIntervalMs, () => this.reconciler.sweep());
  }

  async stop() {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.reconciler.stop();
  }

  /** For the kubelet API: which group holds a pod. */
  groupOf(ns: string, name: string): string | undefined {
    return this.reconciler.groupOf(ns, name);
  }

  private every(ms: number, fn: () => Promise<void>) {
    let busy = false;
    const t = setInterval(() => {
      if (busy || this.stopped) return;
      busy = true;
      fn().catch((e) => this.o.log(`${fn.name || 'task'}: ${(e as Error).message}`)).finally(() => (busy = false));
    }, ms);
    this.timers.push(t);
  }

  private nodeStatus() {
    const capacity = { cpu: this.o.cpu, memory: this.o.memory, pods: this.o.pods, 'ephemeral-storage': '1Ti' };
    const t = nowIso().replace(/\.\d+Z$/, 'Z');
    return {
      capacity,
      allocatable: capacity,
      conditions: [
        { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'berth virtual node is ready', lastHeartbeatTime: t, lastTransitionTime: this.started.replace(/\.\d+Z$/, 'Z') },
        ...['MemoryPressure', 'DiskPressure', 'PIDPressure', 'NetworkUnavailable'].map((type) => ({
          type, status: 'False', reason: `No${type}`, message: '', lastHeartbeatTime: t, lastTransitionTime: this.started.replace(/\.\d+Z$/, 'Z'),
        })),
      ],
      addresses: [{ type: 'InternalIP', address: this.o.nodeIP }, { type: 'Hostname', address: this.o.nodeName }],
      daemonEndpoints: { kubeletEndpoint: { Port: this.o.kubeletPort } },
      nodeInfo: {
        machineID: '', systemUUID: '', bootID: '', kernelVersion: '', osImage: 'berth', containerRuntimeVersion: 'berth://1',
        kubeletVersion: 'v1.36.0-berth', kubeProxyVersion: '', operatingSystem: 'linux', architecture: 'amd64',
      },
      // Tells the API server to forward exec/attach WebSockets (v5.channel.k8s.io) to us instead of translating them to SPDY.
      declaredFeatures: ['ExtendWebSocketsToKubelet'],
    };
  }

  private async register() {
    const labels = {
      type: 'virtual-kubelet',
      'kubernetes.io/role': 'agent',
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
      'kubernetes.io/hostname': this.o.nodeName,
      'node.kubernetes.io/exclude-from-external-load-balancers': 'true',
    };
    const taints = [{ key: 'virtual-kubelet.io/provider', value: 'berth', effect: 'NoSchedule' }];
    const existing = await this.kube.find(`/api/v1/nodes/${this.o.nodeName}`);
    if (!existing) {
      await this.kube.req('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: this.o.nodeName, labels }, spec: { taints } });
      this.o.log(`registered node ${this.o.nodeName}`);
    } else {
      const others = (existing.spec?.taints ?? []).filter((t: any) => t.key !== 'virtual-kubelet.io/provider');
      await this.kube.mergePatch(`/api/v1/nodes/${this.o.nodeName}`, { metadata: { labels }, spec: { taints: [...others, ...taints] } });
    }
    await this.patchNodeStatus();
  }

  private async patchNodeStatus() {
    await this.kube.mergePatch(`/api/v1/nodes/${this.o.nodeName}/status`, { status: this.nodeStatus() });
  }

  private async renewLease() {
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${this.o.nodeName}`;
    const spec = { holderIdentity: this.o.nodeName, leaseDurationSeconds: 40, renewTime: nowIso().replace('Z', '000Z').replace(/(\.\d{6})\d*Z$/, '$1Z') };
    const node = await this.kube.get(`/api/v1/nodes/${this.o.nodeName}`);
    const owner = [{ apiVersion: 'v1', kind: 'Node', name: this.o.nodeName, uid: node.metadata.uid }];
    try {
      await this.kube.mergePatch(path, { spec });
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 404)) throw e;
      await this.kube.req('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
        apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.o.nodeName, ownerReferences: owner }, spec,
      });
    }
  }
}
