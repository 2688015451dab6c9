// The container group model: ARM request bodies validated into a typed spec, and specs rendered back.
import { BerthError, Codes } from '../lib/errors.js';
import { parseReference } from '../lib/image-reference.js';
import { parseTags } from '../arm/tags.js';
import { refuseUnsupported } from './unsupported.js';
import { parsePlacement, parseZones } from './placement/rules.js';
import { arr, bad, enumOf, num, obj, show, str, type Json } from './readers.js';

import type { ContainerDef, EnvVar, GroupSpec, InitContainerDef, ProbeDef, Protocol, VolumeDef, VolumeMountDef } from './group-spec.js';
export type { ContainerDef, GroupSpec } from './group-spec.js';

export interface Limits {
  maxCpuPerContainer: number;
  maxMemoryGBPerContainer: number;
  maxContainersPerGroup: number;
}

export const defaultLimits: Limits = { maxCpuPerContainer: 4, maxMemoryGBPerContainer: 16, maxContainersPerGroup: 60 };

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function checkGroupName(name: string): void {
  if (name.length < 1 || name.length > 63 || !dnsLabel.test(name) || name.includes('--'))
    throw new BerthError(
      Codes.InvalidResourceName,
      `The container group name '${name}' is invalid. A name must be 1 to 63 characters of lowercase letters, numbers and single dashes, and must start and end with a letter or number.`,
      400,
      'containerGroupName',
    );
}

export function checkResourceGroupName(name: string): void {
  if (name.length < 1 || name.length > 90 || !/^[-\w.()]+$/u.test(name) || name.endsWith('.'))
    throw new BerthError(
      Codes.InvalidResourceName,
      `The resource group name '${name}' is invalid. It may have 1 to 90 letters, digits, underscores, hyphens, periods and parentheses, and must not end in a period.`,
      400,
      'resourceGroupName',
    );
}

export function checkSubscriptionId(id: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/.test(id))
    throw new BerthError(Codes.InvalidResourceName, `The subscription id '${id}' is invalid.`, 400, 'subscriptionId');
}

function ports(v: Json, target: string): { port: number; protocol: Protocol }[] {
  return arr(v, target).map((p, i) => {
    const t = `${target}[${i}]`;
    const o = obj(p, t)!;
    const port = o.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      bad(Codes.InvalidPort, `${t}.port`, `The port '${show(port)}' in '${t}' is invalid. Ports must be integers from 1 to 65535.`);
    return { port, protocol: enumOf(o.protocol, `${t}.protocol`, ['TCP', 'UDP'] as const, Codes.InvalidPort, 'TCP') };
  });
}

const unsupported = (target: string, what: string): never =>
  bad(Codes.UnsupportedFeature, target, `${what} is not supported by berth yet.`);

