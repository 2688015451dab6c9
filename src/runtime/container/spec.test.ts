// Unit tests of the OCI spec builder: process, user, env, /etc files, security defaults.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isBerthError } from '../../lib/errors.js';
import { defaultSeccompProfile } from './seccomp.js';
import {
  buildOciSpec, DEFAULT_CAPABILITIES, hostsFileContent, INIT_PATH, MASKED_PATHS, mergeEnv, processArgs, resolvConfContent, resolveUser,
} from './spec.js';
import { containerSpec, makeBusyboxImage } from './testing.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-spec-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const image = makeBusyboxImage(join(dir, 'layer'), { entrypoint: ['/bin/ep'], cmd: ['a', 'b'], env: ['PATH=/img/bin', 'A=1', 'B=2'] });
const rootfs = image.layerDirs[0];

describe('processArgs', () => {
  it('uses entrypoint + cmd of the image', () => {
    assert.deepEqual(processArgs(containerSpec('c', image, '/run/netns/x')), ['/bin/ep', 'a', 'b']);
  });
  it('command replaces both entrypoint and cmd (ACI semantics)', () => {
    assert.deepEqual(processArgs(containerSpec('c', image, '/run/netns/x', { command: ['echo', 'hi'] })), ['echo', 'hi']);
  });
  it('refuses an image with nothing to run', () => {
    const empty = { ...image, config: { ...image.config, entrypoint: [], cmd: [] } };
    assert.throws(() => processArgs(containerSpec('c', empty, '/run/netns/x')), isBerthError);
  });
});

describe('mergeEnv', () => {
  it('layers the spec env over the image env and sets HOSTNAME', () => {
    const env = mergeEnv(['PATH=/img/bin', 'A=1', 'B=2'], { B: 'x', C: 'y=z' }, 'h1');
    assert.deepEqual(env.sort(), ['A=1', 'B=x', 'C=y=z', 'HOSTNAME=h1', 'PATH=/img/bin'].sort());
  });
  it('defaults PATH when nobody sets it', () => {
    assert.ok(mergeEnv([], {}, 'h').includes('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'));
  });
});

describe('resolveUser', () => {
  it('defaults to root', () => assert.deepEqual(resolveUser(rootfs, ''), { uid: 0, gid: 0 }));
  it('takes numeric uid:gid as is', () => assert.deepEqual(resolveUser(rootfs, '123:456'), { uid: 123, gid: 456 }));
  it('finds the primary group of a numeric uid in passwd', () => assert.equal(resolveUser(rootfs, '1000').gid, 1000));
  it('resolves names and supplementary groups', () => {
    assert.deepEqual(resolveUser(rootfs, 'app'), { uid: 1000, gid: 1000, additionalGids: [2000] });
    assert.equal(resolveUser(rootfs, 'app:nogroup').gid, 65534);
  });
  it('fails clearly on an unknown name', () => {
    assert.throws(() => resolveUser(rootfs, 'ghost'), /ghost/);
    assert.throws(() => resolveUser(rootfs, 'app:ghosts'), /ghosts/);
  });
});

describe('generated /etc files', () => {
  it('drops loopback nameservers and keeps the rest', () => {
    const text = resolvConfContent('search example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\noptions edns0\n');
    assert.equal(text, 'search example.org\nnameserver 10.0.0.2\noptions edns0\n');
  });
  it('returns nothing when only loopback resolvers exist', () => {
    assert.equal(resolvConfContent('nameserver 127.0.0.53\n'), undefined);
  });
  it('maps the hostname to the sandbox IP', () => {
    assert.match(hostsFileContent('web', '10.0.0.5'), /^10\.0\.0\.5\tweb$/m);
    assert.match(hostsFileContent('web'), /^127\.0\.1\.1\tweb$/m);
  });
});

