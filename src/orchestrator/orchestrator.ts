// The orchestrator: NGroups and their members followed through the instances API (informers), each NGroup
// reconciled on the work queue. A client of the API like any other; it runs in the server or on its own.
import type { ContainerGroupInformer, ContainerGroupResource, ContainerInstanceClient, Informer, NGroupResource } from '../client/index.js';
import { WorkQueue } from '../lib/workqueue.js';
import { NGroupReconciler, idParts } from './reconciler.js';

export interface OrchestratorOptions {
  /** A client of the API, at an api-version that shows members' profiles and NGroups (2024-09-01-preview or later). */
  client: ContainerInstanceClient;
  /** NGroups reconciled at once. Default 4. */
  concurrency?: number;
  /** Lists read again this often even while the change streams are healthy. Default 5 min. */
  resyncMs?: number;
  log?: (message: string) => void;
}

export class Orchestrator {
  private readonly ngroups: Informer<NGroupResource>;
  /** The container groups of each subscription that has NGroups, by subscription id in lower case. */
  private readonly groups = new Map<string, { informer: ContainerGroupInformer; synced: boolean }>();
  private readonly clients = new Map<string, ContainerInstanceClient>();
  private readonly queue: WorkQueue;
  private readonly reconciler: NGroupReconciler;
  private readonly log: (message: string) => void;

  constructor(private readonly o: OrchestratorOptions) {
    this.log = o.log ?? (() => undefined);
    this.reconciler = new NGroupReconciler({
      ngroup: (key) => this.ngroups.getByKey(key),
      groups: (sub) => {
        const g = this.groupsOf(sub);
        return g.synced ? g.informer.list() : undefined;
      },
      client: (sub) => this.clientOf(sub),
      now: () => Date.now(),
    });
    this.queue = new WorkQueue((key) => this.reconciler.reconcile(key), {
      concurrency: o.concurrency ?? 4,
      maxBackoffMs: 30_000,
      onError: (key, e, retryInMs) => this.log(`reconcile of ${key} failed (again in ${retryInMs} ms): ${(e as Error).message}`),
    });
    const touched = (n: NGroupResource) => {
      this.groupsOf(idParts(n.id).subscriptionId);
      this.queue.add(n.id.toLowerCase());
    };
    this.ngroups = o.client.ngroupInformer({
      resyncMs: o.resyncMs,
      onAdd: touched,
      onUpdate: (_old, n) => touched(n),
      onDelete: (n) => this.queue.add(n.id.toLowerCase()),
      onError: (e) => this.log(`NGroup watch: ${e.message}`),
    });
  }

  /** Lists the NGroups (and then their subscriptions' groups) and starts reconciling. */
  async start(): Promise<this> {
    this.ngroups.start();
    await this.ngroups.synced();
    return this;
  }

  async stop() {
    await this.ngroups.stop();
    await this.queue.shutdown();
    await Promise.all([...this.groups.values()].map((g) => g.informer.stop()));
    for (const c of this.clients.values()) c.close();
  }

  /** Resolves once no NGroup waits for or is in a reconcile (tests, benchmarks). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private clientOf(sub: string): ContainerInstanceClient {
    let c = this.clients.get(sub.toLowerCase());
    if (!c) this.clients.set(sub.toLowerCase(), (c = this.o.client.forSubscription(sub)));
    return c;
  }

  /** A subscription's groups, followed from the first NGroup of it on; a change of a member queues its NGroup. */
  private groupsOf(sub: string) {
    const key = sub.toLowerCase();
    let g = this.groups.get(key);
    if (g) return g;
    const owner = (x: ContainerGroupResource) => x.properties.orchestratorId?.toLowerCase();
    const touched = (...xs: ContainerGroupResource[]) => {
      for (const x of xs) {
        const ng = owner(x);
        if (ng) this.queue.add(ng);
      }
    };
    const entry = {
      synced: false,
      informer: this.clientOf(sub).informer({
        resyncMs: this.o.resyncMs,
        onAdd: (x) => touched(x),
        onUpdate: (old, x) => touched(old, x),
        onDelete: (x) => touched(x),
        onSync: () => {
          if (entry.synced) return;
          entry.synced = true;
          // the subscription's NGroups waited for this first list
          for (const n of this.ngroups.list()) if (idParts(n.id).subscriptionId.toLowerCase() === key) this.queue.add(n.id.toLowerCase());
        },
        onError: (e) => this.log(`container group watch of ${sub}: ${e.message}`),
      }),
    };
    this.groups.set(key, entry);
    entry.informer.start();
    return entry;
  }
}
