// Container usage from cgroup files: v1's controllers and v2's one hierarchy, over a fake /sys/fs/cgroup, and the
// host's own counters for this process (a real cgroup and network namespace).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { networkOf, readContainerUsage } from './usage.js';

function tree(files: Record<string, string>) {
  const root = mkdtempSync(join(tmpdir(), 'berth-cgroup-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test('cgroup v1: CPU time from cpuacct, memory without the inactive page cache', () => {
  const root = tree({
    'cpuacct/berth/c1/cpuacct.usage': '2500000000\n',
    'cpuacct/berth/c1/cgroup.procs': '',
    'memory/berth/c1/memory.usage_in_bytes': '10485760\n',
    'memory/berth/c1/memory.stat': 'cache 3000\ntotal_inactive_file 2097152\n',
  });
  try {
    assert.deepEqual(readContainerUsage('/berth', 'c1', root), { cpuNanos: 2_500_000_000, memoryBytes: 8 * 1024 * 1024 });
    assert.equal(readContainerUsage('/berth', 'gone', root), undefined);
  } finally {
    rmSync(root, { recursive: true });
  }
});

test('cgroup v2: CPU time from cpu.stat, memory.current without inactive_file', () => {
  const root = tree({
    'berth/c2/cpu.stat': 'usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n',
    'berth/c2/memory.current': '4096000\n',
    'berth/c2/memory.stat': 'anon 1\ninactive_file 96000\n',
    'berth/c2/cgroup.procs': '',
  });
  try {
    assert.deepEqual(readContainerUsage('berth', 'c2', root), { cpuNanos: 1_500_000_000, memoryBytes: 4_000_000 });
  } finally {
    rmSync(root, { recursive: true });
  }
});

test("a process's network namespace counters leave loopback out", () => {
  const proc = tree({
    '42/net/dev': 'Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:  999 1 0 0 0 0 0 0  999 1 0 0 0 0 0 0\n  eth0: 1200 10 0 0 0 0 0 0 3400 20 0 0 0 0 0 0\n',
  });
  try {
    assert.deepEqual(networkOf('42', proc), { rxBytes: 1200, txBytes: 3400 });
    // this process's own namespace is readable, with numbers
    const own = networkOf(String(process.pid));
    assert.ok(own && Number.isFinite(own.rxBytes) && Number.isFinite(own.txBytes));
  } finally {
    rmSync(proc, { recursive: true });
  }
});
