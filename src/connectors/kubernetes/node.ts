// The virtual node: registers with the API server, keeps its Lease and status fresh, and keeps one berth group per pod.
import { BerthApiError, type BerthClient, type GroupResource } from './berth.js';
import { Kube, KubeError } from './kube.js';
import { groupForPod, groupNameFor, MissingReference, podStatusFromGroup, refusedStatus, specHash, TAG, Unmappable, type Resolver } from './pods.js';

export interface NodeOptions {
  nodeName: string;
  nodeIP: string;
  kubeletPort: number;
  cpu: string;
  memory: string;
  pods: string;
  location: string;
  defaultCpu: number;
  defaultMemoryGB: number;
  /** How often berth's groups are read for pod status (berth has no watch API). */
  statusIntervalMs: number;
  sweepIntervalMs: number;
  leaseSeconds: number;
  log: (msg: string) => void;
}

const nowIso = () => new Date().toISOString();
const podKey = (ns: string, name: string) => `${ns}/${name}`;
const podPath = (ns: string, name: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}`;

interface Tracked {
  pod: any;
  group: string;
  /** Last status written, to write only changes. */
  status?: string;
  refused?: string;
  waitingFor?: string;
  deleting?: boolean;
  creating?: Promise<void>;
}

export class VirtualNode {
  readonly pods = new Map<string, Tracked>();
  private timers: NodeJS.Timeout[] = [];
  private watch?: { stop(): void };
  private stopped = false;
  private readonly started = nowIso();
  private groups = new Map<string, GroupResource>();
  private polling = false;
  /** A change arrived while a poll ran: poll once more when it ends. */
  private pollAgain = false;
  private berthWatch = new AbortController();

  constructor(readonly kube: Kube, readonly berth: BerthClient, readonly o: NodeOptions) {}

  async start() {
    await this.register();
    await this.renewLease();
    this.every(this.o.leaseSeconds * 1000, () => this.renewLease());
    this.every(60_000, () => this.patchNodeStatus());
    await this.pollGroups();
    this.watch = this.kube.listWatch<any>('/api/v1/pods', { fieldSelector: `spec.nodeName=${this.o.nodeName}` },
      (items) => this.onList(items),
      (e) => (e.type === 'DELETED' ? this.onPodGone(e.object) : this.onPod(e.object)),
      (err) => this.o.log(`pod watch: ${err.message}`));
    // berth's change stream makes status follow changes at once; the periodic read is the backstop.
    void this.berth.watchGroups(
      () => void this.pollGroups().catch((e) => this.o.log(`status: ${(e as Error).message}`)),
      (e) => this.o.log(`berth watch: ${e.message}`),
      this.berthWatch.signal,
    );
    this.every(this.o.statusIntervalMs, () => this.pollGroups());
    this.every(this.o.sweepIntervalMs, () => this.sweep());
  }

  stop() {
    this.stopped = true;
    this.watch?.stop();
    this.berthWatch.abort();
    for (const t of this.timers) clearInterval(t);
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

  // --- node and lease ---

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

  // --- pods ---

  private resolver(): Resolver {
    return {
      configMap: (ns, name) => this.kube.find(`/api/v1/namespaces/${ns}/configmaps/${name}`),
      secret: (ns, name) => this.kube.find(`/api/v1/namespaces/${ns}/secrets/${name}`),
      serviceAccountToken: async (ns, sa, pod, audience, exp) => {
        const r = await this.kube.req('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
          apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
          spec: { ...(audience && { audiences: [audience] }), expirationSeconds: exp, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid } },
        });
        return r.status.token as string;
      },
    };
  }

  private async onList(items: any[]) {
    const seen = new Set(items.map((p) => podKey(p.metadata.namespace, p.metadata.name)));
    for (const [k, t] of this.pods) if (!seen.has(k)) await this.onPodGone(t.pod);
    for (const p of items) await this.onPod(p);
  }

  private async onPod(pod: any) {
    const key = podKey(pod.metadata.namespace, pod.metadata.name);
    let t = this.pods.get(key);
    if (t && t.pod.metadata.uid !== pod.metadata.uid) {
      // Same name, new pod (StatefulSet style): the old one's group must go first.
      await this.onPodGone(t.pod);
      t = undefined;
    }
    const fresh = !t;
    if (!t) {
      t = { pod, group: this.groupFor(pod) };
      this.pods.set(key, t);
    } else t.pod = pod;
    if (pod.metadata.deletionTimestamp) return void this.terminate(t);
    if (t.refused) return;
    if (fresh || this.needsUpdate(t)) {
      const tt = t;
      t.creating = (t.creating ?? Promise.resolve()).then(() => this.ensureGroup(tt)).catch((e) => this.o.log(`${key}: ${(e as Error).message}`));
      await t.creating;
    }
  }

  private groupFor(pod: any): string {
    // An adopted group keeps the name it was made with, whatever the naming rule says today.
    for (const g of this.groups.values())
      if (g.tags?.[TAG.uid] === pod.metadata.uid) return g.name;
    return groupNameFor(pod.metadata.namespace, pod.metadata.name);
  }

  private needsUpdate(t: Tracked) {
    const g = this.groups.get(t.group);
    return !g || (g.tags?.[TAG.specHash] !== specHash(t.pod) && !t.pod.status?.phase?.match(/Succeeded|Failed/));
  }

  private async ensureGroup(t: Tracked) {
    const pod = t.pod;
    const key = podKey(pod.metadata.namespace, pod.metadata.name);
    if (pod.metadata.deletionTimestamp || t.deleting) return;
    const existing = this.groups.get(t.group) ?? (await this.berth.getGroup(t.group));
    if (existing && existing.tags?.[TAG.uid] === pod.metadata.uid && existing.tags?.[TAG.specHash] === specHash(pod)) {
      this.groups.set(t.group, existing);
      return; // adopted as it is: a restart of the connector must not recreate running groups
    }
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return;
    let mapped;
    try {
      mapped = await groupForPod(pod, this.resolver(), {
        nodeName: this.o.nodeName, nodeIP: this.o.nodeIP, location: this.o.location, defaultCpu: this.o.defaultCpu, defaultMemoryGB: this.o.defaultMemoryGB,
      });
    } catch (e) {
      if (e instanceof MissingReference) return this.retryLater(t, e.message);
      if (e instanceof Unmappable) return this.refuse(t, e.message);
      throw e;
    }
    try {
      const g = await this.berth.putGroup(t.group, mapped.body);
      this.groups.set(t.group, g);
      this.o.log(`${key}: ${existing ? 'updated' : 'created'} group ${t.group}`);
    } catch (e) {
      if (e instanceof BerthApiError && e.status >= 400 && e.status < 500) return this.refuse(t, `berth refused the container group: ${e.message}`);
      throw e;
    }
    await this.writeStatus(t);
  }

  private async retryLater(t: Tracked, message: string) {
    if (t.waitingFor !== message) await this.event(t.pod, 'Warning', 'FailedMount', `${message}; waiting for it`);
    t.waitingFor = message;
    setTimeout(() => {
      const cur = this.pods.get(podKey(t.pod.metadata.namespace, t.pod.metadata.name));
      if (this.stopped || cur !== t || t.deleting) return;
      t.creating = (t.creating ?? Promise.resolve()).then(() => this.ensureGroup(t)).catch((e) => this.o.log(`${t.group}: ${(e as Error).message}`));
    }, 2000).unref();
  }

  private async refuse(t: Tracked, message: string) {
    t.refused = message;
    this.o.log(`${podKey(t.pod.metadata.namespace, t.pod.metadata.name)}: refused: ${message}`);
    await this.event(t.pod, 'Warning', 'ProviderCreateFailed', message);
    await this.patchPodStatus(t, refusedStatus(t.pod, this.o.nodeIP, message));
  }

  async event(pod: any, type: string, reason: string, message: string) {
    const ns = pod.metadata.namespace;
    const now = nowIso();
    await this.kube.req('POST', `/api/v1/namespaces/${ns}/events`, {
      apiVersion: 'v1', kind: 'Event',
      metadata: { generateName: `${pod.metadata.name}.`, namespace: ns },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, namespace: ns, uid: pod.metadata.uid },
      reason, message, type, count: 1, firstTimestamp: now, lastTimestamp: now,
      source: { component: 'berth-virtual-node', host: this.o.nodeName },
      reportingComponent: 'berth-virtual-node', reportingInstance: this.o.nodeName,
    }).catch((e) => this.o.log(`event: ${(e as Error).message}`));
  }

  /** Honours the pod's grace period: berth stops the group (SIGTERM, then SIGKILL), then the pod object is released. */
  private async terminate(t: Tracked) {
    if (t.deleting) return;
    t.deleting = true;
    const pod = t.pod;
    const key = podKey(pod.metadata.namespace, pod.metadata.name);
    const graceMs = (pod.metadata.deletionGracePeriodSeconds ?? 30) * 1000;
    await t.creating;
    try {
      await this.berth.deleteGroup(t.group, graceMs + 10_000);
      this.groups.delete(t.group);
    } catch (e) {
      this.o.log(`${key}: deleting group ${t.group}: ${(e as Error).message}`);
    }
    try {
      await this.kube.req('DELETE', podPath(pod.metadata.namespace, pod.metadata.name), {
        apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid },
      });
    } catch (e) {
      if (!(e instanceof KubeError && (e.status === 404 || e.status === 409))) this.o.log(`${key}: releasing pod: ${(e as Error).message}`);
    }
    this.pods.delete(key);
  }

  private async onPodGone(pod: any) {
    const key = podKey(pod.metadata.namespace, pod.metadata.name);
    const t = this.pods.get(key);
    if (!t || t.pod.metadata.uid !== pod.metadata.uid) return;
    this.pods.delete(key);
    if (t.deleting) return;
    await t.creating;
    await this.berth.deleteGroup(t.group, 60_000).catch((e) => this.o.log(`${key}: deleting group: ${(e as Error).message}`));
    this.groups.delete(t.group);
  }

  // --- status ---

  /** One list call for all groups, then a status write for each pod whose status changed. */
  async pollGroups() {
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    try {
      do {
        this.pollAgain = false;
        const all = await this.berth.listGroups();
        this.groups = new Map(all.filter((g) => g.tags?.[TAG.node] === this.o.nodeName).map((g) => [g.name, g]));
        await Promise.all([...this.pods.values()].filter((t) => !t.refused && !t.deleting && this.groups.has(t.group)).map((t) => this.writeStatus(t)));
      } while (this.pollAgain && !this.stopped);
    } finally {
      this.polling = false;
    }
  }

  private async writeStatus(t: Tracked) {
    const g = this.groups.get(t.group);
    if (!g || g.tags?.[TAG.uid] !== t.pod.metadata.uid) return;
    const status = podStatusFromGroup(t.pod, g, { nodeIP: this.o.nodeIP }, t.pod.status);
    await this.patchPodStatus(t, status);
  }

  private async patchPodStatus(t: Tracked, status: any) {
    const s = JSON.stringify(status);
    if (s === t.status) return;
    const { conditions: _c, startTime: _s, ...cmp } = status;
    const { conditions: _pc, startTime: _ps, qosClass: _q, ...prevCmp } = t.pod.status ?? {};
    // Compare against what the API server has too, so a restarted connector writes nothing when nothing changed.
    if (t.status === undefined && JSON.stringify(cmp) === JSON.stringify(prevCmp) && sameConditions(status.conditions, t.pod.status?.conditions)) {
      t.status = s;
      return;
    }
    try {
      const updated = await this.kube.mergePatch(`${podPath(t.pod.metadata.namespace, t.pod.metadata.name)}/status`, {
        metadata: { uid: t.pod.metadata.uid },
        status,
      });
      t.status = s;
      if (updated?.metadata?.resourceVersion) t.pod = updated;
    } catch (e) {
      if (!(e instanceof KubeError && (e.status === 404 || e.status === 409))) throw e;
    }
  }

  /** Deletes groups of this node whose pod no longer exists: nothing keeps running after a scale-down. */
  async sweep() {
    const all = await this.berth.listGroups();
    const uids = new Set([...this.pods.values()].map((t) => t.pod.metadata.uid));
    for (const g of all) {
      if (g.tags?.[TAG.node] !== this.o.nodeName) continue;
      if (uids.has(g.tags?.[TAG.uid] ?? '')) continue;
      const ns = g.tags?.[TAG.namespace];
      const name = g.tags?.[TAG.pod];
      // The watch may lag: ask the API server before deleting anything.
      const pod = ns && name ? await this.kube.find(podPath(ns, name)) : undefined;
      if (pod && pod.metadata.uid === g.tags?.[TAG.uid]) continue;
      this.o.log(`sweep: deleting group ${g.name} (pod ${ns}/${name} is gone)`);
      await this.berth.deleteGroup(g.name, 60_000).catch((e) => this.o.log(`sweep ${g.name}: ${(e as Error).message}`));
    }
  }

  /** For the kubelet API: which group holds a pod. */
  groupOf(ns: string, name: string): string | undefined {
    return this.pods.get(podKey(ns, name))?.group;
  }
}

function sameConditions(a: any[] | undefined, b: any[] | undefined) {
  const norm = (l: any[] | undefined) => JSON.stringify((l ?? []).map((c) => [c.type, c.status]).sort());
  return norm(a) === norm(b);
}
