// Unit tests of image reference parsing and normalisation.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Codes, isBerthError } from './errors.js';
import { normaliseReference, parseReference } from './image-reference.js';

const D = 'sha256:' + 'ab'.repeat(32);

test('normalises references the way Docker does', () => {
  const cases: [string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['bitnami/nginx:1', 'docker.io/bitnami/nginx:1'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
    ['127.0.0.1:5000/web:1', '127.0.0.1:5000/web:1'],
    ['127.0.0.1:5000/web', '127.0.0.1:5000/web:latest'],
    [`host:5000/a/b@${D}`, `host:5000/a/b@${D}`],
    [`host:5000/a/b:v2@${D}`, `host:5000/a/b:v2@${D}`],
    ['localhost/x', 'localhost/x:latest'],
    ['localhost:5000/x/y_z.w-1:t', 'localhost:5000/x/y_z.w-1:t'],
    ['myregistry.azurecr.io/team/app:2024.1', 'myregistry.azurecr.io/team/app:2024.1'],
    ['MyRegistry.AzureCR.io/app', 'myregistry.azurecr.io/app:latest'],
    ['[::1]:5000/x:1', '[::1]:5000/x:1'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
  ];
  for (const [input, want] of cases) assert.equal(normaliseReference(input), want, input);
});

test('splits into registry, repository, tag and digest', () => {
  assert.deepEqual(parseReference('busybox'), { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', digest: undefined });
  assert.deepEqual(parseReference(`127.0.0.1:5000/a/b@${D}`), {
    registry: '127.0.0.1:5000',
    repository: 'a/b',
    tag: undefined,
    digest: D,
  });
  // "foo" is a path, not a host, so "foo/bar" lives on Docker Hub.
  assert.equal(parseReference('foo/bar').registry, 'docker.io');
});

test('rejects invalid references with InvalidImage', () => {
  const bad = [
    '',
    '  ',
    'Busybox',
    'busybox:',
    'busybox:tag with space',
    'a//b',
    '/busybox',
    'busybox/',
    'host:5000/',
    'busybox@sha256:abc',
    `busybox@sha512:${'a'.repeat(128)}`,
    `busybox@SHA256:${'a'.repeat(64)}`,
    'busybox:-tag',
    'ex--ample..com/x',
    'host:99999/x',
    'a/b/C',
    `busybox:${'t'.repeat(129)}`,
    `${'a'.repeat(300)}`,
    'bad_-/x:1',
  ];
  for (const input of bad) {
    assert.throws(
      () => parseReference(input),
      (e: unknown) => isBerthError(e) && e.code === Codes.InvalidImage && e.message.includes('not a valid image reference'),
      JSON.stringify(input),
    );
  }
});
