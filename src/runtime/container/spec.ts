// Builds the OCI runtime spec (config.json) and the generated /etc files for one container.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';
import type { ContainerSpec } from '../types.js';
import { defaultSeccompProfile, type SeccompProfile } from './seccomp.js';

/** Docker's default capability set; granted in bounding/effective/permitted only, never inheritable/ambient. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export const MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/**
 * Where the init is bind-mounted in the container: on /dev's tmpfs, so nothing is added to the
 * image's file system or the writable layer (Docker uses /sbin/docker-init, podman /run/podman-init).
 */
export const INIT_PATH = '/dev/init';
export const DEFAULT_PIDS_LIMIT = 1024;
export const CPU_PERIOD = 100_000;

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciDeviceRule {
  allow: boolean;
  type?: 'a' | 'c' | 'b';
  major?: number;
  minor?: number;
  access: string;
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[] };
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string; path?: string }[];
    cgroupsPath: string;
    resources: {
      devices: OciDeviceRule[];
      memory?: { limit: number; swap: number };
      cpu?: { quota: number; period: number };
      pids: { limit: number };
    };
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp?: SeccompProfile;
  };
}

/** Host files bind-mounted over the container's own /etc entries. */
export interface EtcFiles {
  hosts: string;
  hostname: string;
  resolvConf?: string;
}

export interface BuildSpecOptions {
  /** Merged rootfs; also read to resolve user and group names. */
  rootfs: string;
  etcFiles?: EtcFiles;
  /** cgroup parent path; the container lands in `<parent>/<id>`. */
  cgroupParent?: string;
  /** Pass null to run without seccomp; default follows the kernel's support. */
  seccomp?: SeccompProfile | null;
  /**
   * A static init on the host (tini) to run as the container's PID 1 with the command as its
   * child: it reaps every orphan, forwards signals, and exits with the command's code (128 + N
   * for a signal N). Without it, the command is PID 1.
   */
  init?: string;
}

/** ACI semantics: `command` replaces both entrypoint and cmd. */
export function processArgs(spec: ContainerSpec): string[] {
  const args = spec.command && spec.command.length > 0
    ? spec.command
    : [...(spec.image.config.entrypoint ?? []), ...(spec.image.config.cmd ?? [])];
  if (args.length === 0) {
    throw new BerthError(Codes.RuntimeError, `container ${spec.id}: no command and the image defines neither entrypoint nor cmd`);
  }
  return args;
}

/** Image env, then the spec's env over it; PATH defaulted, HOSTNAME set unless the spec sets it. */
export function mergeEnv(imageEnv: string[], env: Record<string, string>, hostname: string): string[] {
  const merged = new Map<string, string>();
  merged.set('PATH', DEFAULT_PATH);
  merged.set('HOSTNAME', hostname);
  for (const kv of imageEnv ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) continue;
    merged.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const [k, v] of Object.entries(env ?? {})) merged.set(k, v);
  return [...merged].map(([k, v]) => `${k}=${v}`);
}

function readRootfsFile(rootfs: string, path: string): string {
  try {
    return readFileSync(join(rootfs, path), 'utf8');
  } catch {
    return '';
  }
}

function parseColonFile(text: string): string[][] {
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
}

/** Resolves an image `User` ("uid", "uid:gid", "name", "name:group") against the rootfs' passwd and group. */
export function resolveUser(rootfs: string, user: string): { uid: number; gid: number; additionalGids?: number[] } {
  if (!user) return { uid: 0, gid: 0 };
  const [userPart, groupPart] = user.split(':', 2);
  const passwd = parseColonFile(readRootfsFile(rootfs, 'etc/passwd'));
  const groups = parseColonFile(readRootfsFile(rootfs, 'etc/group'));
  const isNum = (s: string) => /^\d+$/.test(s);

  let uid: number;
  let gid = 0;
  let name: string | undefined;
  if (isNum(userPart)) {
    uid = Number(userPart);
    const entry = passwd.find((e) => e[2] === userPart);
    if (entry) {
      gid = Number(entry[3]) || 0;
      name = entry[0];
    }
  } else {
    const entry = passwd.find((e) => e[0] === userPart);
    if (!entry) throw new BerthError(Codes.RuntimeError, `user "${userPart}" not found in the image's /etc/passwd`);
    uid = Number(entry[2]);
    gid = Number(entry[3]) || 0;
    name = entry[0];
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (isNum(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((e) => e[0] === groupPart);
      if (!g) throw new BerthError(Codes.RuntimeError, `group "${groupPart}" not found in the image's /etc/group`);
      gid = Number(g[2]);
    }
  }
  const additionalGids = name
    ? groups.filter((g) => (g[3] ?? '').split(',').includes(name!)).map((g) => Number(g[2])).filter((g) => g !== gid)
    : [];
  return additionalGids.length > 0 ? { uid, gid, additionalGids } : { uid, gid };
}

export function hostsFileContent(hostname: string, ip?: string): string {
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    `${ip ?? '127.0.1.1'}\t${hostname}`,
    '',
  ].join('\n');
}

