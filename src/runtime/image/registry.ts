// Client of the OCI distribution API: auth challenges, manifests (with platform selection) and verified blob downloads.

import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, Codes, isBerthError } from '../../lib/errors.js';
import type { RegistryCredentials } from '../types.js';
import { DEFAULT_REGISTRY } from '../../lib/image-reference.js';
import { registryBaseUrl } from './reference.js';

export const MediaTypes = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

const MANIFEST_ACCEPT = [
  MediaTypes.OciManifest,
  MediaTypes.OciIndex,
  MediaTypes.DockerManifest,
  MediaTypes.DockerManifestList,
].join(', ');

/** Manifests are small; a bigger answer is not a manifest. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const SHA256_DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface FetchedManifest {
  mediaType: string;
  digest: string;
  /** Exact bytes as served: the digest is over these. */
  body: Buffer;
}

export interface ResolvedManifest extends FetchedManifest {
  manifest: ImageManifest;
  /** The index/list the manifest was selected from, when the reference named one. */
  index?: FetchedManifest;
}

export interface Platform {
  os: string;
  architecture: string;
}

export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

export const sha256Hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Digests become file names: anything but canonical sha256 is refused before it reaches a path. */
export function assertSha256Digest(digest: unknown, what: string): asserts digest is string {
  if (typeof digest !== 'string' || !SHA256_DIGEST_RE.test(digest)) {
    throw new BerthError(Codes.UnsupportedMediaType, `${what} has an unsupported digest '${String(digest)}' (only sha256 is supported).`);
  }
}

const isIndexType = (t: string): boolean => t === MediaTypes.OciIndex || t === MediaTypes.DockerManifestList;
const isManifestType = (t: string): boolean => t === MediaTypes.OciManifest || t === MediaTypes.DockerManifest;

/** Classifies a manifest by its declared type, falling back to its shape (OCI allows omitting mediaType). */
export function manifestKind(body: Buffer, contentType: string | undefined): { mediaType: string; json: any } {
  let json: any;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new BerthError(Codes.UnsupportedMediaType, 'The registry returned a manifest that is not valid JSON.');
  }
  if (json === null || typeof json !== 'object') {
    throw new BerthError(Codes.UnsupportedMediaType, 'The registry returned a manifest that is not a JSON object.');
  }
  const ct = contentType?.split(';')[0]?.trim().toLowerCase();
  let mediaType: string | undefined = typeof json.mediaType === 'string' ? json.mediaType : undefined;
  if (json.schemaVersion === 1 || ct === MediaTypes.DockerSchema1 || ct === MediaTypes.DockerSchema1Signed) {
    throw new BerthError(
      Codes.UnsupportedMediaType,
      'The image uses the deprecated Docker schema 1 manifest format, which is not supported; push it again with a current client.',
    );
  }
  if (mediaType === undefined && ct !== undefined && (isIndexType(ct) || isManifestType(ct))) mediaType = ct;
  if (mediaType === undefined) {
    if (Array.isArray(json.manifests)) mediaType = MediaTypes.OciIndex;
    else if (json.config && Array.isArray(json.layers)) mediaType = MediaTypes.OciManifest;
  }
  if (mediaType === undefined || !(isIndexType(mediaType) || isManifestType(mediaType))) {
    throw new BerthError(Codes.UnsupportedMediaType, `Unsupported manifest media type '${mediaType ?? ct ?? 'unknown'}'.`);
  }
  if (isManifestType(mediaType) && !(json.config && Array.isArray(json.layers))) {
    throw new BerthError(Codes.UnsupportedMediaType, 'The image manifest has no config or layers.');
  }
  if (isIndexType(mediaType) && !Array.isArray(json.manifests)) {
    throw new BerthError(Codes.UnsupportedMediaType, 'The image index has no manifests.');
  }
  return { mediaType, json };
}

export { isIndexType, isManifestType };

