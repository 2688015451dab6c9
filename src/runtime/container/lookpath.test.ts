// Unit tests of the command lookup in a rootfs: PATH search, symlinks kept inside the rootfs, mounts left to the runtime.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { commandProblem, resolveInRootfs } from './lookpath.js';

const rootfs = mkdtempSync(join(tmpdir(), 'berth-lookpath-'));
after(() => rmSync(rootfs, { recursive: true, force: true }));
for (const d of ['usr/bin', 'usr/local/bin', 'etc', 'app']) mkdirSync(join(rootfs, d), { recursive: true });
writeFileSync(join(rootfs, 'usr/bin/busybox'), '');
chmodSync(join(rootfs, 'usr/bin/busybox'), 0o755);
writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0::/:/bin/sh\n');
writeFileSync(join(rootfs, 'usr/local/bin/tool'), ''); // present, not executable
symlinkSync('usr/bin', join(rootfs, 'bin')); // merged /usr, relative
symlinkSync('/usr/bin/busybox', join(rootfs, 'usr/bin/sh')); // absolute: inside the rootfs, never the host's
symlinkSync('../../../../../usr/bin/busybox', join(rootfs, 'app/run')); // .. stops at the rootfs
symlinkSync('loop2', join(rootfs, 'app/loop1'));
symlinkSync('loop1', join(rootfs, 'app/loop2'));
symlinkSync('/host-only', join(rootfs, 'app/escape'));

const env = ['PATH=/usr/local/bin:/bin'];

describe('resolveInRootfs', () => {
  it('follows relative and absolute links inside the rootfs', () => {
    assert.equal(resolveInRootfs(rootfs, '/bin/sh'), '/usr/bin/busybox');
    assert.equal(resolveInRootfs(rootfs, '/app/run'), '/usr/bin/busybox');
    assert.equal(resolveInRootfs(rootfs, '/app/../bin/./sh'), '/usr/bin/busybox');
  });
  it('gives up on loops and missing components', () => {
    assert.equal(resolveInRootfs(rootfs, '/app/loop1'), undefined);
    assert.equal(resolveInRootfs(rootfs, '/app/escape'), undefined, '/host-only is looked for in the rootfs');
    assert.equal(resolveInRootfs(rootfs, '/nope/x'), undefined);
  });
});

describe('commandProblem', () => {
  it('finds commands in PATH and by path', () => {
    assert.equal(commandProblem(rootfs, 'sh', env, '/', []), undefined);
    assert.equal(commandProblem(rootfs, '/app/run', env, '/', []), undefined);
    assert.equal(commandProblem(rootfs, './run', env, '/app', []), undefined);
  });
  it("says why, in the OCI runtime's words", () => {
    assert.equal(commandProblem(rootfs, 'nosuch', env, '/', []), 'exec: "nosuch": executable file not found in $PATH');
    assert.equal(commandProblem(rootfs, 'tool', env, '/', []), 'exec: "tool": executable file not found in $PATH', 'not executable: skipped, as PATH lookups do');
    assert.equal(commandProblem(rootfs, '/bin/nosuch', env, '/', []), 'exec: "/bin/nosuch": stat /bin/nosuch: no such file or directory');
    assert.equal(commandProblem(rootfs, '/etc/passwd', env, '/', []), 'exec: "/etc/passwd": permission denied');
    assert.equal(commandProblem(rootfs, 'sh', ['PATH=/nowhere'], '/', []), 'exec: "sh": executable file not found in $PATH');
  });
  it('leaves what a mount may provide to the runtime', () => {
    assert.equal(commandProblem(rootfs, '/data/run.sh', env, '/', ['/data']), undefined);
    assert.equal(commandProblem(rootfs, 'tool2', ['PATH=/bin:/opt/bin'], '/', ['/opt']), undefined);
    assert.equal(commandProblem(rootfs, 'tool2', ['PATH=/bin:/opt/bin'], '/', ['/op']), 'exec: "tool2": executable file not found in $PATH');
  });
});
