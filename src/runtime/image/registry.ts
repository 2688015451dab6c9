// Client of the OCI distribution API: manifests (with platform selection) and verified blob downloads, authorized per registry-auth.ts.

import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, Codes, isBerthError } from '../../lib/errors.js';
import type { RegistryCredentials } from '../types.js';
import {
  DEFAULT_PLATFORM,
  MANIFEST_ACCEPT,
  assertSha256Digest,
  isManifestType,
  manifestKind,
  selectPlatform,
  sha256Hex,
  type FetchedManifest,
  type ImageIndex,
  type Platform,
  type ResolvedManifest,
} from './manifest.js';
import { registryBaseUrl } from './reference.js';
import { RegistryAuth, TokenCache, credentialsFor, parseChallenge } from './registry-auth.js';

/** Manifests are small; a bigger answer is not a manifest. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface RegistryClientOptions {
  insecureRegistries?: readonly string[];
  credentials?: readonly RegistryCredentials[];
  tokenCache?: TokenCache;
  signal?: AbortSignal;
}

/** One registry, one set of credentials. Safe to share between concurrent requests. */
export class RegistryClient {
  readonly baseUrl: string;
  private readonly auth: RegistryAuth;
  private readonly signal: AbortSignal | undefined;

  constructor(
    readonly registry: string,
    opts: RegistryClientOptions = {},
  ) {
    this.baseUrl = registryBaseUrl(registry, opts.insecureRegistries);
    this.signal = opts.signal;
    this.auth = new RegistryAuth(registry, this.baseUrl, credentialsFor(registry, opts.credentials), opts.tokenCache ?? new TokenCache(), (url, init, what) => this.rawFetch(url, init, what));
  }

  /** GET /v2/: learns which auth scheme the registry wants before the first real request. */
  ping(): Promise<void> {
    return this.auth.ping();
  }