/** Validates the `properties` of a PUT body into a GroupSpec; throws BerthError naming the offending property. */
export function parseGroupSpec(body: Json, limits: Limits = defaultLimits): { spec: GroupSpec; location?: string; tags: Record<string, string> } {
  const root = obj(body, 'body');
  if (!root) throw new BerthError(Codes.InvalidRequestContent, 'The request body must be a JSON object.');
  refuseUnsupported(root);
  const location = str(root.location, 'location');
  const tags = parseTags(root.tags);
  const p = obj(root.properties, 'properties')!;

  const osType = enumOf(p.osType, 'properties.osType', ['Linux', 'Windows'] as const, Codes.InvalidOsType, 'Linux');
  if (osType !== 'Linux') unsupported('properties.osType', 'Windows containers are');

  const restartPolicy = enumOf(p.restartPolicy, 'properties.restartPolicy', ['Always', 'OnFailure', 'Never'] as const, Codes.InvalidRestartPolicy, 'Always');

  const volumes: VolumeDef[] = arr(p.volumes, 'properties.volumes').map((v, i) => {
    const t = `properties.volumes[${i}]`;
    const o = obj(v, t)!;
    const name = str(o.name, `${t}.name`, true);
    if (!dnsLabel.test(name) || name.length > 63)
      bad(Codes.InvalidVolume, `${t}.name`, `The volume name '${name}' is invalid: use 1 to 63 lowercase letters, numbers and dashes.`);
    const kinds = ['emptyDir', 'secret', 'azureFile', 'gitRepo'].filter((k) => o[k] !== undefined && o[k] !== null);
    if (kinds.length !== 1) bad(Codes.InvalidVolume, t, `The volume '${name}' must have exactly one of emptyDir, secret, azureFile or gitRepo.`);
    if (kinds[0] === 'gitRepo') return { name, gitRepo: gitRepo(o.gitRepo, `${t}.gitRepo`, name) };
    if (kinds[0] === 'emptyDir') {
      obj(o.emptyDir, `${t}.emptyDir`);
      return { name, emptyDir: {} };
    }
    const secret: Record<string, string> = {};
    for (const [file, content] of Object.entries(obj(o.secret, `${t}.secret`)!)) {
      if (!/^[A-Za-z0-9._-]+$/.test(file) || file === '.' || file === '..')
        bad(Codes.InvalidVolume, `${t}.secret`, `The secret file name '${file}' in volume '${name}' is invalid.`);
      const b64 = str(content, `${t}.secret.${file}`, true);
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
        bad(Codes.InvalidVolume, `${t}.secret.${file}`, `The secret '${file}' in volume '${name}' must be base64-encoded.`);
      secret[file] = b64;
    }
    return { name, secret };
  });
  const volumeNames = new Set<string>();
  for (const v of volumes) {
    if (volumeNames.has(v.name)) bad(Codes.InvalidVolume, 'properties.volumes', `The volume name '${v.name}' is used more than once.`);
    volumeNames.add(v.name);
  }

  const rawContainers = arr(p.containers, 'properties.containers');
  if (rawContainers.length === 0)
    bad(Codes.MissingRequiredProperty, 'properties.containers', 'A container group needs at least one container.');
  if (rawContainers.length > limits.maxContainersPerGroup)
    bad(Codes.InvalidRequestContent, 'properties.containers', `A container group may have at most ${limits.maxContainersPerGroup} containers.`);
  // Init containers and containers share one namespace of names (their logs and runtime ids are by name).
  const names = new Set<string>();
  /** What containers and init containers have alike: a unique name, an image, a command, no securityContext. */
  const basics = (c: unknown, t: string, kind: 'container' | 'init container') => {
    const o = obj(c, t)!;
    const name = str(o.name, `${t}.name`, true);
    if (name.length > 63 || !dnsLabel.test(name) || name.includes('--'))
      bad(Codes.InvalidContainerName, `${t}.name`, `The ${kind} name '${name}' is invalid. A name must be 1 to 63 characters of lowercase letters, numbers and single dashes, and must start and end with a letter or number.`);
    if (names.has(name)) bad(Codes.DuplicateContainerName, `${t}.name`, `The container name '${name}' is used more than once in the container group.`);
    names.add(name);
    const cp = obj(o.properties, `${t}.properties`)!;
    const image = str(cp.image, `${t}.properties.image`, true).trim();
    if (!image) bad(Codes.InvalidImage, `${t}.properties.image`, `The image of ${kind} '${name}' must not be empty.`);
    if (/\s/.test(image) || image.length > 512)
      bad(Codes.InvalidImage, `${t}.properties.image`, `The image '${show(image)}' of ${kind} '${name}' is not a valid image reference.`);
    // parsed at admission as the pull will parse it: a reference that cannot be valid fails here, not at pull
    try {
      parseReference(image);
    } catch (e) {
      bad(Codes.InvalidImage, `${t}.properties.image`, (e as Error).message);
    }
    const command = arr(cp.command, `${t}.properties.command`).map((a, j) => str(a, `${t}.properties.command[${j}]`, true));
    return { cp, name, image, command };
  };
  const groupPorts = new Map<string, string>();
  const containers: ContainerDef[] = rawContainers.map((c, i) => {
    const t = `properties.containers[${i}]`;
    const { cp, name, image, command } = basics(c, t, 'container');
    const cports = ports(cp.ports, `${t}.properties.ports`);
    for (const pt of cports) {
      const key = `${pt.port}/${pt.protocol}`;
      if (groupPorts.has(key))
        bad(Codes.DuplicatePorts, `${t}.properties.ports`, `The port ${key} of container '${name}' is already used by container '${groupPorts.get(key)}': containers of a group share one network.`);
      groupPorts.set(key, name);
    }
    const environmentVariables = envVars(cp.environmentVariables, `${t}.properties.environmentVariables`);
    const res = obj(cp.resources, `${t}.properties.resources`)!;
    const req = obj(res.requests, `${t}.properties.resources.requests`)!;
    const cpu = num(req.cpu, `${t}.properties.resources.requests.cpu`, Codes.InvalidCpuRequest);
    const mem = num(req.memoryInGB, `${t}.properties.resources.requests.memoryInGB`, Codes.InvalidMemoryRequest);
    if (cpu === undefined || cpu <= 0 || cpu > limits.maxCpuPerContainer)
      bad(Codes.InvalidCpuRequest, `${t}.properties.resources.requests.cpu`, `The CPU request '${show(req.cpu)}' of container '${name}' is invalid: it must be more than 0 and at most ${limits.maxCpuPerContainer}.`);
    if (mem === undefined || mem <= 0 || mem > limits.maxMemoryGBPerContainer)
      bad(Codes.InvalidMemoryRequest, `${t}.properties.resources.requests.memoryInGB`, `The memory request '${show(req.memoryInGB)}' of container '${name}' is invalid: it must be more than 0 and at most ${limits.maxMemoryGBPerContainer} GB.`);
    let lim: ContainerDef['limits'];
    const rl = obj(res.limits, `${t}.properties.resources.limits`, false);
    if (rl) {
      const lc = num(rl.cpu, `${t}.properties.resources.limits.cpu`, Codes.InvalidCpuLimit);
      const lm = num(rl.memoryInGB, `${t}.properties.resources.limits.memoryInGB`, Codes.InvalidMemoryLimit);
      if (lc !== undefined && (lc < cpu || lc > limits.maxCpuPerContainer))
        bad(Codes.InvalidCpuLimit, `${t}.properties.resources.limits.cpu`, `The CPU limit ${lc} of container '${name}' must be at least its request (${cpu}) and at most ${limits.maxCpuPerContainer}.`);
      if (lm !== undefined && (lm < mem || lm > limits.maxMemoryGBPerContainer))
        bad(Codes.InvalidMemoryLimit, `${t}.properties.resources.limits.memoryInGB`, `The memory limit ${lm} GB of container '${name}' must be at least its request (${mem} GB) and at most ${limits.maxMemoryGBPerContainer} GB.`);
      lim = { ...(lc !== undefined && { cpu: lc }), ...(lm !== undefined && { memoryInGB: lm }) };
    }
    const volumeMounts = mounts(cp.volumeMounts, `${t}.properties.volumeMounts`, name, volumeNames);
    const livenessProbe = probe(cp.livenessProbe, `${t}.properties.livenessProbe`, name, true);
    const readinessProbe = probe(cp.readinessProbe, `${t}.properties.readinessProbe`, name, false);
    return {
      name, image, command, ports: cports, environmentVariables, requests: { cpu, memoryInGB: mem }, ...(lim && { limits: lim }), volumeMounts,
      ...(livenessProbe && { livenessProbe }), ...(readinessProbe && { readinessProbe }),
    };
  });

  const rawInits = arr(p.initContainers, 'properties.initContainers');
  if (rawInits.length > limits.maxContainersPerGroup)
    bad(Codes.InvalidRequestContent, 'properties.initContainers', `A container group may have at most ${limits.maxContainersPerGroup} init containers.`);
  const initContainers: InitContainerDef[] = rawInits.map((c, i) => {
    const t = `properties.initContainers[${i}]`;
    const { cp, name, image, command } = basics(c, t, 'init container');
    return {
      name, image, command,
      environmentVariables: envVars(cp.environmentVariables, `${t}.properties.environmentVariables`),
      volumeMounts: mounts(cp.volumeMounts, `${t}.properties.volumeMounts`, name, volumeNames),
    };
  });

  let ipAddress: GroupSpec['ipAddress'];
  const ip = obj(p.ipAddress, 'properties.ipAddress', false);
  if (ip) {
    const type = enumOf(ip.type, 'properties.ipAddress.type', ['Public', 'Private'] as const, Codes.InvalidRequestContent);
    const gports = ports(ip.ports, 'properties.ipAddress.ports');
    if (gports.length === 0) bad(Codes.InvalidIpAddressPort, 'properties.ipAddress.ports', 'The IP address of a container group must expose at least one port.');
    const seen = new Set<string>();
    for (const gp of gports) {
      const key = `${gp.port}/${gp.protocol}`;
      if (seen.has(key)) bad(Codes.DuplicatePorts, 'properties.ipAddress.ports', `The port ${key} is listed twice in 'properties.ipAddress.ports'.`);
      seen.add(key);
      if (!groupPorts.has(key))
        bad(Codes.InvalidIpAddressPort, 'properties.ipAddress.ports', `The port ${key} of the IP address is not exposed by any container of the group.`);
    }
    const dnsNameLabel = str(ip.dnsNameLabel, 'properties.ipAddress.dnsNameLabel') || undefined;
    // ACI's rule and message for a label.
    if (dnsNameLabel !== undefined && !/^[a-z][-a-z0-9]{3,61}[a-z0-9]$/.test(dnsNameLabel))
      bad(Codes.InvalidRequestContent, 'properties.ipAddress.dnsNameLabel', `The DNS name label '${dnsNameLabel}' is invalid. It can contain only lowercase letters, numbers and hyphens. The first character must be a letter. The last character must be a letter or number. The value must be between 5 and 63 characters long.`);
    const scope = ip.autoGeneratedDomainNameLabelScope === undefined || ip.autoGeneratedDomainNameLabelScope === null ? undefined
      : enumOf(ip.autoGeneratedDomainNameLabelScope, 'properties.ipAddress.autoGeneratedDomainNameLabelScope', ['Unsecure', 'TenantReuse', 'SubscriptionReuse', 'ResourceGroupReuse', 'Noreuse'] as const, Codes.InvalidRequestContent);
    ipAddress = { type, ports: gports, ...(dnsNameLabel && { dnsNameLabel }), ...(scope && { autoGeneratedDomainNameLabelScope: scope }) };
  }

  const imageRegistryCredentials = arr(p.imageRegistryCredentials, 'properties.imageRegistryCredentials').map((c, i) => {
    const t = `properties.imageRegistryCredentials[${i}]`;
    const o = obj(c, t)!;
    return { server: str(o.server, `${t}.server`, true), username: str(o.username, `${t}.username`, true), password: str(o.password, `${t}.password`, true) };
  });

  // Not in the 2023-05-01 schema, but ARM templates and newer api-versions send it; ACI's default is 1800.
  const timeout = num(p.provisioningTimeoutInSeconds, 'properties.provisioningTimeoutInSeconds', Codes.InvalidRequestContent);
  if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 1 || timeout > 86_400))
    bad(Codes.InvalidRequestContent, 'properties.provisioningTimeoutInSeconds', `The provisioning timeout '${timeout}' is invalid: it must be a whole number of seconds from 1 to 86400.`);

  const zones = parseZones(root.zones);
  const placement = parsePlacement(p.placement);

  return {
    spec: {
      containers, ...(initContainers.length > 0 && { initContainers }), restartPolicy, osType: 'Linux', ...(ipAddress && { ipAddress }), volumes, imageRegistryCredentials, sku: 'Standard',
      ...(timeout !== undefined && { provisioningTimeoutInSeconds: timeout }),
      ...(zones.length > 0 && { zones }),
      ...(placement && { placement }),
    },
    location,
    tags,
  };
}

