// The error wire: a BerthError crosses a process boundary as JSON and comes back as itself.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BerthError, Codes, errorFromWire, errorToWire, isBerthError } from './errors.js';

const roundTrip = (e: unknown, status = 500) => errorFromWire(JSON.parse(JSON.stringify(errorToWire(e))), status, 'the peer');

test('a BerthError comes back with its code, message, target and status', () => {
  const sent = new BerthError(Codes.ContainerNotFound, "The container 'web' was not found in the container group.", 404, 'containerName');
  const got = roundTrip(sent);
  assert.ok(isBerthError(got));
  assert.deepEqual({ code: got.code, message: got.message, target: got.target, status: got.status }, { code: sent.code, message: sent.message, target: 'containerName', status: 404 });
  const untargeted = roundTrip(new BerthError(Codes.ContainerGroupNotRunning, 'not running', 409));
  assert.equal(untargeted.target, undefined);
  assert.equal(untargeted.status, 409);
  assert.deepEqual(Object.keys(errorToWire(new BerthError('X', 'm', 400))).sort(), ['code', 'message', 'status'], 'no target key when there is none');
});

test('anything else thrown crosses as InternalServerError with its message', () => {
  const got = roundTrip(new Error('EIO: i/o error, read'));
  assert.deepEqual([got.code, got.message, got.status], [Codes.InternalServerError, 'EIO: i/o error, read', 500]);
  assert.equal(roundTrip('a string').message, 'a string');
});

test("ARM's envelope is read as well, with the transport's status", () => {
  const got = errorFromWire({ error: { code: Codes.ResourceNotFound, message: 'gone', target: 'name' } }, 404, 'the API');
  assert.deepEqual([got.code, got.message, got.target, got.status], [Codes.ResourceNotFound, 'gone', 'name', 404]);
});

test('a body that carries no error is an UnexpectedResponse naming who sent it', () => {
  for (const body of [undefined, null, 'oops', { error: 'x' }, { code: 5, message: 'm' }, { error: { code: '', message: 'm' } }]) {
    const got = errorFromWire(body, 503, 'the agent of host h1');
    assert.equal(got.code, Codes.UnexpectedResponse, JSON.stringify(body));
    assert.match(got.message, /the agent of host h1 answered 503/);
  }
});
