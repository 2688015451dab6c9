// End-to-end tests of the image store against a real docker-registry, real tar/zstd and a real overlay mount.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Codes, isBerthError } from '../../lib/errors.js';
import { buildImage, INDEX_HTML, pushRawImage, tarOf } from '../../../test/helpers/images.js';
import { startRegistry, type TestRegistry } from '../../../test/helpers/registry.js';
import type { PullEvent } from '../types.js';
import { ImageStore } from './store.js';

const execFileP = promisify(execFile);

let registry: TestRegistry;
const dirs: string[] = [];

before(async () => {
  registry = await startRegistry();
});

after(async () => {
  await registry?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function newStore(): Promise<ImageStore> {
  const root = await mkdtemp(join(tmpdir(), 'berth-store-test-'));
  dirs.push(root);
  return new ImageStore({ root });
}

const isCode = (code: string, text?: string) => (e: unknown) =>
  isBerthError(e) && e.code === code && (text === undefined || e.message.includes(text));

/** A layer no other image has, so per-test counts and corruption stay local. */
const unique = (): Record<string, string> => ({ '/unique.txt': randomBytes(16).toString('hex') });

const blobGetsOf = async (name: string): Promise<string[]> =>
  (await registry.blobGets()).filter((r) => r.uri.startsWith(`/v2/${name}/blobs/`)).map((r) => r.uri);

test('anonymous pull: layers unpacked, config parsed, progress reported, indexed locally', async () => {
  const img = await buildImage(registry.host, 'web', '1', {
    entrypoint: ['/bin/sh', '-c'],
    cmd: ['httpd -f -p 80 -h /www'],
    env: ['PATH=/bin', 'GREETING=hi'],
    workingDir: '/www',
    user: 'nobody',
    exposedPorts: ['80/tcp'],
  });
  const store = await newStore();
  const events: PullEvent[] = [];
  const pulled = await store.pull(img.reference, { onEvent: (e) => events.push(e) });

  assert.equal(pulled.reference, img.reference);
  assert.equal(pulled.digest, img.digest);
  assert.deepEqual(pulled.config, {
    entrypoint: ['/bin/sh', '-c'],
    cmd: ['httpd -f -p 80 -h /www'],
    env: ['PATH=/bin', 'GREETING=hi'],
    workingDir: '/www',
    user: 'nobody',
    exposedPorts: ['80/tcp'],
  });
  assert.equal(pulled.layerDirs.length, 1);
  const [layer] = pulled.layerDirs;
  assert.equal(await readFile(join(layer!, 'www/index.html'), 'utf8'), INDEX_HTML);
  assert.ok((await stat(join(layer!, 'bin/busybox'))).mode & 0o111, 'busybox stays executable');
  assert.ok(pulled.size > 500_000);

  assert.equal(events[0]?.type, 'resolved');
  assert.equal(events.at(-1)?.type, 'done');
  const layerEvents = events.filter((e): e is Extract<PullEvent, { type: 'layer' }> => e.type === 'layer');
  assert.ok(layerEvents.length >= 1);
  assert.equal(layerEvents.at(-1)?.doneBytes, layerEvents.at(-1)?.totalBytes);

  assert.deepEqual(await store.get(img.reference), pulled);
  assert.deepEqual(await store.get(`${img.reference.split(':').slice(0, 2).join(':')}@${img.digest}`), {
    ...pulled,
    reference: `${registry.host}/web@${img.digest}`,
  });
  assert.equal(await store.get(`${registry.host}/web:2`), undefined);
  assert.deepEqual(await store.list(), [pulled]);
  // A new store object on the same root sees the same images (the index is on disk).
  assert.deepEqual(await new ImageStore({ root: store.root }).get(img.reference), pulled);
});

test('missing config fields become empty values', async () => {
  const img = await buildImage(registry.host, 'bare', '1', { env: [] });
  const pulled = await (await newStore()).pull(img.reference);
  assert.deepEqual(pulled.config, { entrypoint: [], cmd: [], env: [], workingDir: '', user: '', exposedPorts: [] });
});

test('second pull downloads no blobs and reports layers as cached', async () => {
  const img = await buildImage(registry.host, 'again', '1', { files: unique() });
  const store = await newStore();
  const first = await store.pull(img.reference);
  const before = (await blobGetsOf('again')).length;
  assert.equal(before, 3, 'config + 2 layers');

  const events: PullEvent[] = [];
  const second = await store.pull(img.reference, { onEvent: (e) => events.push(e) });
  const byDigest = await store.pull(`${registry.host}/again@${img.digest}`);
  assert.deepEqual(second, first);
  assert.deepEqual(byDigest.layerDirs, first.layerDirs);
  assert.equal((await blobGetsOf('again')).length, before, 'no blob GETs on re-pull');
  const layerEvents = events.filter((e) => e.type === 'layer');
  assert.equal(layerEvents.length, 2);
  assert.ok(layerEvents.every((e) => e.type === 'layer' && e.cached));
});

test('concurrent pulls of one image share the downloads and the unpacking', async () => {
  const img = await buildImage(registry.host, 'together', '1', { files: unique() });
  const store = await newStore();
  const otherStoreSameRoot = new ImageStore({ root: store.root });
  const results = await Promise.all([
    store.pull(img.reference),
    store.pull(img.reference),
    otherStoreSameRoot.pull(img.reference),
  ]);
  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(results[2], results[0]);
  const gets = await blobGetsOf('together');
  assert.equal(gets.length, 3, `each blob fetched once, got ${gets.join(', ')}`);
  assert.equal(new Set(gets).size, 3);
  const layers = (await readdir(join(store.root, 'layers'))).sort();
  assert.deepEqual(layers, results[0]!.layerDirs.map((d) => d.split('/').pop()).sort(), 'no temp dirs left');
});

test('image index: linux/amd64 is selected', async () => {
  const img = await buildImage(registry.host, 'multi', '1', { index: true, cmd: ['echo', 'amd64'] });
  const store = await newStore();
  const pulled = await store.pull(img.reference);
  assert.notEqual(img.digest, img.platforms['linux/amd64']);
  assert.equal(pulled.digest, img.platforms['linux/amd64']);
  assert.deepEqual(pulled.config.cmd, ['echo', 'amd64']);
  // By the index digest too, and locally resolvable afterwards.
  const byIndex = await store.pull(`${registry.host}/multi@${img.digest}`);
  assert.equal(byIndex.digest, img.platforms['linux/amd64']);
  assert.equal((await store.get(`${registry.host}/multi@${img.digest}`))?.digest, img.platforms['linux/amd64']);
});

test('zstd and gzip layers both unpack', async () => {
  const files = { '/etc/motd': 'compressed\n', ...unique() };
  const zstd = await buildImage(registry.host, 'zimg', '1', { compress: 'zstd', files });
  const gzip = await buildImage(registry.host, 'gimg', '1', { compress: 'gzip', files });
  const store = await newStore();
  for (const img of [zstd, gzip]) {
    const pulled = await store.pull(img.reference);
    const manifest = JSON.parse(await readFile(store.blobPath(pulled.digest), 'utf8'));
    const wantType = img === zstd ? 'application/vnd.oci.image.layer.v1.tar+zstd' : 'application/vnd.oci.image.layer.v1.tar+gzip';
    assert.ok(manifest.layers.every((l: { mediaType: string }) => l.mediaType === wantType), JSON.stringify(manifest.layers));
    assert.equal(await readFile(join(pulled.layerDirs[1]!, 'etc/motd'), 'utf8'), 'compressed\n');
    assert.equal(await readFile(join(pulled.layerDirs[0]!, 'www/index.html'), 'utf8'), INDEX_HTML);
  }
});

test('whiteouts become overlayfs whiteouts and an overlay mount hides removed files', async () => {
  const img = await buildImage(registry.host, 'wh', '1', {
    removeInSecondLayer: ['/etc/group', '/bin/yes'],
    opaqueDirInSecondLayer: '/www',
    files: { '/www/new.html': 'new\n' },
  });
  const store = await newStore();
  const pulled = await store.pull(img.reference);
  const [l1, l2] = pulled.layerDirs as [string, string];

  const dev = await stat(join(l2, 'etc/group'));
  assert.ok(dev.isCharacterDevice(), 'whiteout is a character device');
  assert.equal(dev.rdev, 0, 'device 0:0');
  assert.ok(!existsSync(join(l2, 'etc/.wh.group')), 'OCI whiteout marker removed');
  assert.ok(!existsSync(join(l2, 'www/.wh..wh..opq')), 'opaque marker removed');
  const { stdout } = await execFileP('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', join(l2, 'www')]);
  assert.equal(stdout, 'y');

  const work = await mkdtemp(join(tmpdir(), 'berth-overlay-test-'));
  dirs.push(work);
  const [upper, wdir, target] = ['upper', 'work', 'merged'].map((d) => join(work, d)) as [string, string, string];
  for (const d of [upper, wdir, target]) await mkdir(d);
  await execFileP('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${l2}:${l1},upperdir=${upper},workdir=${wdir}`, target]);
  try {
    assert.ok(!existsSync(join(target, 'etc/group')), 'removed file is hidden');
    assert.ok(!existsSync(join(target, 'bin/yes')), 'removed symlink is hidden');
    assert.ok(existsSync(join(target, 'etc/passwd')), 'sibling still visible');
    assert.deepEqual(await readdir(join(target, 'www')), ['new.html'], 'opaque dir shows only the new layer');
    assert.ok(existsSync(join(target, 'bin/busybox')));
  } finally {
    await execFileP('umount', [target]);
  }
  // Lower layers stay untouched by the mount.
  assert.ok(existsSync(join(l1, 'etc/group')));
});

test('a corrupt blob in the registry is a DigestMismatch and leaves nothing half-unpacked', async () => {
  const img = await buildImage(registry.host, 'corrupt', '1', { files: { '/big.bin': randomBytes(200_000).toString('base64') } });
  const manifest = JSON.parse(
    await (await fetch(`http://${registry.host}/v2/corrupt/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).text(),
  );
  const victim: string = manifest.layers[1].digest;
  const hex = victim.slice(7);
  const data = join(registry.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  const fh = await open(data, 'r+');
  try {
    // Same size, different bytes: only a digest check can notice.
    await fh.write(Buffer.from('corrupted!'), 0, 10, 100);
  } finally {
    await fh.close();
  }

  const store = await newStore();
  await assert.rejects(store.pull(img.reference), isCode(Codes.DigestMismatch, victim));
  const layers = await readdir(join(store.root, 'layers'));
  assert.ok(!layers.includes(hex), 'no unpacked dir for the corrupt layer');
  assert.deepEqual(layers.filter((n) => n.startsWith('.tmp-')), [], 'no temp dirs');
  const blobs = await readdir(join(store.root, 'blobs/sha256'));
  assert.ok(!blobs.includes(hex), 'corrupt blob not stored');
  assert.deepEqual(blobs.filter((n) => n.includes('.tmp-')), [], 'no temp files');
  assert.equal(await store.get(img.reference), undefined);
});

test('temp dirs left by a crash are cleaned on next use', async () => {
  const img = await buildImage(registry.host, 'crash', '1');
  const store = await newStore();
  await mkdir(join(store.root, 'layers'), { recursive: true });
  // pid 2^22+1 is above the kernel's pid_max limit, so never alive.
  const stale = join(store.root, 'layers', `.tmp-${'a'.repeat(64)}-4194305-deadbeef`);
  await mkdir(join(stale, 'half'), { recursive: true });
  await writeFile(join(stale, 'half/file'), 'x');
  await store.pull(img.reference);
  assert.ok(!existsSync(stale));
});

test('unknown image, unknown registry and invalid reference give catalogue errors naming the image', async () => {
  const store = await newStore();
  await assert.rejects(store.pull(`${registry.host}/nope:1`), isCode(Codes.InaccessibleImage, `${registry.host}/nope:1`));
  await assert.rejects(store.pull(`${registry.host}/web:missing`), isCode(Codes.InaccessibleImage, 'not found'));
  await assert.rejects(store.pull('127.0.0.1:1/x:1'), isCode(Codes.InaccessibleImage, '127.0.0.1:1'));
  await assert.rejects(store.pull('Not A Reference'), isCode(Codes.InvalidImage));
  await assert.rejects(store.get('::bad'), isCode(Codes.InvalidImage));
});

test('token-auth registry: pull with credentials; clear RegistryUnauthorized without or with wrong ones', async () => {
  const users = [{ username: 'alice', password: 's3cret' }];
  const reg = await startRegistry({ auth: 'token', users });
  try {
    const img = await buildImage(reg.host, 'private/app', 'v1', { credentials: users[0], files: unique() });
    const store = await newStore();
    await assert.rejects(store.pull(img.reference), isCode(Codes.RegistryUnauthorized, 'requires credentials'));
    await assert.rejects(
      store.pull(img.reference, { credentials: [{ server: reg.host, username: 'alice', password: 'wrong' }] }),
      isCode(Codes.RegistryUnauthorized, 'alice'),
    );
    // Credentials for another server are not sent here.
    await assert.rejects(
      store.pull(img.reference, { credentials: [{ server: 'elsewhere.example', username: 'alice', password: 's3cret' }] }),
      isCode(Codes.RegistryUnauthorized),
    );
    const pulled = await store.pull(img.reference, {
      credentials: [{ server: `http://${reg.host}/`, username: 'alice', password: 's3cret' }],
    });
    assert.equal(pulled.digest, img.digest);
    assert.equal(pulled.layerDirs.length, 2);
  } finally {
    await reg.stop();
  }
});

test('compression is detected by magic bytes when registries mislabel layers; Docker v2 manifests work', async () => {
  const plain = await tarOf({ '/a/plain.txt': 'plain\n' });
  const gz = gzipSync(await tarOf({ '/a/gz.txt': 'gz\n' }));
  const zst = await new Promise<Buffer>((resolve, reject) => {
    const child = execFile('zstd', ['-c', '-q'], { encoding: 'buffer' }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    tarOf({ '/a/zst.txt': 'zst\n' }).then((t) => child.stdin!.end(t), reject);
  });
  const img = await pushRawImage(
    registry.host,
    'liars',
    '1',
    [
      { data: plain, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' },
      { data: gz, mediaType: 'application/vnd.docker.image.rootfs.diff.tar' },
      { data: zst, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' },
    ],
    { docker: true, config: { Cmd: ['cat', '/a/plain.txt'], WorkingDir: '/a' } },
  );
  const pulled = await (await newStore()).pull(img.reference);
  assert.equal(pulled.digest, img.digest);
  assert.deepEqual(pulled.config.cmd, ['cat', '/a/plain.txt']);
  assert.equal(pulled.config.workingDir, '/a');
  assert.equal(await readFile(join(pulled.layerDirs[0]!, 'a/plain.txt'), 'utf8'), 'plain\n');
  assert.equal(await readFile(join(pulled.layerDirs[1]!, 'a/gz.txt'), 'utf8'), 'gz\n');
  assert.equal(await readFile(join(pulled.layerDirs[2]!, 'a/zst.txt'), 'utf8'), 'zst\n');
});

test('layers of an unknown media type are refused before anything is downloaded', async () => {
  const img = await pushRawImage(registry.host, 'helm', '1', [{ data: Buffer.from('chart'), mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip' }]);
  await assert.rejects((await newStore()).pull(img.reference), isCode(Codes.UnsupportedMediaType, 'helm'));
  assert.deepEqual(await blobGetsOf('helm'), []);
});

test('a layer listed twice is unpacked once and kept at its topmost position', async () => {
  const a = await tarOf({ '/a.txt': 'a\n' });
  const b = await tarOf({ '/b.txt': 'b\n' });
  const img = await pushRawImage(registry.host, 'twice', '1', [
    { data: a, mediaType: 'application/vnd.oci.image.layer.v1.tar' },
    { data: b, mediaType: 'application/vnd.oci.image.layer.v1.tar' },
    { data: a, mediaType: 'application/vnd.oci.image.layer.v1.tar' },
  ]);
  const pulled = await (await newStore()).pull(img.reference);
  assert.equal(pulled.layerDirs.length, 2);
  assert.ok(existsSync(join(pulled.layerDirs[0]!, 'b.txt')));
  assert.ok(existsSync(join(pulled.layerDirs[1]!, 'a.txt')));
  assert.equal(new Set(await blobGetsOf('twice')).size, (await blobGetsOf('twice')).length, 'each blob fetched once');
});