function envVars(v: Json, target: string): EnvVar[] {
  const envNames = new Set<string>();
  return arr(v, target).map((e, j) => {
    const et = `${target}[${j}]`;
    const eo = obj(e, et)!;
    const ename = str(eo.name, `${et}.name`, true);
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(ename))
      bad(Codes.InvalidEnvironmentVariable, `${et}.name`, `The environment variable name '${ename}' is invalid.`);
    if (envNames.has(ename)) bad(Codes.InvalidEnvironmentVariable, `${et}.name`, `The environment variable '${ename}' is set more than once.`);
    envNames.add(ename);
    const value = str(eo.value, `${et}.value`);
    const secureValue = str(eo.secureValue, `${et}.secureValue`);
    if (value !== undefined && secureValue !== undefined)
      bad(Codes.InvalidEnvironmentVariable, et, `The environment variable '${ename}' must have either 'value' or 'secureValue', not both.`);
    return secureValue !== undefined ? { name: ename, secureValue } : { name: ename, value: value ?? '' };
  });
}

function mounts(v: Json, target: string, container: string, volumeNames: Set<string>): VolumeMountDef[] {
  const mountPaths = new Set<string>();
  return arr(v, target).map((m, j) => {
    const mt = `${target}[${j}]`;
    const mo = obj(m, mt)!;
    const vname = str(mo.name, `${mt}.name`, true);
    const mountPath = str(mo.mountPath, `${mt}.mountPath`, true);
    if (!volumeNames.has(vname)) bad(Codes.InvalidVolumeMount, `${mt}.name`, `The volume '${vname}' mounted by container '${container}' is not defined in 'properties.volumes'.`);
    if (!mountPath.startsWith('/') || mountPath.includes(':') || mountPath.split('/').includes('..') || mountPath === '/')
      bad(Codes.InvalidVolumeMount, `${mt}.mountPath`, `The mount path '${mountPath}' of container '${container}' must be an absolute path other than '/', without ':' or '..'.`);
    if (mountPaths.has(mountPath)) bad(Codes.InvalidVolumeMount, `${mt}.mountPath`, `The mount path '${mountPath}' is used twice in container '${container}'.`);
    mountPaths.add(mountPath);
    const readOnly = mo.readOnly ?? false;
    if (typeof readOnly !== 'boolean') bad(Codes.InvalidVolumeMount, `${mt}.readOnly`, `'${mt}.readOnly' must be a boolean.`);
    return { name: vname, mountPath, readOnly };
  });
}

