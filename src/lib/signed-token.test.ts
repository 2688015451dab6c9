// Ed25519-signed claims: what one key signs, only its public key accepts, until the claims expire.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { newSigningKeyPair, TokenSigner, TokenVerifier } from './signed-token.js';

const pair = newSigningKeyPair();
const signer = new TokenSigner(pair.privateKeyPem);
const verifier = new TokenVerifier(pair.publicKeyPem);

test('a token carries its claims and an expiry, and verifies with the public key', () => {
  const token = signer.sign({ host: 'h1', uid: 'abc', op: 'logs' }, 30);
  const claims = verifier.verify<{ host: string; uid: string; op: string }>(token);
  assert.equal(claims.host, 'h1');
  assert.equal(claims.uid, 'abc');
  assert.equal(claims.op, 'logs');
  assert.ok(claims.exp > Date.now() / 1000 && claims.exp <= Date.now() / 1000 + 31);
});

test('another key, changed claims, a changed signature, an expired or malformed token: 401 InvalidAuthenticationToken', () => {
  const other = new TokenSigner(newSigningKeyPair().privateKeyPem);
  const token = signer.sign({ host: 'h1' }, 30);
  const [body, sig] = token.split('.');
  const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), host: 'h2' })).toString('base64url');
  const cases: [string, string, RegExp][] = [
    ['another key', other.sign({ host: 'h1' }, 30), /signature/],
    ['changed claims', `${forged}.${sig}`, /signature/],
    ['changed signature', `${body}.${Buffer.from(Buffer.from(sig, 'base64url').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64url')}`, /signature/],
    ['expired', signer.sign({ host: 'h1' }, -1), /expired/],
    ['one part', body, /two base64url parts/],
    ['empty', '', /two base64url parts/],
  ];
  for (const [what, t, why] of cases)
    assert.throws(() => verifier.verify(t), (e: Error & { code?: string; status?: number }) => {
      assert.equal(e.code, 'InvalidAuthenticationToken', what);
      assert.equal(e.status, 401, what);
      assert.match(e.message, why, what);
      return true;
    });
});

test('only Ed25519 keys are taken', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assert.throws(() => new TokenSigner(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()), /Ed25519/);
  assert.throws(() => new TokenVerifier(publicKey.export({ type: 'spki', format: 'pem' }).toString()), /Ed25519/);
});
