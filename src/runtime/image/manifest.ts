// The OCI and Docker manifest formats: media types, classifying a manifest, choosing a platform from an index, sha256 digests, the layers berth can unpack.

import { createHash } from 'node:crypto';
import { BerthError, Codes } from '../../lib/errors.js';

export const MediaTypes = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** What a manifest request accepts: images and indexes, OCI's and Docker's. */
export const MANIFEST_ACCEPT = [
  MediaTypes.OciManifest,
  MediaTypes.OciIndex,
  MediaTypes.DockerManifest,
  MediaTypes.DockerManifestList,
].join(', ');

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

export const isIndexType = (t: string): boolean => t === MediaTypes.OciIndex || t === MediaTypes.DockerManifestList;
export const isManifestType = (t: string): boolean => t === MediaTypes.OciManifest || t === MediaTypes.DockerManifest;

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

const LAYER_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);

/** Refuses an image manifest whose digests could not name files or whose layers berth cannot unpack. */
export function validateImageManifest(m: ImageManifest, reference: string): void {
  assertSha256Digest(m.config?.digest, `The config of '${reference}'`);
  for (const layer of m.layers) {
    assertSha256Digest(layer.digest, `A layer of '${reference}'`);
    if (!LAYER_MEDIA_TYPES.has(layer.mediaType)) {
      throw new BerthError(
        Codes.UnsupportedMediaType,
        `The image '${reference}' has a layer of unsupported media type '${layer.mediaType}'.`,
      );
    }
    if (typeof layer.size !== 'number' || layer.size < 0) {
      throw new BerthError(Codes.UnsupportedMediaType, `The image '${reference}' has a layer without a valid size.`);
    }
  }
}