/** Probe fields default as Kubernetes' do (ACI documents the same fields without defaults). */
function probe(v: Json, target: string, container: string, liveness: boolean): ProbeDef | undefined {
  const o = obj(v, target, false);
  if (!o) return undefined;
  const int = (k: string, dflt: number, min: number, max: number) => {
    const n = num(o[k], `${target}.${k}`, Codes.InvalidProbe) ?? dflt;
    if (!Number.isInteger(n) || n < min || n > max)
      bad(Codes.InvalidProbe, `${target}.${k}`, `The '${k}' of the probe of container '${container}' must be an integer from ${min} to ${max}.`);
    return n;
  };
  const kinds = ['exec', 'httpGet'].filter((k) => o[k] !== undefined && o[k] !== null);
  if (kinds.length !== 1) bad(Codes.InvalidProbe, target, `The probe of container '${container}' must have exactly one of 'exec' or 'httpGet'.`);
  const p: ProbeDef = {
    initialDelaySeconds: int('initialDelaySeconds', 0, 0, 3600),
    periodSeconds: int('periodSeconds', 10, 1, 3600),
    failureThreshold: int('failureThreshold', 3, 1, 1000),
    successThreshold: int('successThreshold', 1, 1, 1000),
    timeoutSeconds: int('timeoutSeconds', 1, 1, 3600),
  };
  if (liveness && p.successThreshold !== 1)
    bad(Codes.InvalidProbe, `${target}.successThreshold`, `The 'successThreshold' of the liveness probe of container '${container}' must be 1.`);
  if (kinds[0] === 'exec') {
    const e = obj(o.exec, `${target}.exec`)!;
    const command = arr(e.command, `${target}.exec.command`).map((a, j) => str(a, `${target}.exec.command[${j}]`, true));
    if (command.length === 0) bad(Codes.InvalidProbe, `${target}.exec.command`, `The exec probe of container '${container}' needs a command.`);
    return { ...p, exec: { command } };
  }
  const h = obj(o.httpGet, `${target}.httpGet`)!;
  const port = h.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    bad(Codes.InvalidProbe, `${target}.httpGet.port`, `The port '${show(port)}' of the probe of container '${container}' must be an integer from 1 to 65535.`);
  const path = str(h.path, `${target}.httpGet.path`) ?? '/';
  if (!path.startsWith('/') || /[\s\x00-\x1f]/.test(path))
    bad(Codes.InvalidProbe, `${target}.httpGet.path`, `The path '${path}' of the probe of container '${container}' must start with '/' and have no spaces or control characters.`);
  const scheme = enumOf(h.scheme, `${target}.httpGet.scheme`, ['http', 'https'] as const, Codes.InvalidProbe, 'http');
  const httpHeaders = arr(h.httpHeaders, `${target}.httpGet.httpHeaders`).map((x, j) => {
    const ht = `${target}.httpGet.httpHeaders[${j}]`;
    const ho = obj(x, ht)!;
    const name = str(ho.name, `${ht}.name`, true);
    const value = str(ho.value, `${ht}.value`) ?? '';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\x00]/.test(value))
      bad(Codes.InvalidProbe, ht, `The HTTP header '${name}' of the probe of container '${container}' is invalid.`);
    return { name, value };
  });
  return { ...p, httpGet: { path, port, scheme, httpHeaders } };
}

