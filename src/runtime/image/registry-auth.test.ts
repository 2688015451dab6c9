// Unit tests of registry authentication's parts: the challenge parser and credentials chosen by host (token flows: registry.test.ts).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { credentialsFor, parseChallenge } from './registry-auth.js';

test('challenge parsing keeps quoted commas', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example/token', service: 'reg', scope: 'repository:a/b:pull,push' },
  });
  assert.deepEqual(parseChallenge('Basic realm="x"'), { scheme: 'basic', params: { realm: 'x' } });
  assert.equal(parseChallenge(null), undefined);
});

test('credentials match the registry by host, whatever way the server was written', () => {
  const creds = [
    { server: 'https://index.docker.io/v1/', username: 'hub', password: 'p' },
    { server: 'http://127.0.0.1:5000/', username: 'local', password: 'p' },
  ];
  assert.equal(credentialsFor('docker.io', creds)?.username, 'hub');
  assert.equal(credentialsFor('127.0.0.1:5000', creds)?.username, 'local');
  assert.equal(credentialsFor('127.0.0.1:5001', creds), undefined);
});