/** Picks the entry for `platform`; a variant-less entry wins over variants (amd64 variants are micro-architecture levels). */
export function selectPlatform(index: ImageIndex, platform: Platform, image: string): Descriptor {
  const candidates = index.manifests.filter(
    (m) => m.platform?.os === platform.os && m.platform?.architecture === platform.architecture && isManifestType(m.mediaType ?? MediaTypes.OciManifest),
  );
  const chosen = candidates.find((m) => !m.platform?.variant) ?? candidates[0];
  if (!chosen) {
    const offered = index.manifests
      .map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? '/' + m.platform.variant : ''}` : 'unknown'))
      .join(', ');
    throw new BerthError(
      Codes.NoMatchingPlatform,
      `The image '${image}' has no ${platform.os}/${platform.architecture} variant (it offers: ${offered || 'nothing'}).`,
    );
  }
  return chosen;
}

/** Parses `WWW-Authenticate: Bearer realm="…",service="…",scope="a:b:pull,push"` (quoted values may hold commas). */
export function parseChallenge(header: string | null): { scheme: string; params: Record<string, string> } | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p: RegExpExecArray | null; (p = re.exec(m[2]!)) !== null; ) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** Credentials apply to a registry by host (users write "https://host/", "host", or Docker Hub's many names). */
export function credentialsFor(registry: string, credentials: readonly RegistryCredentials[] = []): RegistryCredentials | undefined {
  const norm = (s: string): string => {
    const host = s.trim().toLowerCase().replace(/^[a-z]+:\/\//, '').split('/')[0] ?? '';
    return DOCKER_HUB_ALIASES.has(host) ? DEFAULT_REGISTRY : host;
  };
  const target = norm(registry);
  return credentials.find((c) => norm(c.server) === target);
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Bearer tokens per (realm, service, scope, user), reused until shortly before they expire. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  get(key: string): string | undefined {
    const t = this.tokens.get(key);
    if (!t) return undefined;
    if (Date.now() >= t.expiresAt) {
      this.tokens.delete(key);
      return undefined;
    }
    return t.token;
  }
  set(key: string, token: string, expiresInSeconds: number): void {
    // A margin so a token never expires between being picked and reaching the registry.
    const lifetime = Math.max(0, expiresInSeconds - 10) * 1000;
    if (lifetime > 0) this.tokens.set(key, { token, expiresAt: Date.now() + lifetime });
  }
  delete(key: string): void {
    this.tokens.delete(key);
  }
}

export interface RegistryClientOptions {
  insecureRegistries?: readonly string[];
  credentials?: readonly RegistryCredentials[];
  tokenCache?: TokenCache;
  signal?: AbortSignal;
}

type Challenge = NonNullable<ReturnType<typeof parseChallenge>>;

/** One registry, one set of credentials. Safe to share between concurrent requests. */
export class RegistryClient {
  readonly baseUrl: string;
  private readonly creds: RegistryCredentials | undefined;
  private readonly tokenCache: TokenCache;
  private readonly signal: AbortSignal | undefined;
  private challenge: Challenge | null | undefined; // undefined = not pinged yet, null = no auth
  private pinging: Promise<void> | undefined;

  constructor(
    readonly registry: string,
    opts: RegistryClientOptions = {},
  ) {
    this.baseUrl = registryBaseUrl(registry, opts.insecureRegistries);
    this.creds = credentialsFor(registry, opts.credentials);
    this.tokenCache = opts.tokenCache ?? new TokenCache();
    this.signal = opts.signal;
  }

  /** GET /v2/: learns which auth scheme the registry wants before the first real request. */
  async ping(): Promise<void> {
    const res = await this.rawFetch(`${this.baseUrl}/v2/`, {}, `registry ${this.registry}`);
    await res.body?.cancel();
    if (res.status === 401) {
      this.challenge = parseChallenge(res.headers.get('www-authenticate')) ?? null;
    } else if (res.ok || res.status === 404) {
      this.challenge = null;
    } else {
      throw new BerthError(Codes.InaccessibleImage, `The registry '${this.registry}' answered ${res.status} to its API version check.`);
    }
  }

  private ensurePinged(): Promise<void> {
    if (this.challenge !== undefined) return Promise.resolve();
    this.pinging ??= this.ping().finally(() => {
      this.pinging = undefined;
    });
    return this.pinging;
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
    await this.ensurePinged();
    const url = `${this.baseUrl}/v2/${repository}${path}`;
    const scope = `repository:${repository}:pull`;
    let auth = await this.authorization(scope, false);
    let res = await this.rawFetch(url, { headers: { ...init.headers, ...auth } }, image);
    if (res.status === 401) {
      // The token may have expired early or the registry may have changed its mind: retry once, fresh.
      const challenge = parseChallenge(res.headers.get('www-authenticate'));
      await res.body?.cancel();
      if (challenge) this.challenge = challenge;
      auth = await this.authorization(challenge?.params.scope ?? scope, true);
      if (Object.keys(auth).length > 0) res = await this.rawFetch(url, { headers: { ...init.headers, ...auth } }, image);
    }
    if (res.ok) return res;
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) {
      throw new BerthError(
        Codes.RegistryUnauthorized,
        this.creds
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

  private async authorization(scope: string, fresh: boolean): Promise<Record<string, string>> {
    const ch = this.challenge;
    if (!ch) return {};
    if (ch.scheme === 'basic') {
      if (!this.creds) return {};
      return { authorization: `Basic ${basic(this.creds)}` };
    }
    if (ch.scheme !== 'bearer') {
      throw new BerthError(Codes.RegistryUnauthorized, `The registry '${this.registry}' asks for unsupported auth scheme '${ch.scheme}'.`);
    }
    const realm = ch.params.realm;
    if (!realm) throw new BerthError(Codes.RegistryUnauthorized, `The registry '${this.registry}' sent a Bearer challenge without a realm.`);
    const service = ch.params.service ?? '';
    const key = [realm, service, scope, this.creds?.username ?? '', this.creds ? sha256Hex(this.creds.password) : ''].join('\n');
    if (fresh) this.tokenCache.delete(key);
    const cached = this.tokenCache.get(key);
    if (cached) return { authorization: `Bearer ${cached}` };

    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    url.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (this.creds) headers.authorization = `Basic ${basic(this.creds)}`;
    const res = await this.rawFetch(url.toString(), { headers }, `token service of ${this.registry}`);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new BerthError(
        Codes.RegistryUnauthorized,
        this.creds
          ? `The token service of registry '${this.registry}' rejected the credentials of user '${this.creds.username}'.`
          : `The registry '${this.registry}' requires credentials, and none were given for it.`,
        400,
        'imageRegistryCredentials',
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new BerthError(Codes.InaccessibleImage, `The token service of registry '${this.registry}' answered ${res.status}.`);
    }
    let body: any;
    try {
      body = await res.json();
    } catch {
      throw new BerthError(Codes.InaccessibleImage, `The token service of registry '${this.registry}' answered with invalid JSON.`);
    }
    const token: unknown = body?.token ?? body?.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new BerthError(Codes.InaccessibleImage, `The token service of registry '${this.registry}' answered without a token.`);
    }
    // The spec's default lifetime is 60 s when expires_in is absent.
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    this.tokenCache.set(key, token, expiresIn);
    return { authorization: `Bearer ${token}` };
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

const basic = (c: RegistryCredentials): string => Buffer.from(`${c.username}:${c.password}`).toString('base64');
