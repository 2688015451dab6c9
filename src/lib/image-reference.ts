// OCI image references parsed and normalised the way Docker does (distribution/reference's grammar).

import { BerthError, Codes } from './errors.js';

/** A parsed, normalised image reference. */
export interface ImageReference {
  /** Registry host as written by users, lower-cased: "docker.io", "127.0.0.1:5000", "[::1]:5000". */
  registry: string;
  /** Repository path inside the registry: "library/busybox", "a/b". */
  repository: string;
  /** Tag; "latest" when neither a tag nor a digest was given. */
  tag?: string;
  /** "sha256:<64 hex>" when pinned. */
  digest?: string;
}

export const DEFAULT_REGISTRY = 'docker.io';

// Grammar from distribution/reference (the one Docker and containerd share).
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_RE = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]{1,5})?$`,
);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const SHA256_DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME_LENGTH = 255;

const invalid = (ref: string, why: string): BerthError =>
  new BerthError(Codes.InvalidImage, `The image '${ref}' is not a valid image reference: ${why}.`, 400, 'image');

/** Parses `busybox`, `127.0.0.1:5000/web:1`, `host:port/a/b@sha256:…`, `localhost/x` into a normalised reference. */
export function parseReference(input: string): ImageReference {
  const ref = input.trim();
  if (ref === '') throw invalid(input, 'it is empty');
  if (/\s/.test(ref)) throw invalid(input, 'it contains whitespace');

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw invalid(input, `'${digest}' is not a digest`);
    // Only sha256 is addressable in the store; other algorithms would need their own verification.
    if (!SHA256_DIGEST_RE.test(digest)) throw invalid(input, 'only lower-case sha256 digests are supported');
  }

  // A tag is after the last colon, unless that colon belongs to a host:port in the first component.
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG_RE.test(tag)) throw invalid(input, `'${tag}' is not a valid tag`);
  }

  let registry = DEFAULT_REGISTRY;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    // Same rule as Docker: the first component is a host if it looks like one, else it is a path.
    if (/[.:]/.test(first) || first === 'localhost' || first.startsWith('[') || first !== first.toLowerCase()) {
      if (!DOMAIN_RE.test(first)) throw invalid(input, `'${first}' is not a valid registry host`);
      const port = /:(\d+)$/.exec(first)?.[1];
      if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
        throw invalid(input, `'${port}' is not a valid port`);
      }
      registry = first.toLowerCase();
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DEFAULT_REGISTRY;
  if (repository === '') throw invalid(input, 'the repository name is empty');
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT_RE.test(component)) {
      throw invalid(
        input,
        component !== component.toLowerCase()
          ? 'repository names must be lower-case'
          : `'${component}' is not a valid repository path component`,
      );
    }
  }
  if (registry === DEFAULT_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
  if (registry.length + 1 + repository.length > MAX_NAME_LENGTH) {
    throw invalid(input, `the name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, tag, digest };
}

/** The canonical string form, e.g. "docker.io/library/busybox:latest" or "h:5000/a@sha256:…". */
export function formatReference(r: ImageReference): string {
  let s = `${r.registry}/${r.repository}`;
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/** Parses and re-formats; throws InvalidImage like parseReference. */
export const normaliseReference = (input: string): string => formatReference(parseReference(input));

/** What the registry API is asked for: the digest when pinned, else the tag. */
export const manifestReference = (r: ImageReference): string => r.digest ?? r.tag ?? 'latest';
