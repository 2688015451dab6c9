// Test helper: builds busybox-static images with umoci and pushes them with skopeo to a test registry.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const INDEX_HTML = '<html><body>hello from berth</body></html>\n';

export const APPLETS = [
  'sh', 'ash', 'ls', 'cat', 'echo', 'sleep', 'httpd', 'wget', 'true', 'false', 'env', 'id', 'nc', 'head', 'tail',
  'ps', 'mkdir', 'rm', 'touch', 'hostname', 'ip', 'ifconfig', 'dd', 'yes', 'seq', 'grep', 'sed', 'awk', 'cp', 'mv',
  'ln', 'chmod', 'kill', 'pwd', 'date', 'wc', 'sort', 'uname', 'whoami', 'printf', 'test', 'stat', 'mount', 'df',
  'free', 'top', 'nslookup', 'ping', 'netstat', 'route', 'sync', 'vi', 'tr', 'cut', 'find', 'xargs', 'uptime',
  'stty', 'tty',
];

export interface BuildImageOptions {
  cmd?: string[];
  entrypoint?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  exposedPorts?: string[];
  /** Path in image -> content; written into a second layer. */
  files?: Record<string, string>;
  /** Paths whited out in the second layer. */
  removeInSecondLayer?: string[];
  /** A directory made opaque in the second layer (give it new content through `files`). */
  opaqueDirInSecondLayer?: string;
  compress?: 'gzip' | 'zstd';
  /** Push an image index holding linux/arm64 (first) and linux/amd64. */
  index?: boolean;
  /** For registries that want credentials for pushes. */
  credentials?: { username: string; password: string };
}

export interface BuiltImage {
  reference: string;
  /** Digest of what the tag points at (the index when `index` was set). */
  digest: string;
  /** Digests of the platform manifests, e.g. {"linux/amd64": "sha256:…"} (same as `digest` without an index). */
  platforms: Record<string, string>;
}

interface Workspace {
  dir: string;
  /** OCI layout with tag "base": busybox and friends in one layer. */
  layout: string;
}

let workspace: Promise<Workspace> | undefined;
let counter = 0;
/** umoci and our own index.json edits must not interleave. */
let queue: Promise<unknown> = Promise.resolve();

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The busybox rootfs layout, built once per process (it is the same for every image). */
function getWorkspace(): Promise<Workspace> {
  workspace ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-images-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const rootfs = join(dir, 'rootfs');
    for (const d of ['bin', 'etc', 'www', 'tmp', 'root', 'proc', 'sys', 'dev', 'var/www']) {
      await mkdir(join(rootfs, d), { recursive: true, mode: 0o755 });
    }
    await chmod(join(rootfs, 'tmp'), 0o1777);
    await copyFile('/bin/busybox', join(rootfs, 'bin/busybox'));
    await chmod(join(rootfs, 'bin/busybox'), 0o755);
    for (const a of APPLETS) await symlink('busybox', join(rootfs, 'bin', a));
    await writeFile(join(rootfs, 'www/index.html'), INDEX_HTML);
    await writeFile(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
    const layout = join(dir, 'layout');
    await umoci('init', '--layout', layout);
    await umoci('new', '--image', `${layout}:base`);
    // umoci 0.4.7's `insert` writes a truncated tar (no end-of-archive blocks): build the tar ourselves.
    const baseTar = join(dir, 'base.tar');
    await tarDir(rootfs, baseTar);
    await umoci('raw', 'add-layer', '--no-history', '--image', `${layout}:base`, baseTar);
    return { dir, layout };
  })();
  return workspace;
}

async function umoci(...args: string[]): Promise<void> {
  await execFileP('umoci', args);
}

async function skopeo(...args: string[]): Promise<void> {
  try {
    await execFileP('skopeo', args);
  } catch (e) {
    throw new Error(`skopeo ${args.join(' ')} failed: ${(e as { stderr?: string }).stderr ?? e}`);
  }
}

/** Builds an image from busybox-static and pushes it as registryHost/name:tag. Target: well under 2 s. */
export function buildImage(registryHost: string, name: string, tag: string, opts: BuildImageOptions = {}): Promise<BuiltImage> {
  const run = queue.then(() => build(registryHost, name, tag, opts));
  queue = run.catch(() => undefined);
  return run;
}

