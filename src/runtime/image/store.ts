// Content-addressed local image store: pulls from registries, verifies every blob, unpacks each layer once for overlayfs.

import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BerthError, Codes, isBerthError } from '../../lib/errors.js';
import type { ImageConfig, PulledImage, PullEvent, PullOptions } from '../types.js';
import { formatReference, manifestReference, parseReference } from '../../lib/image-reference.js';
import {
  DEFAULT_PLATFORM,
  isIndexType,
  manifestKind,
  selectPlatform,
  sha256Hex,
  validateImageManifest,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from './manifest.js';
import { RegistryClient } from './registry.js';
import { TokenCache, credentialsFor } from './registry-auth.js';
import { TMP_PREFIX, atomicWrite, exists, ownerAlive, readFileOrUndefined, readJson } from './store-files.js';
import { unpackLayerInto } from './unpack.js';

export interface ImageStoreOptions {
  root: string;
  insecureRegistries?: string[];
}

/** Work on one digest (a download or an unpack) in flight in this process, shared by every pull that needs it. */
interface Job {
  promise: Promise<void>;
  listeners: Set<(doneBytes: number) => void>;
}

/** Process-wide, so two ImageStore objects on one root still download and unpack a digest once. */
const jobs = new Map<string, Job>();

interface RefRecord {
  reference: string;
  digest: string;
  pulledAt: string;
  /** True once the reference was pulled with no credentials: anyone may use the local copy. */
  anonymous?: boolean;
}

export class ImageStore {
  readonly root: string;
  private readonly insecureRegistries: string[];
  private readonly blobDir: string;
  private readonly layerDir: string;
  private readonly refDir: string;
  private readonly tokenCache = new TokenCache();
  private ready: Promise<void> | undefined;

  constructor(opts: ImageStoreOptions) {
    this.root = resolve(opts.root);
    this.insecureRegistries = opts.insecureRegistries ?? [];
    this.blobDir = join(this.root, 'blobs', 'sha256');
    this.layerDir = join(this.root, 'layers');
    this.refDir = join(this.root, 'refs');
  }

  /** Path of the unpacked directory of a layer (exists only once the layer is complete). */
  layerPath(digest: string): string {
    return join(this.layerDir, digest.slice('sha256:'.length));
  }

  blobPath(digest: string): string {
    return join(this.blobDir, digest.slice('sha256:'.length));
  }

  /** Pulls `ref` (manifest always asked from the registry, so access is re-checked); blobs and layers already present are reused. */
  async pull(ref: string, opts: PullOptions = {}): Promise<PulledImage> {
    const parsed = parseReference(ref);
    const reference = formatReference(parsed);
    await this.init();
    const emit = (e: PullEvent): void => {
      try {
        opts.onEvent?.(e);
      } catch {
        // A faulty progress listener must not fail the pull.
      }
    };
    const client = new RegistryClient(parsed.registry, {
      insecureRegistries: this.insecureRegistries,
      credentials: opts.credentials,
      tokenCache: this.tokenCache,
      signal: opts.signal,
    });
    const resolved = await client.resolveManifest(parsed.repository, manifestReference(parsed), reference, DEFAULT_PLATFORM);
    const manifest = resolved.manifest;
    validateImageManifest(manifest, reference);
    if (resolved.index) await this.putBlob(resolved.index.digest, resolved.index.body);
    await this.putBlob(resolved.digest, resolved.body);

    const totalBytes = manifest.layers.reduce((n, l) => n + l.size, 0);
    emit({ type: 'resolved', reference, digest: resolved.digest, layers: manifest.layers.length, totalBytes });

    const configDigest = manifest.config.digest;
    const configJob = this.shared(`blob:${this.blobPath(configDigest)}`, async () => {
      if (await exists(this.blobPath(configDigest))) return;
      await this.putBlob(configDigest, await client.getBlob(parsed.repository, configDigest, reference));
    });
    const layerJobs = manifest.layers.map(async (layer) => {
      const dir = this.layerPath(layer.digest);
      if (await exists(dir)) {
        emit({ type: 'layer', digest: layer.digest, doneBytes: layer.size, totalBytes: layer.size, cached: true });
        return;
      }
      const progress = (doneBytes: number): void =>
        emit({ type: 'layer', digest: layer.digest, doneBytes, totalBytes: layer.size, cached: false });
      await this.shared(
        `layer:${dir}`,
        async () => {
          if (await exists(dir)) return;
          const blob = this.blobPath(layer.digest);
          await this.shared(
            `blob:${blob}`,
            async (notify) => {
              if (await exists(blob)) return;
              await client.downloadBlob(parsed.repository, layer, blob, reference, notify);
            },
            progress,
          );
          await this.unpackLayer(layer, reference);
        },
        undefined,
      );
      emit({ type: 'layer', digest: layer.digest, doneBytes: layer.size, totalBytes: layer.size, cached: false });
    });
    // allSettled first so no job is left running unobserved when one fails.
    const results = await Promise.allSettled([configJob, ...layerJobs]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    const image = await this.imageFromManifest(reference, resolved.digest);
    if (!image) throw new BerthError(Codes.InternalServerError, `The image '${reference}' was pulled but is incomplete in the store.`, 500);
    await this.writeRef(reference, resolved.digest, !credentialsFor(parsed.registry, opts.credentials));
    emit({ type: 'done', reference, digest: resolved.digest });
    return image;
  }

  /**
   * The image as stored locally (no network); undefined when it was never pulled or is incomplete.
   * With `anonymousOnly`, only images that were pulled without credentials: a private image on the
   * host must not be usable by someone who could not pull it.
   */
  async get(ref: string, opts: { anonymousOnly?: boolean } = {}): Promise<PulledImage | undefined> {
    const parsed = parseReference(ref);
    const reference = formatReference(parsed);
    const record = await this.readRef(reference);
    if (record && opts.anonymousOnly && !record.anonymous) return undefined;
    if (record) return this.imageFromManifest(reference, record.digest);
    if (parsed.digest && !opts.anonymousOnly) {
      // Pinned references need no index entry: the digest says everything.
      return this.imageFromManifest(reference, await this.platformManifestDigest(parsed.digest));
    }
    return undefined;
  }

  /** Every reference in the local index whose image is complete. */
  async list(): Promise<PulledImage[]> {
    let names: string[];
    try {
      names = await readdir(this.refDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const images: PulledImage[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith('.json') || name.startsWith(TMP_PREFIX)) continue;
      const record = await readJson<RefRecord>(join(this.refDir, name));
      if (!record) continue;
      const image = await this.imageFromManifest(record.reference, record.digest);
      if (image) images.push(image);
    }
    return images;
  }

  private init(): Promise<void> {
    this.ready ??= (async () => {
      await Promise.all([this.blobDir, this.layerDir, this.refDir].map((d) => mkdir(d, { recursive: true })));
      // Leftovers of a crash mid-download or mid-unpack: only ever temp names, never a half-complete final path.
      for (const dir of [this.blobDir, this.layerDir, this.refDir]) {
        for (const name of await readdir(dir)) {
          if (!name.includes(TMP_PREFIX)) continue;
          const path = join(dir, name);
          if (ownerAlive(name)) continue;
          await rm(path, { recursive: true, force: true });
        }
      }
    })().catch((e) => {
      this.ready = undefined;
      throw e;
    });
    return this.ready;
  }

  /** Runs `work` once per key across concurrent callers; each caller's progress listener hears the shared work. */
  private shared(key: string, work: (notify: (doneBytes: number) => void) => Promise<void>, listener?: (n: number) => void): Promise<void> {
    let job = jobs.get(key);
    if (!job) {
      const listeners = new Set<(n: number) => void>();
      const notify = (n: number): void => listeners.forEach((l) => l(n));
      const promise = work(notify).finally(() => jobs.delete(key));
      job = { promise, listeners };
      jobs.set(key, job);
    }
    if (listener) {
      const j = job;
      j.listeners.add(listener);
      return j.promise.finally(() => j.listeners.delete(listener));
    }
    return job.promise;
  }

  /** Writes a small verified blob (manifest, config) atomically. */
  private async putBlob(digest: string, body: Buffer): Promise<void> {
    const path = this.blobPath(digest);
    if (`sha256:${sha256Hex(body)}` !== digest) {
      throw new BerthError(Codes.DigestMismatch, `Content for ${digest} does not match its digest.`, 502);
    }
    if (await exists(path)) return;
    await atomicWrite(path, body);
  }

  /** Decompresses and extracts a downloaded layer into a temp dir, converts whiteouts, then renames it into place. */
  private async unpackLayer(layer: Descriptor, reference: string): Promise<void> {
    const final = this.layerPath(layer.digest);
    const tmp = `${join(this.layerDir, TMP_PREFIX)}${layer.digest.slice(7)}-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await mkdir(tmp, { mode: 0o755 });
      await unpackLayerInto(this.blobPath(layer.digest), tmp);
      try {
        await rename(tmp, final);
      } catch (e) {
        // Another process finished the same layer first; its copy is as good as ours.
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      }
    } catch (e) {
      if (isBerthError(e)) throw e;
      throw new BerthError(Codes.InaccessibleImage, `Layer ${layer.digest} of '${reference}' could not be unpacked: ${(e as Error).message}`);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /** When `digest` is an index stored locally, the linux/amd64 manifest's digest; else `digest` itself. */
  private async platformManifestDigest(digest: string): Promise<string> {
    const body = await readFileOrUndefined(this.blobPath(digest));
    if (!body) return digest;
    try {
      const { mediaType, json } = manifestKind(body, undefined);
      if (isIndexType(mediaType)) return selectPlatform(json as ImageIndex, DEFAULT_PLATFORM, digest).digest;
    } catch {
      // Not a manifest we understand: let imageFromManifest decide.
    }
    return digest;
  }

  /** Builds a PulledImage from local blobs; undefined if anything it needs is missing. */
  private async imageFromManifest(reference: string, digest: string): Promise<PulledImage | undefined> {
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) return undefined;
    const body = await readFileOrUndefined(this.blobPath(digest));
    if (!body) return undefined;
    let manifest: ImageManifest;
    try {
      const kind = manifestKind(body, undefined);
      if (isIndexType(kind.mediaType)) return undefined;
      manifest = kind.json;
    } catch {
      return undefined;
    }
    const configBody = await readFileOrUndefined(this.blobPath(manifest.config.digest));
    if (!configBody) return undefined;
    // A layer listed twice (old images repeat the empty layer) would be an overlapping lowerdir for
    // overlayfs; its topmost occurrence already shadows the lower one completely, so only that is kept.
    const layerDirs = manifest.layers
      .map((l) => this.layerPath(l.digest))
      .filter((dir, i, all) => all.indexOf(dir, i + 1) === -1);
    for (const dir of layerDirs) if (!(await exists(dir))) return undefined;
    return {
      reference,
      digest,
      config: parseImageConfig(configBody),
      layerDirs,
      size: manifest.layers.reduce((n, l) => n + l.size, 0),
    };
  }

  private refPath(reference: string): string {
    const encoded = encodeURIComponent(reference);
    // File names stop at 255 bytes; very long references fall back to a hash (the JSON keeps the reference).
    return join(this.refDir, `${encoded.length <= 200 ? encoded : sha256Hex(reference)}.json`);
  }

  private async readRef(reference: string): Promise<RefRecord | undefined> {
    const record = await readJson<RefRecord>(this.refPath(reference));
    return record && record.reference === reference ? record : undefined;
  }

  private async writeRef(reference: string, digest: string, anonymous: boolean): Promise<void> {
    await mkdir(this.refDir, { recursive: true });
    const prev = await this.readRef(reference);
    // A tag that once pulled anonymously to the same digest stays public.
    const record: RefRecord = { reference, digest, pulledAt: new Date().toISOString(), anonymous: anonymous || (prev?.digest === digest && !!prev.anonymous) };
    await atomicWrite(this.refPath(reference), Buffer.from(JSON.stringify(record) + '\n'));
  }
}

/** The parts of an image config a container needs; absent fields are empty, never undefined. */
export function parseImageConfig(body: Buffer): ImageConfig {
  let json: any;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new BerthError(Codes.UnsupportedMediaType, 'The image config is not valid JSON.');
  }
  const c = json?.config ?? {};
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return {
    entrypoint: strings(c.Entrypoint),
    cmd: strings(c.Cmd),
    env: strings(c.Env),
    workingDir: typeof c.WorkingDir === 'string' ? c.WorkingDir : '',
    user: typeof c.User === 'string' ? c.User : '',
    exposedPorts: c.ExposedPorts && typeof c.ExposedPorts === 'object' ? Object.keys(c.ExposedPorts).sort() : [],
  };
}
