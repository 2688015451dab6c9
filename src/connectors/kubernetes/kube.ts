// A thin JSON client for the Kubernetes API on top of @kubernetes/client-node's kubeconfig handling and watch.
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { KubeConfig, Watch } from '@kubernetes/client-node';

export class KubeError extends Error {
  constructor(readonly status: number, readonly reason: string, message: string) {
    super(message);
  }
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/**
 * Raw JSON requests rather than the generated typed API: the generated models drop fields they do not
 * know (node `status.declaredFeatures`, which tells the API server to forward WebSockets to us), and
 * patches with an explicit content type stay readable.
 */
export class Kube {
  readonly kc: KubeConfig;
  readonly server: string;

  constructor(kubeconfigPath?: string) {
    this.kc = new KubeConfig();
    if (kubeconfigPath) this.kc.loadFromFile(kubeconfigPath);
    else this.kc.loadFromDefault();
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig names no current cluster');
    this.server = cluster.server.replace(/\/$/, '');
  }

  /** The cluster's CA (PEM), to check the API server's client certificate when it calls our kubelet API. */
  async clusterCA(): Promise<Buffer | undefined> {
    const opts: { ca?: Buffer | string } = {};
    await this.kc.applyToHTTPSOptions(opts as never);
    return opts.ca === undefined ? undefined : Buffer.from(opts.ca);
  }

  async req<T = any>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const u = new URL(this.server + path);
    const opts: Record<string, any> = { method, headers: { accept: 'application/json' } };
    await this.kc.applyToHTTPSOptions(opts as never);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      opts.headers['content-type'] = contentType;
      opts.headers['content-length'] = payload.length;
    }
    const send = u.protocol === 'https:' ? request : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const r = send(u, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: any;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          if ((res.statusCode ?? 500) >= 400)
            reject(new KubeError(res.statusCode ?? 500, json?.reason ?? '', `${method} ${path}: ${res.statusCode} ${json?.message ?? text.slice(0, 300)}`));
          else resolve(json as T);
        });
        res.on('error', reject);
      });
      r.on('error', reject);
      r.setTimeout(30_000, () => r.destroy(new Error(`${method} ${path}: timed out`)));
      r.end(payload);
    });
  }

  get<T = any>(path: string) {
    return this.req<T>('GET', path);
  }

  /** GET that answers undefined for 404. */
  async find<T = any>(path: string): Promise<T | undefined> {
    try {
      return await this.get<T>(path);
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return undefined;
      throw e;
    }
  }

  mergePatch<T = any>(path: string, body: unknown) {
    return this.req<T>('PATCH', path, body, 'application/merge-patch+json');
  }

  /**
   * Lists, then watches from the list's resourceVersion; relists whenever the watch ends (expired
   * resourceVersion, API server restart). `onList` gets every list so callers can forget what vanished.
   */
  listWatch<T extends { metadata?: { resourceVersion?: string } }>(
    path: string,
    query: Record<string, string>,
    onList: (items: T[]) => void | Promise<void>,
    onEvent: (e: WatchEvent<T>) => void | Promise<void>,
    onError: (e: Error) => void,
  ): { stop(): void } {
    let stopped = false;
    let abort: AbortController | undefined;
    const watch = new Watch(this.kc);
    const loop = async () => {
      while (!stopped) {
        try {
          const qs = new URLSearchParams(query).toString();
          const list = await this.get<{ items: T[]; metadata: { resourceVersion: string } }>(`${path}?${qs}`);
          await onList(list.items);
          let rv = list.metadata.resourceVersion;
          await new Promise<void>((resolve) => {
            let queue = Promise.resolve();
            watch
              .watch(path, { ...query, resourceVersion: rv, allowWatchBookmarks: true }, (type, obj) => {
                if (type === 'ERROR') return; // 410 Gone and friends: the watch ends and we relist
                if (obj?.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
                if (type === 'BOOKMARK') return;
                queue = queue.then(() => onEvent({ type: type as WatchEvent<T>['type'], object: obj })).catch(onError);
              }, (err) => {
                if (err && !stopped) onError(err instanceof Error ? err : new Error(String(err)));
                queue.then(resolve, resolve);
              })
              .then((a) => {
                abort = a;
                if (stopped) a.abort();
              })
              .catch((e) => {
                onError(e);
                resolve();
              });
          });
        } catch (e) {
          if (!stopped) onError(e as Error);
        }
        if (!stopped) await new Promise((r) => setTimeout(r, 1000));
      }
    };
    void loop();
    return {
      stop() {
        stopped = true;
        abort?.abort();
      },
    };
  }
}