async function build(registryHost: string, name: string, tag: string, opts: BuildImageOptions): Promise<BuiltImage> {
  const ws = await getWorkspace();
  const id = `b${++counter}`;
  const scratch = await mkdtemp(join(ws.dir, `${id}-`));
  try {
    const hasSecondLayer = opts.files || opts.removeInSecondLayer?.length || opts.opaqueDirInSecondLayer;
    if (hasSecondLayer) {
      const layerTar = join(scratch, 'layer.tar');
      await writeSecondLayer(join(scratch, 'layer'), layerTar, opts);
      await umoci('raw', 'add-layer', '--no-history', '--image', `${ws.layout}:base`, '--tag', id, layerTar);
    }
    const configArgs = ['config', '--no-history', '--image', `${ws.layout}:${hasSecondLayer ? id : 'base'}`];
    if (!hasSecondLayer) configArgs.push('--tag', id);
    for (const c of opts.cmd ?? []) configArgs.push('--config.cmd', c);
    for (const e of opts.entrypoint ?? []) configArgs.push('--config.entrypoint', e);
    for (const e of opts.env ?? ['PATH=/bin']) configArgs.push('--config.env', e);
    for (const p of opts.exposedPorts ?? []) configArgs.push('--config.exposedports', p);
    if (opts.workingDir) configArgs.push('--config.workingdir', opts.workingDir);
    if (opts.user) configArgs.push('--config.user', opts.user);
    await umoci(...configArgs);

    let layout = ws.layout;
    let srcTag = id;
    if (opts.index) srcTag = await addIndex(ws.layout, id);
    if (opts.compress === 'zstd') {
      // A separate layout per image: skopeo's recompression writes new blobs and an index.json of its own.
      layout = join(scratch, 'zstd');
      await skopeo('copy', ...(opts.index ? ['--all'] : []), '--dest-compress', '--dest-compress-format', 'zstd', `oci:${ws.layout}:${srcTag}`, `oci:${layout}:${srcTag}`);
    }

    const digestFile = join(scratch, 'digest');
    const pushArgs = ['copy', '--dest-tls-verify=false', '--digestfile', digestFile];
    if (opts.index) pushArgs.push('--all');
    if (opts.credentials) pushArgs.push('--dest-creds', `${opts.credentials.username}:${opts.credentials.password}`);
    pushArgs.push(`oci:${layout}:${srcTag}`, `docker://${registryHost}/${name}:${tag}`);
    await skopeo(...pushArgs);
    const digest = (await readFile(digestFile, 'utf8')).trim();
    return { reference: `${registryHost}/${name}:${tag}`, digest, platforms: await platformsOf(layout, srcTag, digest) };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The second layer: extra files, `.wh.` whiteouts and an opaque-directory marker, as OCI layer tar. */
async function writeSecondLayer(dir: string, tarPath: string, opts: BuildImageOptions): Promise<void> {
  await mkdir(dir, { mode: 0o755 });
  const put = async (path: string, content: string): Promise<void> => {
    const full = join(dir, path.replace(/^\/+/, ''));
    await mkdir(dirname(full), { recursive: true, mode: 0o755 });
    await writeFile(full, content, { mode: 0o644 });
  };
  if (opts.opaqueDirInSecondLayer) await put(join(opts.opaqueDirInSecondLayer, '.wh..wh..opq'), '');
  for (const p of opts.removeInSecondLayer ?? []) {
    const clean = p.replace(/^\/+/, '');
    await put(join(dirname(clean), `.wh.${clean.split('/').pop()}`), '');
  }
  for (const [path, content] of Object.entries(opts.files ?? {})) await put(path, content);
  await tarDir(dir, tarPath);
}

/** Owner 0:0 and a fixed mtime make layers reproducible: equal inputs give equal layer digests. */
async function tarDir(dir: string, tarPath: string): Promise<void> {
  const top = (await readdir(dir)).sort();
  await execFileP('tar', ['-c', '-f', tarPath, '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '--sort=name', '-C', dir, ...top]);
}

interface OciIndexJson {
  schemaVersion: number;
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: Record<string, string> }[];
}

async function readIndexJson(layout: string): Promise<OciIndexJson> {
  return JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
}

function findTag(index: OciIndexJson, tag: string) {
  const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!d) throw new Error(`tag ${tag} not in layout`);
  return d;
}

async function writeBlob(layout: string, body: Buffer): Promise<{ digest: string; size: number }> {
  const hex = sha256(body);
  await writeFile(join(layout, 'blobs/sha256', hex), body);
  return { digest: `sha256:${hex}`, size: body.length };
}

/** Adds tag `<id>-index`: an OCI index of an arm64 twin (Cmd ["echo","arm64"]) listed first, then the amd64 image. */
async function addIndex(layout: string, id: string): Promise<string> {
  const idx = await readIndexJson(layout);
  const amd64 = findTag(idx, id);
  const manifest = JSON.parse(await readFile(join(layout, 'blobs/sha256', amd64.digest.slice(7)), 'utf8'));
  const config = JSON.parse(await readFile(join(layout, 'blobs/sha256', manifest.config.digest.slice(7)), 'utf8'));
  config.architecture = 'arm64';
  config.config = { ...config.config, Cmd: ['echo', 'arm64'] };
  const armConfig = await writeBlob(layout, Buffer.from(JSON.stringify(config)));
  const armManifest = await writeBlob(
    layout,
    Buffer.from(JSON.stringify({ ...manifest, config: { ...manifest.config, ...armConfig } })),
  );
  const mt = 'application/vnd.oci.image.manifest.v1+json';
  const imageIndex = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: mt, ...armManifest, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
      { mediaType: mt, digest: amd64.digest, size: amd64.size, platform: { architecture: 'amd64', os: 'linux' } },
    ],
  };
  const indexBlob = await writeBlob(layout, Buffer.from(JSON.stringify(imageIndex)));
  const tag = `${id}-index`;
  idx.manifests.push({
    mediaType: 'application/vnd.oci.image.index.v1+json',
    ...indexBlob,
    annotations: { 'org.opencontainers.image.ref.name': tag },
  });
  await writeFile(join(layout, 'index.json'), JSON.stringify(idx));
  return tag;
}

