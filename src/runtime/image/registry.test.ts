// Tests of the distribution API client against real docker-registry instances (open, token and htpasswd auth).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Codes, isBerthError } from '../../lib/errors.js';
import { buildImage, type BuiltImage } from '../../../test/helpers/images.js';
import { startRegistry, type TestRegistry } from '../../../test/helpers/registry.js';
import { MediaTypes, sha256Hex } from './manifest.js';
import { RegistryClient } from './registry.js';
import { TokenCache } from './registry-auth.js';

const isCode = (code: string, text?: string) => (e: unknown) =>
  isBerthError(e) && e.code === code && (text === undefined || e.message.includes(text));

let open: TestRegistry;
let image: BuiltImage;
let tmp: string;

before(async () => {
  open = await startRegistry();
  image = await buildImage(open.host, 'lib/app', '1', { cmd: ['sh'] });
  tmp = await mkdtemp(join(tmpdir(), 'berth-registry-test-'));
});

after(async () => {
  await open?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('resolves a tag, fetches the config and streams a layer to disk verified', async () => {
  const client = new RegistryClient(open.host);
  assert.equal(client.baseUrl, `http://${open.host}`);
  const m = await client.resolveManifest('lib/app', '1', image.reference);
  assert.equal(m.digest, image.digest);
  assert.equal(m.mediaType, MediaTypes.OciManifest);
  assert.equal(`sha256:${sha256Hex(m.body)}`, m.digest);

  const config = JSON.parse((await client.getBlob('lib/app', m.manifest.config.digest, image.reference)).toString());
  assert.deepEqual(config.config.Cmd, ['sh']);

  const layer = m.manifest.layers[0]!;
  const dest = join(tmp, 'layer');
  let last = 0;
  await client.downloadBlob('lib/app', layer, dest, image.reference, (n) => (last = n));
  assert.equal(last, layer.size);
  assert.equal(`sha256:${sha256Hex(await readFile(dest))}`, layer.digest);

  // By digest, the answer is checked against the digest asked for.
  assert.equal((await client.resolveManifest('lib/app', image.digest, image.reference)).digest, image.digest);
});

test('a blob that does not match what the manifest promised is rejected and not kept', async () => {
  const client = new RegistryClient(open.host);
  const m = await client.resolveManifest('lib/app', '1', image.reference);
  const layer = m.manifest.layers[0]!;
  const dest = join(tmp, 'wrong-size');
  await assert.rejects(
    client.downloadBlob('lib/app', { digest: layer.digest, size: layer.size + 1 }, dest, image.reference),
    isCode(Codes.DigestMismatch),
  );
  assert.ok(!existsSync(dest));
  assert.deepEqual((await readdir(tmp)).filter((n) => n.includes('.tmp-')), []);
});

test('missing repository, tag and blob are InaccessibleImage naming the image', async () => {
  const client = new RegistryClient(open.host);
  await assert.rejects(client.resolveManifest('lib/nothing', '1', 'X/nothing:1'), isCode(Codes.InaccessibleImage, "'X/nothing:1' was not found"));
  await assert.rejects(client.resolveManifest('lib/app', '404', 'X/app:404'), isCode(Codes.InaccessibleImage, 'X/app:404'));
  await assert.rejects(
    client.getBlob('lib/app', `sha256:${'0'.repeat(64)}`, 'X/app:1'),
    isCode(Codes.InaccessibleImage, 'does not have'),
  );
});

test('redirects are followed (blob storage behind another origin)', async () => {
  const front = createServer((req, res) => {
    res.writeHead(307, { location: `http://${open.host}${req.url}` }).end();
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  try {
    const addr = front.address() as { port: number };
    const client = new RegistryClient(`127.0.0.1:${addr.port}`);
    const m = await client.resolveManifest('lib/app', '1', 'via redirect');
    assert.equal(m.digest, image.digest);
    const dest = join(tmp, 'redirected');
    await client.downloadBlob('lib/app', m.manifest.layers[0]!, dest, 'via redirect');
    assert.ok(existsSync(dest));
  } finally {
    front.closeAllConnections();
    await new Promise<void>((r) => front.close(() => r()));
  }
});

test('token auth: credentials go to the token server, tokens are cached per scope, access_token is accepted', async () => {
  const users = [{ username: 'bob', password: 'pw-bob' }];
  const reg = await startRegistry({ auth: 'token', users, tokenField: 'access_token' });
  try {
    const img = await buildImage(reg.host, 'team/svc', '2', { credentials: users[0] });
    const cache = new TokenCache();
    const credentials = [{ server: reg.host, ...users[0]! }];
    const client = new RegistryClient(reg.host, { credentials, tokenCache: cache });
    const before = reg.tokenRequests();
    const m = await client.resolveManifest('team/svc', '2', img.reference);
    await client.getBlob('team/svc', m.manifest.config.digest, img.reference);
    await client.resolveManifest('team/svc', img.digest, img.reference);
    assert.equal(reg.tokenRequests() - before, 1, 'one token for one scope');
    // Another client sharing the cache needs no new token.
    await new RegistryClient(reg.host, { credentials, tokenCache: cache }).resolveManifest('team/svc', '2', img.reference);
    assert.equal(reg.tokenRequests() - before, 1);

    await assert.rejects(new RegistryClient(reg.host).resolveManifest('team/svc', '2', img.reference), isCode(Codes.RegistryUnauthorized, 'none were given'));
    await assert.rejects(
      new RegistryClient(reg.host, { credentials: [{ server: reg.host, username: 'bob', password: 'nope' }] }).resolveManifest('team/svc', '2', img.reference),
      isCode(Codes.RegistryUnauthorized, "user 'bob'"),
    );
  } finally {
    await reg.stop();
  }
});

test('token auth without users: anonymous tokens pull', async () => {
  const reg = await startRegistry({ auth: 'token' });
  try {
    const img = await buildImage(reg.host, 'pub', '1');
    const m = await new RegistryClient(reg.host).resolveManifest('pub', '1', img.reference);
    assert.equal(m.digest, img.digest);
    assert.ok(reg.tokenRequests() > 0);
  } finally {
    await reg.stop();
  }
});

test('htpasswd (Basic) auth: credentials sent when they match the server', async () => {
  const users = [{ username: 'carol', password: 'pw-carol' }];
  const reg = await startRegistry({ auth: 'htpasswd', users });
  try {
    const img = await buildImage(reg.host, 'basic', '1', { credentials: users[0] });
    const ok = new RegistryClient(reg.host, { credentials: [{ server: reg.host, ...users[0]! }] });
    const m = await ok.resolveManifest('basic', '1', img.reference);
    assert.equal(m.digest, img.digest);
    await ok.getBlob('basic', m.manifest.config.digest, img.reference);
    await assert.rejects(new RegistryClient(reg.host).resolveManifest('basic', '1', img.reference), isCode(Codes.RegistryUnauthorized));
    await assert.rejects(
      new RegistryClient(reg.host, { credentials: [{ server: reg.host, username: 'carol', password: 'x' }] }).resolveManifest('basic', '1', img.reference),
      isCode(Codes.RegistryUnauthorized, 'credentials given'),
    );
  } finally {
    await reg.stop();
  }
});