const GIT_SCHEMES = /^(https?|git):\/\//i;

function gitRepo(v: Json, target: string, volume: string): NonNullable<VolumeDef['gitRepo']> {
  const o = obj(v, target)!;
  const repository = str(o.repository, `${target}.repository`, true);
  // Cloned by the host: local paths, file:// and git's command-running transports would reach the host itself.
  if (!GIT_SCHEMES.test(repository) || /[\s\x00-\x1f]/.test(repository))
    bad(Codes.InvalidVolume, `${target}.repository`, `The repository '${repository}' of volume '${volume}' must be an http, https or git URL.`);
  const directory = str(o.directory, `${target}.directory`);
  if (directory !== undefined && directory !== '.' && (directory === '' || directory.startsWith('-') || directory.split('/').some((x) => x === '..' || x === '') || directory.startsWith('/')))
    bad(Codes.InvalidVolume, `${target}.directory`, `The directory '${directory}' of volume '${volume}' must be '.' or a relative path without '..'.`);
  const revision = str(o.revision, `${target}.revision`);
  if (revision !== undefined && !/^[0-9A-Za-z][0-9A-Za-z._/-]{0,254}$/.test(revision))
    bad(Codes.InvalidVolume, `${target}.revision`, `The revision '${revision}' of volume '${volume}' is not a valid commit or ref name.`);
  return { repository, ...(directory !== undefined && { directory }), ...(revision !== undefined && { revision }) };
}