describe('buildOciSpec', () => {
  const spec = buildOciSpec(
    containerSpec('c1', image, '/run/netns/berth-x', {
      cpuLimit: 0.5,
      memoryLimitBytes: 64 << 20,
      mounts: [{ source: '/srv/data', destination: '/data', readOnly: true }],
    }),
    { rootfs, etcFiles: { hosts: '/h', hostname: '/hn', resolvConf: '/r' } },
  );

  it('grants Docker default capabilities, never inheritable or ambient', () => {
    const caps = spec.process.capabilities as Record<string, string[]>;
    assert.deepEqual(caps.bounding, DEFAULT_CAPABILITIES);
    assert.deepEqual(caps.effective, DEFAULT_CAPABILITIES);
    assert.deepEqual(caps.permitted, DEFAULT_CAPABILITIES);
    assert.equal(caps.inheritable, undefined);
    assert.equal(caps.ambient, undefined);
    assert.equal(spec.process.noNewPrivileges, true);
    assert.equal((spec.process as Record<string, unknown>).rlimits, undefined);
  });

  it('joins the group netns by path and never shares host namespaces', () => {
    const ns = spec.linux.namespaces;
    assert.deepEqual(ns.find((n) => n.type === 'network'), { type: 'network', path: '/run/netns/berth-x' });
    for (const t of ['pid', 'ipc', 'uts', 'mount']) assert.deepEqual(ns.find((n) => n.type === t), { type: t });
  });

  it('sets limits and cgroup path', () => {
    assert.deepEqual(spec.linux.resources.memory, { limit: 64 << 20, swap: 64 << 20 });
    assert.deepEqual(spec.linux.resources.cpu, { quota: 50_000, period: 100_000 });
    assert.deepEqual(spec.linux.resources.pids, { limit: 1024 });
    assert.equal(spec.linux.cgroupsPath, '/berth/c1');
    assert.deepEqual(spec.linux.resources.devices[0], { allow: false, access: 'rwm' });
  });

  it('masks and protects /proc and /sys like Docker', () => {
    assert.deepEqual(spec.linux.maskedPaths, MASKED_PATHS);
    assert.ok(spec.linux.readonlyPaths.includes('/proc/sys'));
    const sys = spec.mounts.find((m) => m.destination === '/sys');
    assert.deepEqual(sys?.options, ['nosuid', 'noexec', 'nodev', 'ro']);
    assert.ok(spec.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.options?.includes('ro'));
  });

  it('bind-mounts generated /etc files and volumes', () => {
    const dests = spec.mounts.map((m) => m.destination);
    for (const d of ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/data']) {
      assert.ok(dests.includes(d), d);
    }
    assert.deepEqual(spec.mounts.find((m) => m.destination === '/data'), {
      destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'rprivate', 'ro'],
    });
  });

  it('uses the image working dir and user', () => {
    const s = buildOciSpec(containerSpec('c2', { ...image, config: { ...image.config, workingDir: '/srv', user: 'app' } }, '/run/netns/x'), { rootfs });
    assert.equal(s.process.cwd, '/srv');
    assert.equal(s.process.user.uid, 1000);
    assert.equal(s.process.terminal, false);
  });

  it('runs the command as the child of an init mounted read-only from the host, when given one', () => {
    const s = buildOciSpec(containerSpec('c4', image, '/run/netns/x'), { rootfs, init: '/usr/bin/tini-static' });
    assert.deepEqual(s.process.args, [INIT_PATH, '--', '/bin/ep', 'a', 'b']);
    assert.deepEqual(s.mounts.find((m) => m.destination === INIT_PATH), {
      destination: INIT_PATH, type: 'bind', source: '/usr/bin/tini-static', options: ['bind', 'ro', 'nosuid', 'nodev', 'rprivate'],
    });
    // after /dev's tmpfs, on which its mount point is made
    assert.ok(s.mounts.findIndex((m) => m.destination === INIT_PATH) > s.mounts.findIndex((m) => m.destination === '/dev'));
    assert.deepEqual(spec.process.args, ['/bin/ep', 'a', 'b'], 'without one, the command is PID 1');
  });

  it('honours a cgroup parent and a pids limit', () => {
    const s = buildOciSpec(containerSpec('c3', image, '/run/netns/x', { pidsLimit: 7 }), { rootfs, cgroupParent: 'custom/' });
    assert.equal(s.linux.cgroupsPath, '/custom/c3');
    assert.deepEqual(s.linux.resources.pids, { limit: 7 });
    assert.equal(s.linux.resources.memory, undefined);
  });
});

describe('seccomp', () => {
  it('allows by default and refuses the dangerous syscalls', () => {
    const p = defaultSeccompProfile();
    assert.ok(p, 'this kernel supports seccomp');
    assert.equal(p.defaultAction, 'SCMP_ACT_ALLOW');
    const blocked = new Set(p.syscalls.filter((s) => !s.args).flatMap((s) => s.names));
    for (const n of ['mount', 'umount2', 'kexec_load', 'init_module', 'bpf', 'unshare', 'setns', 'reboot', 'keyctl', 'open_by_handle_at']) {
      assert.ok(blocked.has(n), n);
    }
    assert.ok(p.syscalls.some((s) => s.names.includes('clone') && s.args?.[0].value === 0x10000000));
  });
  it('is left out when the kernel has no seccomp filter support', () => {
    assert.equal(defaultSeccompProfile('/nonexistent/actions_avail'), undefined);
  });
});
