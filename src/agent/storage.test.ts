// Integration tests of where groups' writable layers and volumes live (real loop-mounted disks; needs root).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GroupDisks } from '../runtime/disk/disks.js';
import { GroupStorage } from './storage.js';

const dataDir = mkdtempSync(join(tmpdir(), 'berth-storage-'));
const disksRoot = join(dataDir, 'disks');
const limited = new GroupStorage(dataDir, new GroupDisks({ root: disksRoot, sizeBytes: 32 << 20 }));
const unlimited = new GroupStorage(dataDir, new GroupDisks({ root: disksRoot, sizeBytes: 0 }));
const mode = (p: string) => statSync(p).mode & 0o777;
const mounted = (p: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);

after(() => {
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) if (l.split(' ')[4]?.startsWith(dataDir)) execFileSync('umount', ['-l', l.split(' ')[4]]);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('GroupStorage', () => {
  it('puts writable layers and volumes on the group\'s disk, root\'s alone, and frees it all', async () => {
    await limited.claim('a1-g1');
    assert.equal(limited.scratchDir('a1-g1', 'web'), join(disksRoot, 'a1-g1', 'fs', 'containers', 'web'));
    assert.equal(limited.volumeDir('a1-g1', 'data'), join(disksRoot, 'a1-g1', 'fs', 'volumes', 'data'));
    await limited.prepareVolumes('a1-g1', [{ name: 'data', emptyDir: {} }, { name: 'creds', secret: { token: Buffer.from('s3').toString('base64') } }], '/nonexistent');
    assert.equal(mode(join(disksRoot, 'a1-g1', 'fs', 'volumes')), 0o700, 'other host users stop here');
    assert.equal(mode(limited.volumeDir('a1-g1', 'data')), 0o777, 'any user of the group writes to an emptyDir');
    assert.equal(mode(join(limited.volumeDir('a1-g1', 'creds'), 'token')), 0o444, 'any user of the group reads its secrets');
    assert.deepEqual(await limited.ids(), ['a1-g1']);
    await limited.remove('a1-g1');
    assert.deepEqual(await limited.ids(), []);
    assert.equal(mounted(join(disksRoot, 'a1-g1', 'fs')), false);
  });

  it('keeps a generation on what it began with when limits are turned on or off', async () => {
    // begun without limits: volumes in the data dir, no disk even once limits are on
    await unlimited.claim('b2-g1');
    await unlimited.prepareVolumes('b2-g1', [{ name: 'data', emptyDir: {} }], '/nonexistent');
    assert.equal(mode(join(dataDir, 'volumes')), 0o700);
    await limited.claim('b2-g1');
    assert.equal(limited.volumeDir('b2-g1', 'data'), join(dataDir, 'volumes', 'b2-g1', 'data'));
    assert.equal(limited.scratchDir('b2-g1', 'web'), undefined);
    assert.equal(mounted(join(disksRoot, 'b2-g1', 'fs')), false);

    // begun with a disk: still on it after limits are turned off, and released with the group
    await limited.claim('c3-g1');
    execFileSync('umount', [join(disksRoot, 'c3-g1', 'fs')]); // as after a reboot
    await unlimited.claim('c3-g1');
    assert.equal(mounted(join(disksRoot, 'c3-g1', 'fs')), true);
    assert.equal(unlimited.scratchDir('c3-g1', 'web'), join(disksRoot, 'c3-g1', 'fs', 'containers', 'web'));
    assert.deepEqual(await unlimited.ids(), ['b2-g1', 'c3-g1']);
    for (const id of await unlimited.ids()) await unlimited.remove(id);
    assert.deepEqual(await unlimited.ids(), []);
    assert.equal(mounted(join(disksRoot, 'c3-g1', 'fs')), false);
  });
});
