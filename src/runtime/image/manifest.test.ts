// Unit tests of the manifest formats: classifying manifests, refusing schema 1 and unknown types, choosing a platform.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Codes, isBerthError } from '../../lib/errors.js';
import { MediaTypes, manifestKind, selectPlatform, sha256Hex } from './manifest.js';

const isCode = (code: string, text?: string) => (e: unknown) =>
  isBerthError(e) && e.code === code && (text === undefined || e.message.includes(text));

test('platform selection from an index', () => {
  const d = (architecture: string, variant?: string) => ({
    mediaType: MediaTypes.OciManifest,
    digest: `sha256:${sha256Hex(architecture + (variant ?? ''))}`,
    size: 1,
    platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
  });
  const index = { schemaVersion: 2, manifests: [d('arm64', 'v8'), d('amd64', 'v3'), d('amd64'), d('s390x')] };
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'amd64' }, 'x').digest, d('amd64').digest);
  assert.throws(
    () => selectPlatform({ schemaVersion: 2, manifests: [d('arm64', 'v8')] }, { os: 'linux', architecture: 'amd64' }, 'img:1'),
    isCode(Codes.NoMatchingPlatform, 'linux/arm64/v8'),
  );
});

test('schema 1 and unknown manifest types are UnsupportedMediaType', () => {
  const schema1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }));
  assert.throws(() => manifestKind(schema1, MediaTypes.DockerSchema1Signed), isCode(Codes.UnsupportedMediaType, 'schema 1'));
  assert.throws(() => manifestKind(schema1, 'application/json'), isCode(Codes.UnsupportedMediaType, 'schema 1'));
  assert.throws(
    () => manifestKind(Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.cncf.helm.chart"}'), undefined),
    isCode(Codes.UnsupportedMediaType),
  );
  assert.throws(() => manifestKind(Buffer.from('not json'), undefined), isCode(Codes.UnsupportedMediaType));
  // OCI allows omitting mediaType: the shape decides.
  const bare = Buffer.from(JSON.stringify({ schemaVersion: 2, config: {}, layers: [] }));
  assert.equal(manifestKind(bare, undefined).mediaType, MediaTypes.OciManifest);
  assert.equal(manifestKind(Buffer.from('{"schemaVersion":2,"manifests":[]}'), undefined).mediaType, MediaTypes.OciIndex);
});
