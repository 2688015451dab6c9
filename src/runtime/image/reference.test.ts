// Unit tests of how registries are reached: plain HTTP for loopback and insecure ones, docker.io's API host.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { registryBaseUrl } from './reference.js';

test('loopback and insecure registries use plain http, others https; docker.io goes to registry-1', () => {
  assert.equal(registryBaseUrl('127.0.0.1:5000'), 'http://127.0.0.1:5000');
  assert.equal(registryBaseUrl('127.3.4.5:5000'), 'http://127.3.4.5:5000');
  assert.equal(registryBaseUrl('localhost'), 'http://localhost');
  assert.equal(registryBaseUrl('[::1]:5000'), 'http://[::1]:5000');
  assert.equal(registryBaseUrl('docker.io'), 'https://registry-1.docker.io');
  assert.equal(registryBaseUrl('myregistry.example:5000'), 'https://myregistry.example:5000');
  assert.equal(registryBaseUrl('myregistry.example:5000', ['myregistry.example:5000']), 'http://myregistry.example:5000');
  assert.equal(registryBaseUrl('myregistry.example:5000', ['myregistry.example']), 'http://myregistry.example:5000');
  assert.equal(registryBaseUrl('myregistry.example:5000', ['other.example']), 'https://myregistry.example:5000');
  assert.equal(registryBaseUrl('128.0.0.1:5000'), 'https://128.0.0.1:5000');
});
