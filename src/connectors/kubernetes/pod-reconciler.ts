// The pods of the virtual node, reconciled on a work queue: one berth group per pod, the pod's status from the group's instance view.
//
// Two caches feed one reconcile per pod (key `namespace/name`): the API server's pods (a list-watch)
// and berth's groups (the client's informer). Either side's change queues the pod's key; the
// reconcile compares the pod with its group and acts (create or update the group, write the pod's
// status, stop the group and release a deleted pod), answering `done` or when to look again.
import { isArmError, type ContainerGroupResource, type ContainerGroupInformer, type ContainerInstanceClient } from '../../client/index.js';
import { againAfter, done, WorkQueue, type ReconcileResult } from '../../lib/workqueue.js';
import { KubeError, type Kube } from './kube.js';
import { podStatusFromGroup, refusedStatus } from './pod-status.js';
import { groupForPod, groupNameFor, MissingReference, specHash, TAG, Unmappable, type Resolver } from './pods.js';

export interface PodReconcilerOptions {
  nodeName: string;
  nodeIP: string;
  location: string;
  /** The berth resource group the pods' groups live in. */
  resourceGroup: string;
  defaultCpu: number;
  defaultMemoryGB: number;
  /** How often berth's groups are listed in full and every pod reconciled (changes arrive at once through berth's watch). */
  statusIntervalMs: number;
  /** Pods reconciled at once. Default 8. */
  workers?: number;
  log: (msg: string) => void;
}

