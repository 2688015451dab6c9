// Test fixtures for the runtime: a busybox rootfs posing as a pulled image, a ContainerRuntime testbed (private dirs, cgroup parent and netns, removed after the file), and host-state probes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { ContainerSpec, ExecOptions, PulledImage } from '../types.js';
import { ContainerRuntime } from './runtime.js';

const APPLETS = [
  'sh', 'sleep', 'echo', 'cat', 'httpd', 'wget', 'nc', 'dd', 'head', 'tail', 'true', 'false', 'id',
  'hostname', 'ip', 'ifconfig', 'grep', 'ls', 'env', 'pwd', 'seq', 'kill', 'ps', 'mkdir', 'rm', 'touch', 'mount', 'wc',
  'stty', 'tty', 'cut',
];

/** A one-layer "image" made of busybox-static with applet links and a passwd file. */
export function makeBusyboxImage(baseDir?: string, config: Partial<PulledImage['config']> = {}): PulledImage {
  const dir = baseDir ?? mkdtempSync(join(tmpdir(), 'berth-layer-'));
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'www', 'root']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync('/bin/busybox', join(dir, 'bin/busybox'));
  for (const a of APPLETS) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n');
  writeFileSync(join(dir, 'www/index.html'), 'hello from berth\n');
  return {
    reference: 'test/busybox:latest',
    digest: 'sha256:0000000000000000000000000000000000000000000000000000000000000000',
    config: { entrypoint: [], cmd: ['sh'], env: ['PATH=/bin', 'FROM_IMAGE=1'], workingDir: '/', user: '', exposedPorts: [], ...config },
    layerDirs: [dir],
    size: 0,
  };
}

export function containerSpec(id: string, image: PulledImage, netnsPath: string, extra: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    id,
    image,
    env: {},
    cpuLimit: 0,
    memoryLimitBytes: 0,
    netnsPath,
    hostname: id.slice(0, 63),
    mounts: [],
    ...extra,
  };
}

/**
 * The third octet of a random 10.213.X.0/24 that no route of this network namespace covers yet: a bridge left by
 * something else (podman's cni-podman0 keeps its route while down) would take a test's traffic (EHOSTUNREACH).
 */
export function freeTestOctet(): number {
  const routes = execFileSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' });
  for (;;) {
    const octet = 1 + Math.floor(Math.random() * 250);
    if (!routes.includes(`10.213.${octet}.`)) return octet;
  }
}

export const randomSuffix = () => Math.random().toString(36).slice(2, 8);

export async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A ContainerRuntime over a private dir, runc root, cgroup parent and network namespace (with a
 * busybox image), all removed after the calling test file's tests, with every container left.
 */
export function runtimeTestbed() {
  const sfx = randomSuffix();
  const dir = mkdtempSync(join(tmpdir(), 'berth-rt-'));
  const root = join(dir, 'containers');
  const runcRoot = `/run/berth-test-${sfx}/runc`;
  const cgroupParent = `/berth-test-${sfx}`;
  const netns = `berth-rt-${sfx}`;
  const netnsPath = `/run/netns/${netns}`;
  const image = makeBusyboxImage(join(dir, 'layer'));
  const rt = new ContainerRuntime({ root, runcRoot, cgroupParent });
  const spec = (id: string, extra: Partial<ContainerSpec>) => containerSpec(id, image, netnsPath, extra);

  /** Runs argv in container id to a 0 exit and returns its stdout. */
  async function execOut(id: string, argv: string[], opts?: Pick<ExecOptions, 'env' | 'cwd'>): Promise<string> {
    const child = await rt.exec(id, argv, opts);
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.stdin.end();
    assert.deepEqual(await child.done, { exitCode: 0 }, err);
    return out;
  }

  before(() => {
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up']);
  });

  after(async () => {
    for (const id of await rt.list()) await rt.remove(id).catch((e) => console.error('cleanup', id, e));
    try {
      execFileSync('ip', ['netns', 'delete', netns]);
    } catch {
      /* already gone */
    }
    for (const ctl of readdirSync('/sys/fs/cgroup')) {
      const p = join('/sys/fs/cgroup', ctl, cgroupParent);
      if (existsSync(p)) {
        try {
          rmdirSync(p);
        } catch {
          /* still busy: reported by the remove tests */
        }
      }
    }
    rmSync(`/run/berth-test-${sfx}`, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  return { dir, root, runcRoot, cgroupParent, netnsPath, image, rt, spec, execOut };
}

/** Counts the host facts teardown must restore. */
export function hostNetworkCounts(): { netns: number; veth: number; iptablesRules: number; iptablesChains: number; nftObjects: number } {
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
  const veth = execFileSync('ip', ['-o', 'link', 'show', 'type', 'veth'], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
  const save = [
    ...execFileSync('iptables-save', { encoding: 'utf8' }).split('\n'),
    ...execFileSync('ip6tables-save', { encoding: 'utf8' }).split('\n'),
  ];
  const nft = berthNftObjects();
  return {
    netns,
    veth,
    iptablesRules: save.filter((l) => l.startsWith('-A ')).length,
    // user-defined chains only: nf_tables keeps empty built-in tables once they were touched
    iptablesChains: save.filter((l) => /^:\S+ - /.test(l)).length,
    nftObjects: nft.tables + nft.chains + nft.rules + nft.elements.length,
  };
}

/** The host-side veth of the network namespace `netns` (its link-netns). */
export function hostVethOf(netns: string): string | undefined {
  const line = execFileSync('ip', ['-o', 'link', 'show', 'type', 'veth'], { encoding: 'utf8' }).split('\n').find((l) => l.endsWith(` link-netns ${netns}`) || l.includes(` link-netns ${netns} `));
  return line ? /^\d+: ([^@:]+)/.exec(line)?.[1] : undefined;
}

/** A set or map element by what it is about: a map's key, a concatenation's first part (a sandbox's veth, or address). */
function elementKey(e: unknown): unknown {
  const key = Array.isArray(e) ? e[0] : e;
  return key && typeof key === 'object' && 'concat' in key ? (key as { concat: unknown[] }).concat[0] : key;
}

/**
 * What berth's nftables tables (`berth-<bridge>`, isolation.ts) hold: tables, chains, rules, and
 * the set and map elements (the veths of sandboxes in them, or the host services offered).
 */
export function berthNftObjects(): { tables: number; chains: number; segmentChains: number; rules: number; elements: string[] } {
  const out = { tables: 0, chains: 0, segmentChains: 0, rules: 0, elements: [] as string[] };
  let objects: Record<string, { name?: string; table?: string; elem?: unknown[] }>[];
  try {
    objects = JSON.parse(execFileSync('nft', ['-j', 'list', 'ruleset'], { encoding: 'utf8' })).nftables;
  } catch {
    return out; // no nft: berth could have made nothing
  }
  for (const o of objects) {
    const [kind, v] = Object.entries(o)[0];
    if (!(kind === 'table' ? v.name : v.table)?.startsWith('berth-')) continue;
    if (kind === 'table') out.tables++;
    else if (kind === 'chain') {
      out.chains++;
      if (v.name!.startsWith('segment-')) out.segmentChains++;
    } else if (kind === 'rule') out.rules++;
    else if (kind === 'set' || kind === 'map') for (const e of v.elem ?? []) out.elements.push(JSON.stringify(elementKey(e)));
  }
  return out;
}