/** Platform manifest digests of what was pushed (skopeo pushes OCI manifests byte for byte). */
async function platformsOf(layout: string, tag: string, pushed: string): Promise<Record<string, string>> {
  const top = findTag(await readIndexJson(layout), tag);
  if (top.mediaType !== 'application/vnd.oci.image.index.v1+json') return { 'linux/amd64': pushed };
  const index: OciIndexJson = JSON.parse(await readFile(join(layout, 'blobs/sha256', top.digest.slice(7)), 'utf8'));
  return Object.fromEntries(index.manifests.map((m) => [`${m.platform?.os}/${m.platform?.architecture}`, m.digest]));
}

export interface RawLayer {
  /** Bytes exactly as pushed (compressed or not: the point is that they may not match `mediaType`). */
  data: Buffer;
  mediaType: string;
}

/**
 * Pushes hand-made blobs and a manifest through the distribution API (open registries only), for
 * cases skopeo will not produce: mislabelled layers, Docker v2 manifests.
 */
export async function pushRawImage(
  registryHost: string,
  name: string,
  tag: string,
  layers: RawLayer[],
  opts: { docker?: boolean; config?: Record<string, unknown> } = {},
): Promise<BuiltImage> {
  const base = `http://${registryHost}/v2/${name}`;
  const upload = async (body: Buffer): Promise<{ digest: string; size: number }> => {
    const digest = `sha256:${sha256(body)}`;
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST' });
    await start.body?.cancel();
    if (start.status !== 202) throw new Error(`upload start: ${start.status}`);
    const loc = new URL(start.headers.get('location')!, `http://${registryHost}`);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, { method: 'PUT', body: new Uint8Array(body), headers: { 'content-type': 'application/octet-stream' } });
    await put.body?.cancel();
    if (put.status !== 201) throw new Error(`upload: ${put.status}`);
    return { digest, size: body.length };
  };
  const diffIds = layers.map(() => `sha256:${'0'.repeat(64)}`);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: opts.config ?? {},
      rootfs: { type: 'layers', diff_ids: diffIds },
    }),
  );
  const configDesc = await upload(config);
  const layerDescs = [];
  for (const l of layers) layerDescs.push({ mediaType: l.mediaType, ...(await upload(l.data)) });
  const manifestType = opts.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestType,
      config: {
        mediaType: opts.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
        ...configDesc,
      },
      layers: layerDescs,
    }),
  );
  const res = await fetch(`${base}/manifests/${tag}`, { method: 'PUT', body: new Uint8Array(manifest), headers: { 'content-type': manifestType } });
  await res.body?.cancel();
  if (res.status !== 201) throw new Error(`manifest put: ${res.status}`);
  const digest = `sha256:${sha256(manifest)}`;
  return { reference: `${registryHost}/${name}:${tag}`, digest, platforms: { 'linux/amd64': digest } };
}

/** A plain tar of `files` (path -> content), owned by 0:0. */
export async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-tar-'));
  try {
    const out = join(dir, 'out.tar');
    const root = join(dir, 'root');
    await mkdir(root, { mode: 0o755 });
    for (const [path, content] of Object.entries(files)) {
      const full = join(root, path.replace(/^\/+/, ''));
      await mkdir(dirname(full), { recursive: true, mode: 0o755 });
      await writeFile(full, content);
    }
    await tarDir(root, out);
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
