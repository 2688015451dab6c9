// Translation of a Kubernetes pod into a berth container group: pod spec (with what it refers to) -> ARM body, or why it cannot be one.
import { createHash } from 'node:crypto';

/** A pod feature berth cannot provide: the pod gets a Warning event with this message and is not started. */
export class Unmappable extends Error {}

/** A configMap, secret or key the pod needs does not exist yet: as the kubelet does, wait for it rather than fail the pod. */
export class MissingReference extends Unmappable {}

/** Reads what a pod refers to; the connector answers from the API server. */
export interface Resolver {
  configMap(ns: string, name: string): Promise<{ data?: Record<string, string>; binaryData?: Record<string, string> } | undefined>;
  secret(ns: string, name: string): Promise<{ type?: string; data?: Record<string, string> } | undefined>;
  /** A service-account token bound to the pod (TokenRequest), for projected serviceAccountToken volumes. */
  serviceAccountToken(ns: string, sa: string, pod: { name: string; uid: string }, audience: string | undefined, expirationSeconds: number): Promise<string>;
}

export interface MapOptions {
  nodeName: string;
  nodeIP: string;
  location: string;
  /** Requests used when a container gives none (berth needs both). */
  defaultCpu: number;
  defaultMemoryGB: number;
}

export const TAG = {
  namespace: 'k8s-namespace',
  pod: 'k8s-pod',
  uid: 'k8s-uid',
  node: 'k8s-node',
  specHash: 'k8s-spec-hash',
} as const;

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * `<namespace>-<pod>` when that is a valid berth group name (a DNS label of at most 63 characters
 * without `--`); otherwise a cleaned, shortened form with a hash, so distinct pods never collide. The
 * real namespace and name are kept in the group's tags.
 */
export function groupNameFor(ns: string, pod: string): string {
  const plain = `${ns}-${pod}`;
  if (plain.length <= 63 && dnsLabel.test(plain) && !plain.includes('--')) return plain;
  const hash = createHash('sha256').update(`${ns}/${pod}`).digest('hex').slice(0, 10);
  let clean = plain.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/-+/g, '-').replace(/^-+/, '');
  clean = clean.slice(0, 63 - hash.length - 1).replace(/-+$/, '');
  return clean ? `${clean}-${hash}` : `p-${hash}`;
}

/** Kubernetes quantities ("250m", "1", "64Mi", "1G") as numbers (cores, bytes). */
export function parseQuantity(q: string | number | undefined): number | undefined {
  if (q === undefined || q === null || q === '') return undefined;
  if (typeof q === 'number') return q;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|n|u)?$/.exec(q.trim());
  if (!m) throw new Unmappable(`the quantity '${q}' cannot be parsed`);
  const mult: Record<string, number> = {
    '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  };
  return Number(m[1]) * mult[m[2] ?? ''];
}

const GB = 1e9;
const round3 = (n: number) => Math.ceil(n * 1000) / 1000;

/** Kubernetes' $(VAR) expansion in command, args and env values; $$ escapes a dollar. */
export function expand(s: string, env: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, name: string | undefined) => {
    if (all === '$$') return '$';
    return env.has(name!) ? env.get(name!)! : all;
  });
}