const nowIso = () => new Date().toISOString();
const podKey = (ns: string, name: string) => `${ns}/${name}`;
const podPath = (ns: string, name: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}`;
/** How often a group being deleted is looked at, besides the informer telling when it is gone. */
const DELETE_CHECK_MS = 2000;
/** A delete berth has not finished after this long is asked for again. */
const DELETE_REPEAT_MS = 30_000;

export interface TrackedPod {
  /** The pod as the API server last showed it; undefined once it is gone from there. */
  pod?: any;
  uid: string;
  group: string;
  /** Last status written, to write only changes. */
  status?: string;
  refused?: string;
  waitingFor?: string;
  /** The spec hash this connector last PUT for the pod: the informer may not show that group yet. */
  wrote?: string;
  /** When this connector last asked berth to delete the pod's group. */
  deleteAskedAt?: number;
  /** When the pod's deletion was first seen (its grace period counts from then). */
  terminatingSince?: number;
}

export class PodReconciler {
  readonly pods = new Map<string, TrackedPod>();
  readonly informer: ContainerGroupInformer;
  private readonly queue: WorkQueue;
  private watch?: { stop(): void };

  constructor(readonly kube: Kube, readonly berth: ContainerInstanceClient, readonly o: PodReconcilerOptions) {
    this.queue = new WorkQueue((key) => this.reconcile(key), {
      concurrency: o.workers ?? 8,
      onError: (key, e, ms) => this.o.log(`${key}: ${(e as Error).message} (again in ${ms} ms)`),
    });
    const queueOwner = (g: ContainerGroupResource) => {
      if (g.tags?.[TAG.node] !== this.o.nodeName) return;
      const ns = g.tags?.[TAG.namespace];
      const name = g.tags?.[TAG.pod];
      if (ns && name && this.pods.has(podKey(ns, name))) this.queue.add(podKey(ns, name));
    };
    this.informer = berth.informer({
      resourceGroup: o.resourceGroup,
      resyncMs: o.statusIntervalMs,
      pageSize: 1000,
      onAdd: queueOwner,
      onUpdate: (_old, g) => queueOwner(g),
      onDelete: (g) => {
        for (const t of this.pods.values()) if (t.group === g.name) t.wrote = undefined;
        queueOwner(g);
      },
      // a full list: every pod is looked at again (the backstop for anything a watch missed)
      onSync: () => {
        for (const key of this.pods.keys()) this.queue.add(key);
      },
      onError: (e) => this.o.log(`berth watch: ${e.message}`),
    });
  }

  async start() {
    // Groups first: a pod is matched with the group it already has (a restarted connector adopts them).
    this.informer.start();
    await this.informer.synced();
    this.watch = this.kube.listWatch<any>('/api/v1/pods', { fieldSelector: `spec.nodeName=${this.o.nodeName}` },
      (items) => this.onList(items),
      (e) => (e.type === 'DELETED' ? this.onPodGone(e.object.metadata.namespace, e.object.metadata.name, e.object.metadata.uid) : this.onPod(e.object)),
      (err) => this.o.log(`pod watch: ${err.message}`));
  }

  async stop() {
    this.watch?.stop();
    await this.informer.stop();
    await this.queue.shutdown();
  }

  // --- what changes queue a pod ---

  private onList(items: any[]) {
    const seen = new Set(items.map((p) => podKey(p.metadata.namespace, p.metadata.name)));
    for (const [key, t] of this.pods) if (!seen.has(key) && t.pod) this.onPodGone(t.pod.metadata.namespace, t.pod.metadata.name, t.uid);
    for (const p of items) this.onPod(p);
  }

  private onPod(pod: any) {
    const key = podKey(pod.metadata.namespace, pod.metadata.name);
    const t = this.pods.get(key);
    // Same name, new pod (StatefulSet style): tracked afresh; the reconcile removes the old one's group first.
    if (t && t.uid === pod.metadata.uid) t.pod = pod;
    else this.pods.set(key, { pod, uid: pod.metadata.uid, group: this.groupFor(pod) });
    this.queue.add(key);
  }

  private onPodGone(ns: string, name: string, uid: string) {
    const key = podKey(ns, name);
    const t = this.pods.get(key);
    if (!t || t.uid !== uid) return;
    t.pod = undefined;
    this.queue.add(key);
  }

  private groupFor(pod: any): string {
    // An adopted group keeps the name it was made with, whatever the naming rule says today.
    for (const g of this.informer.list())
      if (g.tags?.[TAG.uid] === pod.metadata.uid) return g.name;
    return groupNameFor(pod.metadata.namespace, pod.metadata.name);
  }

  // --- the reconcile ---

  private async reconcile(key: string): Promise<ReconcileResult> {
    const t = this.pods.get(key);
    if (!t) return done;
    const found = this.informer.get(this.o.resourceGroup, t.group);
    const ours = found && found.tags?.[TAG.uid] === t.uid ? found : undefined;
    if (!t.pod) {
      // Gone from the API server without us (a forced delete): nothing may keep running for it.
      if (ours) return this.deleteGroup(t);
      if (this.pods.get(key) === t) this.pods.delete(key);
      return done;
    }
    if (t.pod.metadata.deletionTimestamp) return this.terminate(t, ours);
    if (t.refused) return done;
    // The group of an earlier pod of the same name goes before this pod's is made.
    if (found && !ours) return this.deleteGroup(t);
    if (this.needsPut(t, ours)) return this.putGroup(t, Boolean(ours));
    await this.writeStatus(t, ours);
    return done;
  }

  private needsPut(t: TrackedPod, g: ContainerGroupResource | undefined) {
    // A pod that has ended is never started again, whatever became of its group.
    if (t.pod.status?.phase === 'Succeeded' || t.pod.status?.phase === 'Failed') return false;
    const want = specHash(t.pod);
    // An adopted group as it is: a restart of the connector must not recreate running groups.
    if (g?.tags?.[TAG.specHash] === want) return false;
    return t.wrote !== want;
  }

  private async putGroup(t: TrackedPod, exists: boolean): Promise<ReconcileResult> {
    const pod = t.pod;
    const key = podKey(pod.metadata.namespace, pod.metadata.name);
    let mapped;
    try {
      mapped = await groupForPod(pod, this.resolver(), {
        nodeName: this.o.nodeName, nodeIP: this.o.nodeIP, location: this.o.location, defaultCpu: this.o.defaultCpu, defaultMemoryGB: this.o.defaultMemoryGB,
      });
    } catch (e) {
      // As the kubelet does: wait for a configMap or secret that is not there yet, rather than fail the pod.
      if (e instanceof MissingReference) {
        if (t.waitingFor !== e.message) await this.event(pod, 'Warning', 'FailedMount', `${e.message}; waiting for it`);
        t.waitingFor = e.message;
        return againAfter(2000);
      }
      if (e instanceof Unmappable) return this.refuse(t, e.message);
      throw e;
    }
    let op;
    try {
      // Without waiting for the operation: the pod's status follows the group's instance view.
      op = await this.berth.containerGroups.beginCreateOrUpdate(this.o.resourceGroup, t.group, mapped.body);
    } catch (e) {
      if (isArmError(e) && e.status >= 400 && e.status < 500) return this.refuse(t, `berth refused the container group: (${e.code}) ${e.message}`);
      throw e;
    }
    t.wrote = specHash(pod);
    t.waitingFor = undefined;
    t.deleteAskedAt = undefined;
    this.o.log(`${key}: ${exists ? 'updated' : 'created'} group ${t.group}`);
    await this.writeStatus(t, op.initial);
    return done;
  }

  /** Honours the pod's grace period: berth stops the group (SIGTERM, then SIGKILL), then the pod object is released. */
  private async terminate(t: TrackedPod, g: ContainerGroupResource | undefined): Promise<ReconcileResult> {
    const pod = t.pod;
    const key = podKey(pod.metadata.namespace, pod.metadata.name);
    t.terminatingSince ??= Date.now();
    const deadline = t.terminatingSince + (pod.metadata.deletionGracePeriodSeconds ?? 30) * 1000 + 10_000;
    // A group this connector made may not be in the informer yet: asked to go once all the same.
    const there = g !== undefined || (t.wrote !== undefined && t.deleteAskedAt === undefined);
    if (there && Date.now() < deadline) {
      await this.deleteGroup(t);
      return againAfter(Math.min(DELETE_CHECK_MS, deadline - Date.now()));
    }
    if (g) this.o.log(`${key}: group ${t.group} is still there after the pod's grace period; releasing the pod`);
    try {
      await this.kube.req('DELETE', podPath(pod.metadata.namespace, pod.metadata.name), {
        apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid },
      });
    } catch (e) {
      if (!(e instanceof KubeError && (e.status === 404 || e.status === 409))) throw e;
    }
    return done;
  }

  /** Asks berth to delete the pod's group (again when an earlier ask seems lost); the informer tells when it is gone. */
  private async deleteGroup(t: TrackedPod): Promise<ReconcileResult> {
    if (t.deleteAskedAt === undefined || Date.now() - t.deleteAskedAt > DELETE_REPEAT_MS) {
      await this.berth.containerGroups.beginDelete(this.o.resourceGroup, t.group);
      t.deleteAskedAt = Date.now();
    }
    return againAfter(DELETE_CHECK_MS);
  }

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

  private async refuse(t: TrackedPod, message: string): Promise<ReconcileResult> {
    t.refused = message;
    this.o.log(`${podKey(t.pod.metadata.namespace, t.pod.metadata.name)}: refused: ${message}`);
    await this.event(t.pod, 'Warning', 'ProviderCreateFailed', message);
    await this.patchPodStatus(t, refusedStatus(t.pod, this.o.nodeIP, message));
    return done;
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

  // --- status ---

  private async writeStatus(t: TrackedPod, g: ContainerGroupResource | undefined) {
    if (!g || g.tags?.[TAG.uid] !== t.uid) return;
    await this.patchPodStatus(t, podStatusFromGroup(t.pod, g, { nodeIP: this.o.nodeIP }, t.pod.status));
  }

  private async patchPodStatus(t: TrackedPod, status: any) {
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
    const uids = new Set([...this.pods.values()].map((t) => t.uid));
    for (const g of this.informer.list()) {
      if (g.tags?.[TAG.node] !== this.o.nodeName) continue;
      if (uids.has(g.tags?.[TAG.uid] ?? '')) continue;
      const ns = g.tags?.[TAG.namespace];
      const name = g.tags?.[TAG.pod];
      // The watch may lag: ask the API server before deleting anything.
      const pod = ns && name ? await this.kube.find(podPath(ns, name)) : undefined;
      if (pod && pod.metadata.uid === g.tags?.[TAG.uid]) continue;
      this.o.log(`sweep: deleting group ${g.name} (pod ${ns}/${name} is gone)`);
      await this.berth.containerGroups.beginDelete(this.o.resourceGroup, g.name).catch((e) => this.o.log(`sweep ${g.name}: ${(e as Error).message}`));
    }
  }

  /** For the kubelet API: which group holds a pod. */
  groupOf(ns: string, name: string): string | undefined {
    const t = this.pods.get(podKey(ns, name));
    return t?.pod ? t.group : undefined;
  }
}

function sameConditions(a: any[] | undefined, b: any[] | undefined) {
  const norm = (l: any[] | undefined) => JSON.stringify((l ?? []).map((c) => [c.type, c.status]).sort());
  return norm(a) === norm(b);
}
