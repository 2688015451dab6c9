// Test helpers: waiting for a condition with a deadline, and the client's typed error a call fails with.
import assert from 'node:assert/strict';
import { ArmError } from '../../src/client/index.js';

/** Resolves once `fn` holds; throws after `timeoutMs` naming what it waited for. */
export async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000, everyMs = 20) {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The ArmError a promise rejects with (fails the test when it resolves or rejects with anything else). */
export async function armErrorOf(p: Promise<unknown>): Promise<ArmError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  assert.ok(e instanceof ArmError, `expected an ArmError, got ${e}`);
  return e;
}