function fieldRef(pod: any, path: string, o: MapOptions): string {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return pod.metadata?.[m[1]]?.[m[2]] ?? '';
  switch (path) {
    case 'metadata.name': return pod.metadata.name;
    case 'metadata.namespace': return pod.metadata.namespace;
    case 'metadata.uid': return pod.metadata.uid;
    case 'spec.nodeName': return o.nodeName;
    case 'spec.serviceAccountName': return pod.spec.serviceAccountName ?? '';
    case 'status.hostIP': case 'status.hostIPs': return o.nodeIP;
    // The group's address is known only once berth has made it; Kubernetes' kubelet knows it earlier.
    case 'status.podIP': case 'status.podIPs':
      throw new Unmappable(`the env fieldRef '${path}' is not known before berth starts the group`);
    default:
      throw new Unmappable(`the env fieldRef '${path}' is not supported`);
  }
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

function checkFileName(vol: string, path: string) {
  if (!/^[A-Za-z0-9._-]+$/.test(path) || path === '.' || path === '..')
    throw new Unmappable(`volume '${vol}': the file path '${path}' has a directory part or unusual characters; berth volumes hold flat files only`);
}

/** Keys (or `items`) of a configMap/secret as berth secret-volume files (base64 content). */
function projectKeys(vol: string, data: Record<string, string>, items: { key: string; path: string }[] | undefined, isBase64: boolean, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  const pick = items && items.length > 0 ? items : Object.keys(data).map((k) => ({ key: k, path: k }));
  for (const it of pick) {
    if (!(it.key in data)) throw new Unmappable(`volume '${vol}': key '${it.key}' is not in ${what}`);
    checkFileName(vol, it.path);
    out[it.path] = isBase64 ? data[it.key] : b64(data[it.key]);
  }
  return out;
}

async function configMapFiles(r: Resolver, ns: string, vol: string, src: any): Promise<Record<string, string>> {
  const cm = await r.configMap(ns, src.name);
  if (!cm) {
    if (src.optional) return {};
    throw new MissingReference(`volume '${vol}': configMap '${src.name}' not found`);
  }
  return {
    ...projectKeys(vol, cm.data ?? {}, src.items?.filter((i: any) => cm.data && i.key in cm.data), false, `configMap '${src.name}'`),
    ...projectKeys(vol, cm.binaryData ?? {}, src.items?.filter((i: any) => cm.binaryData && i.key in cm.binaryData), true, `configMap '${src.name}'`),
  };
}

async function secretFiles(r: Resolver, ns: string, vol: string, name: string, items: any, optional: boolean): Promise<Record<string, string>> {
  const s = await r.secret(ns, name);
  if (!s) {
    if (optional) return {};
    throw new MissingReference(`volume '${vol}': secret '${name}' not found`);
  }
  return projectKeys(vol, s.data ?? {}, items, true, `secret '${name}'`);
}

/** Docker config JSON (`kubernetes.io/dockerconfigjson` or legacy `.dockercfg`) as ARM registry credentials. */
export function registryCredentials(secret: { type?: string; data?: Record<string, string> }): { server: string; username: string; password: string }[] {
  const raw = secret.data?.['.dockerconfigjson'] ?? secret.data?.['.dockercfg'];
  if (!raw) return [];
  const doc = JSON.parse(Buffer.from(raw, 'base64').toString());
  const auths: Record<string, { username?: string; password?: string; auth?: string }> = doc.auths ?? doc;
  return Object.entries(auths).map(([server, a]) => {
    let { username, password } = a;
    if ((!username || password === undefined) && a.auth) {
      const dec = Buffer.from(a.auth, 'base64').toString();
      const i = dec.indexOf(':');
      username = dec.slice(0, i);
      password = dec.slice(i + 1);
    }
    return { server: server.replace(/^https?:\/\//, '').replace(/\/.*$/, ''), username: username ?? '', password: password ?? '' };
  });
}

/** ACI probe shape from a Kubernetes probe; tcpSocket and gRPC probes have no ACI form. */
function probe(p: any, where: string): unknown {
  if (!p) return undefined;
  const common = {
    ...(p.initialDelaySeconds !== undefined && { initialDelaySeconds: p.initialDelaySeconds }),
    ...(p.periodSeconds !== undefined && { periodSeconds: p.periodSeconds }),
    ...(p.failureThreshold !== undefined && { failureThreshold: p.failureThreshold }),
    ...(p.successThreshold !== undefined && { successThreshold: p.successThreshold }),
    ...(p.timeoutSeconds !== undefined && { timeoutSeconds: p.timeoutSeconds }),
  };
  if (p.exec) return { exec: { command: p.exec.command ?? [] }, ...common };
  if (p.httpGet) {
    if (typeof p.httpGet.port !== 'number') throw new Unmappable(`${where}: named httpGet ports are not supported`);
    if (p.httpGet.host) throw new Unmappable(`${where}: httpGet probes with a host are not supported (berth probes the pod's own address)`);
    const httpHeaders = (p.httpGet.httpHeaders ?? []).map((h: any) => ({ name: h.name, value: h.value ?? '' }));
    return {
      httpGet: {
        path: p.httpGet.path ?? '/', port: p.httpGet.port, scheme: (p.httpGet.scheme ?? 'HTTP').toLowerCase() === 'https' ? 'https' : 'http',
        ...(httpHeaders.length > 0 && { httpHeaders }),
      },
      ...common,
    };
  }
  throw new Unmappable(`${where}: only exec and httpGet probes can be mapped to berth (no tcpSocket or grpc)`);
}

/** Refuses container fields that would silently change meaning if dropped. */
function checkContainer(c: any, where: string) {
  if (c.startupProbe) throw new Unmappable(`${where}: startupProbe is not supported by berth`);
  if (c.lifecycle) throw new Unmappable(`${where}: lifecycle hooks are not supported by berth`);
  if (c.workingDir) throw new Unmappable(`${where}: workingDir is not supported by berth`);
  if (c.stdin || c.tty) throw new Unmappable(`${where}: stdin/tty containers are not supported by berth (containers run without a terminal or stdin; attach is output-only)`);
  const sc = c.securityContext;
  if (sc && Object.values(sc).some((v) => v !== undefined && v !== null && v !== false))
    throw new Unmappable(`${where}: securityContext is not supported by berth`);
  if (c.restartPolicy) throw new Unmappable(`${where}: per-container restartPolicy (sidecars) is not supported by berth`);
  for (const m of c.volumeMounts ?? []) {
    if (m.subPath || m.subPathExpr) throw new Unmappable(`${where}: volumeMount '${m.name}' uses subPath, which berth does not support`);
  }
  for (const p of c.ports ?? []) {
    if (p.protocol === 'SCTP') throw new Unmappable(`${where}: SCTP ports are not supported by berth`);
    if (p.hostPort) throw new Unmappable(`${where}: hostPort is not supported on the berth virtual node`);
  }
}

async function resolveEnv(pod: any, c: any, r: Resolver, o: MapOptions, where: string) {
  const ns = pod.metadata.namespace;
  const vars = new Map<string, { value: string; secure: boolean }>();
  for (const ef of c.envFrom ?? []) {
    const prefix = ef.prefix ?? '';
    if (ef.configMapRef) {
      const cm = await r.configMap(ns, ef.configMapRef.name);
      if (!cm && !ef.configMapRef.optional) throw new MissingReference(`${where}: envFrom configMap '${ef.configMapRef.name}' not found`);
      for (const [k, v] of Object.entries(cm?.data ?? {})) vars.set(prefix + k, { value: v, secure: false });
    } else if (ef.secretRef) {
      const s = await r.secret(ns, ef.secretRef.name);
      if (!s && !ef.secretRef.optional) throw new MissingReference(`${where}: envFrom secret '${ef.secretRef.name}' not found`);
      for (const [k, v] of Object.entries(s?.data ?? {})) vars.set(prefix + k, { value: Buffer.from(v, 'base64').toString(), secure: true });
    }
  }
  const plain = () => new Map([...vars].map(([k, v]) => [k, v.value]));
  for (const e of c.env ?? []) {
    const vf = e.valueFrom;
    if (!vf) {
      vars.set(e.name, { value: expand(e.value ?? '', plain()), secure: false });
    } else if (vf.configMapKeyRef || vf.secretKeyRef) {
      // Secrets' values are base64 and become secure values; configMaps' are plain text.
      const secret = !vf.configMapKeyRef;
      const ref = vf.configMapKeyRef ?? vf.secretKeyRef;
      const src = secret ? await r.secret(ns, ref.name) : await r.configMap(ns, ref.name);
      const v = src?.data?.[ref.key];
      if (v === undefined) {
        if (ref.optional) continue;
        throw new MissingReference(`${where}: env '${e.name}': key '${ref.key}' of ${secret ? 'secret' : 'configMap'} '${ref.name}' not found`);
      }
      vars.set(e.name, { value: secret ? Buffer.from(v, 'base64').toString() : v, secure: secret });
    } else if (vf.fieldRef) {
      vars.set(e.name, { value: fieldRef(pod, vf.fieldRef.fieldPath, o), secure: false });
    } else if (vf.resourceFieldRef) {
      const res = vf.resourceFieldRef.resource as string;
      const [kind, what] = res.split('.');
      const q = parseQuantity(c.resources?.[kind]?.[what]) ?? (what === 'cpu' ? o.defaultCpu : o.defaultMemoryGB * GB);
      const div = parseQuantity(vf.resourceFieldRef.divisor ?? '1') || 1;
      vars.set(e.name, { value: String(Math.ceil(q / div)), secure: false });
    } else {
      throw new Unmappable(`${where}: env '${e.name}' uses an unsupported valueFrom`);
    }
  }
  return vars;
}

async function mapContainer(pod: any, c: any, r: Resolver, o: MapOptions, where: string, mountable: Set<string>) {
  checkContainer(c, where);
  const vars = await resolveEnv(pod, c, r, o, where);
  const env = new Map([...vars].map(([k, v]) => [k, v.value]));
  // ACI's `command` replaces the image's ENTRYPOINT and CMD alike; Kubernetes' command + args amount to the same argv.
  const command = [...(c.command ?? []), ...(c.args ?? [])].map((a: string) => expand(a, env));
  const req = c.resources?.requests ?? {};
  const lim = c.resources?.limits ?? {};
  const cpu = parseQuantity(req.cpu) ?? parseQuantity(lim.cpu) ?? o.defaultCpu;
  const memBytes = parseQuantity(req.memory) ?? parseQuantity(lim.memory) ?? o.defaultMemoryGB * GB;
  const lcpu = parseQuantity(lim.cpu);
  const lmem = parseQuantity(lim.memory);
  for (const k of Object.keys({ ...req, ...lim }))
    if (k !== 'cpu' && k !== 'memory' && k !== 'ephemeral-storage') throw new Unmappable(`${where}: the resource '${k}' is not supported by berth`);
  for (const m of c.volumeMounts ?? [])
    if (!mountable.has(m.name)) throw new Unmappable(`${where}: volumeMount '${m.name}' refers to no mappable volume`);
  return {
    name: c.name,
    properties: {
      image: c.image,
      ...(command.length > 0 && { command }),
      ports: (c.ports ?? []).map((p: any) => ({ port: p.containerPort, protocol: p.protocol ?? 'TCP' })),
      environmentVariables: [...vars].map(([name, v]) => (v.secure ? { name, secureValue: v.value } : { name, value: v.value })),
      resources: {
        requests: { cpu: round3(Math.max(cpu, 0.001)), memoryInGB: round3(Math.max(memBytes / GB, 0.001)) },
        ...((lcpu !== undefined || lmem !== undefined) && {
          limits: { ...(lcpu !== undefined && { cpu: round3(lcpu) }), ...(lmem !== undefined && { memoryInGB: round3(lmem / GB) }) },
        }),
      },
      ...((c.volumeMounts ?? []).length > 0 && {
        volumeMounts: c.volumeMounts.map((m: any) => ({ name: m.name, mountPath: m.mountPath, readOnly: !!m.readOnly })),
      }),
      ...(c.livenessProbe && { livenessProbe: probe(c.livenessProbe, `${where}: livenessProbe`) }),
      ...(c.readinessProbe && { readinessProbe: probe(c.readinessProbe, `${where}: readinessProbe`) }),
    },
  };
}

/** Hash of what the group is made from, so a changed pod spec (e.g. a new image) is noticed after a restart. */
export const specHash = (pod: any) => createHash('sha256').update(JSON.stringify(pod.spec)).digest('hex').slice(0, 16);

/** A placeholder port when a pod declares none: berth reports a group's address only when it has an ipAddress with a port. */
export const ADDRESS_PLACEHOLDER_PORT = 65535;

/** The ARM PUT body for a pod, or throws Unmappable with the reason. */
export async function groupForPod(pod: any, r: Resolver, o: MapOptions): Promise<{ name: string; body: any }> {
  const ns = pod.metadata.namespace;
  const spec = pod.spec;
  if (spec.hostNetwork) throw new Unmappable('hostNetwork pods are not supported on the berth virtual node');
  if (spec.hostPID || spec.hostIPC) throw new Unmappable('hostPID/hostIPC pods are not supported on the berth virtual node');
  if ((spec.ephemeralContainers ?? []).length > 0) throw new Unmappable('ephemeral containers are not supported by berth');
  if (spec.os?.name && spec.os.name !== 'linux') throw new Unmappable(`os '${spec.os.name}' is not supported by berth`);

  const volumes: any[] = [];
  const mountable = new Set<string>();
  for (const v of spec.volumes ?? []) {
    const where = `volume '${v.name}'`;
    if (v.emptyDir) {
      if (v.emptyDir.medium === 'HugePages') throw new Unmappable(`${where}: HugePages emptyDir is not supported`);
      volumes.push({ name: v.name, emptyDir: {} });
    } else if (v.secret) {
      volumes.push({ name: v.name, secret: await secretFiles(r, ns, v.name, v.secret.secretName, v.secret.items, !!v.secret.optional) });
    } else if (v.configMap) {
      // ACI has no configMap volume: its content travels as a secret volume, as the ACI virtual-kubelet provider does.
      volumes.push({ name: v.name, secret: await configMapFiles(r, ns, v.name, v.configMap) });
    } else if (v.projected) {
      const files: Record<string, string> = {};
      for (const s of v.projected.sources ?? []) {
        if (s.serviceAccountToken) {
          checkFileName(v.name, s.serviceAccountToken.path);
          const tok = await r.serviceAccountToken(ns, spec.serviceAccountName ?? 'default', { name: pod.metadata.name, uid: pod.metadata.uid }, s.serviceAccountToken.audience, s.serviceAccountToken.expirationSeconds ?? 3607);
          files[s.serviceAccountToken.path] = b64(tok);
        } else if (s.configMap) Object.assign(files, await configMapFiles(r, ns, v.name, s.configMap));
        else if (s.secret) Object.assign(files, await secretFiles(r, ns, v.name, s.secret.name, s.secret.items, !!s.secret.optional));
        else if (s.downwardAPI) {
          for (const it of s.downwardAPI.items ?? []) {
            checkFileName(v.name, it.path);
            if (!it.fieldRef) throw new Unmappable(`${where}: downwardAPI resourceFieldRef is not supported`);
            files[it.path] = b64(fieldRef(pod, it.fieldRef.fieldPath, o));
          }
        } else throw new Unmappable(`${where}: projected source ${Object.keys(s).join(',')} is not supported`);
      }
      volumes.push({ name: v.name, secret: files });
    } else {
      const kind = Object.keys(v).find((k) => k !== 'name') ?? 'unknown';
      throw new Unmappable(`${where}: ${kind} volumes are not supported by berth (emptyDir, secret, configMap and projected are)`);
    }
    mountable.add(v.name);
  }

  const containers = [];
  for (const c of spec.containers) containers.push(await mapContainer(pod, c, r, o, `container '${c.name}'`, mountable));
  const initContainers = [];
  for (const c of spec.initContainers ?? []) {
    if (c.livenessProbe || c.readinessProbe) throw new Unmappable(`init container '${c.name}': probes are not allowed on init containers`);
    const m = await mapContainer(pod, c, r, o, `init container '${c.name}'`, mountable);
    // ACI init containers carry image, command, env and mounts only.
    const { image, command, environmentVariables, volumeMounts } = m.properties as any;
    initContainers.push({ name: m.name, properties: { image, ...(command && { command }), environmentVariables, ...(volumeMounts && { volumeMounts }) } });
  }

  const imageRegistryCredentials = [];
  for (const ref of spec.imagePullSecrets ?? []) {
    const s = await r.secret(ns, ref.name);
    if (!s) throw new MissingReference(`imagePullSecret '${ref.name}' not found`);
    imageRegistryCredentials.push(...registryCredentials(s));
  }

  const ports: { port: number; protocol: string }[] = [];
  for (const c of containers) for (const p of c.properties.ports) if (!ports.some((q) => q.port === p.port && q.protocol === p.protocol)) ports.push(p);
  if (ports.length === 0) {
    containers[0].properties.ports.push({ port: ADDRESS_PLACEHOLDER_PORT, protocol: 'TCP' });
    ports.push({ port: ADDRESS_PLACEHOLDER_PORT, protocol: 'TCP' });
  }

  const name = groupNameFor(ns, pod.metadata.name);
  return {
    name,
    body: {
      location: o.location,
      tags: { [TAG.namespace]: ns, [TAG.pod]: pod.metadata.name, [TAG.uid]: pod.metadata.uid, [TAG.node]: o.nodeName, [TAG.specHash]: specHash(pod) },
      properties: {
        osType: 'Linux',
        restartPolicy: spec.restartPolicy ?? 'Always',
        containers,
        ...(initContainers.length > 0 && { initContainers }),
        // Private: the pod IP is the group's own address; nothing is published on the host.
        ipAddress: { type: 'Private', ports },
        ...(volumes.length > 0 && { volumes }),
        ...(imageRegistryCredentials.length > 0 && { imageRegistryCredentials }),
      },
    },
  };
}