  /** Fetches a manifest or index by tag or digest, verifying its digest when one is known. */
  async getManifest(repository: string, reference: string, image: string): Promise<FetchedManifest & { json: any }> {
    const res = await this.request(repository, `/manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT } }, image);
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > MAX_MANIFEST_BYTES) {
      await res.body?.cancel();
      throw new BerthError(Codes.UnsupportedMediaType, `The manifest of '${image}' is larger than ${MAX_MANIFEST_BYTES} bytes.`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > MAX_MANIFEST_BYTES) {
      throw new BerthError(Codes.UnsupportedMediaType, `The manifest of '${image}' is larger than ${MAX_MANIFEST_BYTES} bytes.`);
    }
    const { mediaType, json } = manifestKind(body, res.headers.get('content-type') ?? undefined);
    const digest = `sha256:${sha256Hex(body)}`;
    if (reference.includes(':') && reference !== digest) {
      throw new BerthError(
        Codes.DigestMismatch,
        `The registry returned a manifest for '${image}' with digest ${digest}, not the requested ${reference}.`,
        502,
      );
    }
    // Trust the header only as a cross-check: it is the registry's claim, the bytes are the truth.
    const claimed = res.headers.get('docker-content-digest');
    if (claimed && claimed.startsWith('sha256:') && claimed !== digest) {
      throw new BerthError(
        Codes.DigestMismatch,
        `The manifest of '${image}' hashes to ${digest} but the registry says ${claimed}.`,
        502,
      );
    }
    return { mediaType, digest, body, json };
  }

  /** Resolves a tag or digest to one image manifest, choosing `platform` from an index. */
  async resolveManifest(repository: string, reference: string, image: string, platform: Platform = DEFAULT_PLATFORM): Promise<ResolvedManifest> {
    const first = await this.getManifest(repository, reference, image);
    if (isManifestType(first.mediaType)) {
      return { mediaType: first.mediaType, digest: first.digest, body: first.body, manifest: first.json };
    }
    const chosen = selectPlatform(first.json as ImageIndex, platform, image);
    assertSha256Digest(chosen.digest, `The ${platform.os}/${platform.architecture} entry of '${image}'`);
    const child = await this.getManifest(repository, chosen.digest, image);
    if (!isManifestType(child.mediaType)) {
      throw new BerthError(Codes.UnsupportedMediaType, `The ${platform.os}/${platform.architecture} entry of '${image}' is not an image manifest.`);
    }
    return {
      mediaType: child.mediaType,
      digest: child.digest,
      body: child.body,
      manifest: child.json,
      index: { mediaType: first.mediaType, digest: first.digest, body: first.body },
    };
  }

  /** Small blobs (image configs) into memory, verified. */
  async getBlob(repository: string, digest: string, image: string, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
    assertSha256Digest(digest, `A blob of '${image}'`);
    const res = await this.request(repository, `/blobs/${digest}`, {}, image);
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > maxBytes) throw new BerthError(Codes.UnsupportedMediaType, `The blob ${digest} of '${image}' is too large.`);
    const actual = `sha256:${sha256Hex(body)}`;
    if (actual !== digest) {
      throw new BerthError(Codes.DigestMismatch, `The blob ${digest} of '${image}' was corrupt in transfer (it hashes to ${actual}).`, 502);
    }
    return body;
  }

  /**
   * Streams a blob to `dest`: written to a temp file beside it and renamed into place only once its
   * sha256 (and size, when known) match, so `dest` never exists with wrong content.
   */
  async downloadBlob(
    repository: string,
    desc: { digest: string; size?: number },
    dest: string,
    image: string,
    onProgress?: (doneBytes: number) => void,
  ): Promise<void> {
    assertSha256Digest(desc.digest, `A blob of '${image}'`);
    const res = await this.request(repository, `/blobs/${desc.digest}`, {}, image);
    if (!res.body) throw new BerthError(Codes.InaccessibleImage, `The registry sent no content for blob ${desc.digest} of '${image}'.`);
    const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const hash = createHash('sha256');
    let done = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        done += chunk.length;
        onProgress?.(done);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(res.body as any), meter, createWriteStream(tmp, { flags: 'wx' }), {
        signal: this.signal,
      });
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== desc.digest || (desc.size !== undefined && desc.size !== done)) {
        throw new BerthError(
          Codes.DigestMismatch,
          `The blob ${desc.digest} of '${image}' did not match its digest (got ${actual}, ${done} bytes` +
            `${desc.size !== undefined ? ` of ${desc.size} expected` : ''}); the registry's copy may be corrupt.`,
          502,
        );
      }
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { force: true });
      if (isBerthError(e) || this.signal?.aborted) throw e;
      throw new BerthError(Codes.InaccessibleImage, `Downloading blob ${desc.digest} of '${image}' failed: ${(e as Error).message}`);
    }
  }

  /** An authenticated request against /v2/<repository><path>; maps registry failures to catalogue errors. */
  private async request(repository: string, path: string, init: { headers?: Record<string, string> }, image: string): Promise<Response> {
    await this.auth.ensurePinged();
    const url = `${this.baseUrl}/v2/${repository}${path}`;
    const scope = `repository:${repository}:pull`;
    let auth = await this.auth.headers(scope, false);
    let res = await this.rawFetch(url, { headers: { ...init.headers, ...auth } }, image);
    if (res.status === 401) {
      // The token may have expired early or the registry may have changed its mind: retry once, fresh.
      const challenge = parseChallenge(res.headers.get('www-authenticate'));
      await res.body?.cancel();
      if (challenge) this.auth.rechallenged(challenge);
      auth = await this.auth.headers(challenge?.params.scope ?? scope, true);
      if (Object.keys(auth).length > 0) res = await this.rawFetch(url, { headers: { ...init.headers, ...auth } }, image);
    }
    if (res.ok) return res;
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) {
      throw new BerthError(
        Codes.RegistryUnauthorized,
        this.auth.creds
          ? `The registry '${this.registry}' denied access to '${image}' with the credentials given for it.`
          : `The registry '${this.registry}' requires credentials to pull '${image}', and none were given for it.`,
        400,
        'imageRegistryCredentials',
      );
    }
    if (res.status === 404) {
      throw new BerthError(
        Codes.InaccessibleImage,
        path.startsWith('/manifests/')
          ? `The image '${image}' was not found in registry '${this.registry}'.`
          : `The image '${image}' refers to content (${path.slice(path.lastIndexOf('/') + 1)}) that registry '${this.registry}' does not have.`,
      );
    }
    throw new BerthError(Codes.InaccessibleImage, `The registry '${this.registry}' answered ${res.status} while pulling '${image}'.`);
  }

  private async rawFetch(url: string, init: { headers?: Record<string, string> }, what: string): Promise<Response> {
    try {
      // Redirects (blob storage behind a CDN) are followed; fetch drops Authorization when the origin changes.
      return await fetch(url, { ...init, redirect: 'follow', signal: this.signal });
    } catch (e) {
      if (this.signal?.aborted) throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new BerthError(
        Codes.InaccessibleImage,
        `Could not reach ${what} at ${new URL(url).origin}: ${cause?.code ?? cause?.message ?? (e as Error).message}`,
      );
    }
  }
}