/**
 * The host's resolv.conf without loopback nameservers (they are unreachable from the sandbox).
 * Undefined when no nameserver is left: the image's own file is then kept.
 */
export function resolvConfContent(hostResolvConf: string): string | undefined {
  const lines = hostResolvConf.split('\n');
  const kept: string[] = [];
  let nameservers = 0;
  for (const line of lines) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) {
      const addr = m[1];
      if (addr.startsWith('127.') || addr === '::1' || addr === '0:0:0:0:0:0:0:1') continue;
      nameservers++;
    }
    kept.push(line);
  }
  if (nameservers === 0) return undefined;
  return kept.join('\n').replace(/\n*$/, '\n');
}

const DEVICE_RULES: OciDeviceRule[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
  { allow: true, type: 'c', major: 136, access: 'rwm' }, // pts
];

export function buildOciSpec(spec: ContainerSpec, opts: BuildSpecOptions): OciSpec {
  if (!spec.netnsPath) throw new BerthError(Codes.RuntimeError, `container ${spec.id}: netnsPath is required`);
  const cfg = spec.image.config;
  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
  ];
  if (opts.etcFiles) {
    const bind = (source: string, destination: string): OciMount => ({ destination, type: 'bind', source, options: ['rbind', 'rprivate'] });
    mounts.push(bind(opts.etcFiles.hosts, '/etc/hosts'), bind(opts.etcFiles.hostname, '/etc/hostname'));
    if (opts.etcFiles.resolvConf) mounts.push(bind(opts.etcFiles.resolvConf, '/etc/resolv.conf'));
  }
  if (opts.init) mounts.push({ destination: INIT_PATH, type: 'bind', source: opts.init, options: ['bind', 'ro', 'nosuid', 'nodev', 'rprivate'] });
  for (const m of spec.mounts ?? []) {
    mounts.push({
      destination: m.destination,
      type: 'bind',
      source: m.source,
      options: ['rbind', 'rprivate', ...(m.readOnly ? ['ro'] : [])],
    });
  }

  const resources: OciSpec['linux']['resources'] = {
    devices: DEVICE_RULES,
    pids: { limit: spec.pidsLimit ?? DEFAULT_PIDS_LIMIT },
  };
  if (spec.memoryLimitBytes > 0) {
    // swap = limit: no swap beyond the memory limit.
    resources.memory = { limit: Math.floor(spec.memoryLimitBytes), swap: Math.floor(spec.memoryLimitBytes) };
  }
  if (spec.cpuLimit > 0) {
    // the kernel refuses quotas under 1 ms
    resources.cpu = { quota: Math.max(1000, Math.round(spec.cpuLimit * CPU_PERIOD)), period: CPU_PERIOD };
  }

  const seccomp = opts.seccomp === null ? undefined : opts.seccomp ?? defaultSeccompProfile();
  const parent = (opts.cgroupParent ?? '/berth').replace(/\/+$/, '');
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: resolveUser(opts.rootfs, cfg.user),
      args: opts.init ? [INIT_PATH, '--', ...processArgs(spec)] : processArgs(spec),
      env: mergeEnv(cfg.env, spec.env, spec.hostname),
      cwd: cfg.workingDir || '/',
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
      noNewPrivileges: true,
    },
    root: { path: opts.rootfs, readonly: false },
    hostname: spec.hostname,
    mounts,
    linux: {
      namespaces: [
        { type: 'pid' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'network', path: spec.netnsPath },
      ],
      cgroupsPath: `${parent.startsWith('/') ? parent : `/${parent}`}/${spec.id}`,
      resources,
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
      ...(seccomp ? { seccomp } : {}),
    },
  };
}
