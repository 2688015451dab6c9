// Short-lived claims signed with Ed25519: one party (the control plane) signs, others (agents) verify with its public key.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { BerthError, Codes } from './errors.js';

/** Every token carries its expiry, in seconds since the epoch. */
export interface Expiring {
  exp: number;
}

export interface SigningKeyPair {
  /** PKCS#8 PEM: what signs. */
  privateKeyPem: string;
  /** SPKI PEM: what verifies; safe to hand out. */
  publicKeyPem: string;
}

export function newSigningKeyPair(): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const invalid = (why: string) => new BerthError(Codes.InvalidAuthenticationToken, `The token is invalid: ${why}.`, 401);

export class TokenSigner {
  private key: KeyObject;

  constructor(privateKeyPem: string) {
    this.key = createPrivateKey(privateKeyPem);
    if (this.key.asymmetricKeyType !== 'ed25519') throw new Error('a token signing key must be Ed25519');
  }

  /** `claims` for `ttlSeconds` from now: `base64url(JSON).base64url(signature)`. */
  sign<C extends object>(claims: C, ttlSeconds: number): string {
    const body = Buffer.from(JSON.stringify({ ...claims, exp: Math.floor(Date.now() / 1000) + ttlSeconds })).toString('base64url');
    return `${body}.${sign(null, Buffer.from(body), this.key).toString('base64url')}`;
  }
}

export class TokenVerifier {
  private key: KeyObject;

  constructor(publicKeyPem: string) {
    this.key = createPublicKey(publicKeyPem);
    if (this.key.asymmetricKeyType !== 'ed25519') throw new Error('a token verifying key must be Ed25519');
  }

  /** The claims of a token this key's signer made and that has not expired; 401 InvalidAuthenticationToken otherwise. */
  verify<C extends object>(token: string): C & Expiring {
    const parts = token.split('.');
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw invalid('it is not two base64url parts');
    if (!verify(null, Buffer.from(parts[0]), this.key, Buffer.from(parts[1], 'base64url'))) throw invalid('its signature does not match');
    let claims: C & Expiring;
    try {
      claims = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    } catch {
      throw invalid('its claims are not JSON');
    }
    if (typeof claims !== 'object' || claims === null || typeof claims.exp !== 'number') throw invalid('it has no expiry');
    if (claims.exp <= Date.now() / 1000) throw invalid('it has expired');
    return claims;
  }
}