function renderProbe(p: ProbeDef) {
  return {
    ...(p.exec && { exec: { command: p.exec.command } }),
    ...(p.httpGet && { httpGet: { path: p.httpGet.path, port: p.httpGet.port, scheme: p.httpGet.scheme, ...(p.httpGet.httpHeaders.length > 0 && { httpHeaders: p.httpGet.httpHeaders }) } }),
    initialDelaySeconds: p.initialDelaySeconds, periodSeconds: p.periodSeconds, failureThreshold: p.failureThreshold,
    successThreshold: p.successThreshold, timeoutSeconds: p.timeoutSeconds,
  };
}

const envOf = (env: EnvVar[], redact: boolean) =>
  env.map((e) => (e.secureValue === undefined ? { name: e.name, value: e.value } : redact ? { name: e.name } : { name: e.name, secureValue: e.secureValue }));

/** The spec as a client may see it: secrets dropped. */
export const redactSpec = (spec: GroupSpec): Json => specToBody(spec, { redact: true });

/**
 * The `properties` of a container group body that parse back into `spec`. With `redact`, what a
 * client may see: secure values, secret volume contents and registry passwords dropped, and no
 * `ipAddress` (the renderer adds it with what the group was given). Without, everything, as a
 * profile's revision is expanded into a group made from it.
 */
export function specToBody(spec: GroupSpec, o: { redact: boolean }): Json {
  const { redact } = o;
  return {
    containers: spec.containers.map((c) => ({
      name: c.name,
      properties: {
        image: c.image,
        command: c.command,
        ports: c.ports,
        environmentVariables: envOf(c.environmentVariables, redact),
        resources: { requests: c.requests, ...(c.limits && { limits: c.limits }) },
        ...(c.volumeMounts.length > 0 && { volumeMounts: c.volumeMounts }),
        ...(c.livenessProbe && { livenessProbe: renderProbe(c.livenessProbe) }),
        ...(c.readinessProbe && { readinessProbe: renderProbe(c.readinessProbe) }),
      },
    })),
    ...(spec.initContainers?.length && {
      initContainers: spec.initContainers.map((c) => ({
        name: c.name,
        properties: {
          image: c.image, command: c.command, environmentVariables: envOf(c.environmentVariables, redact),
          ...(c.volumeMounts.length > 0 && { volumeMounts: c.volumeMounts }),
        },
      })),
    }),
    restartPolicy: spec.restartPolicy,
    osType: spec.osType,
    sku: spec.sku,
    ...(spec.volumes.length > 0 && {
      volumes: spec.volumes.map((v) => (v.secret ? { name: v.name, secret: redact ? {} : v.secret } : v.gitRepo ? { name: v.name, gitRepo: v.gitRepo } : { name: v.name, emptyDir: {} })),
    }),
    ...(spec.imageRegistryCredentials.length > 0 && {
      imageRegistryCredentials: spec.imageRegistryCredentials.map((c) => (redact ? { server: c.server, username: c.username } : c)),
    }),
    ...(!redact && spec.ipAddress && { ipAddress: spec.ipAddress }),
    ...(!redact && spec.provisioningTimeoutInSeconds !== undefined && { provisioningTimeoutInSeconds: spec.provisioningTimeoutInSeconds }),
  };
}
