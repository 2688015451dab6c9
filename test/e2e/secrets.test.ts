// Secrets at rest: secure environment values and secret volume content are in no file another host user can read.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { execSession } from '../helpers/exec.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Api, endE2e, group, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'btsec0';
const SUB = 'sec-sub';
const RG = 'sec';
const SECRET_ENV = `env-secret-${process.pid}-7f3a9c`;
const SECRET_FILE = `volume-secret-${process.pid}-c41d2e`;
let registry: TestRegistry;
let berth: BerthProcess;
let api: Api;
let image: string;
let dataDir: string;

before(async () => {
  registry = await startRegistry();
  // the containers run as nobody: they must still read their secure values and secret volumes
  image = (await buildImage(registry.host, 'nobody', '1', { user: '65534:65534' })).reference;
  // a data dir an older berth left readable by everyone, with a readable database and config
  dataDir = mkdtempSync(join(tmpdir(), 'berth-e2e-'));
  chmodSync(dataDir, 0o755);
  writeFileSync(join(dataDir, 'berth.db'), '', { mode: 0o644 });
  berth = await startBerth({
    dataDir, bridge: BRIDGE, subnet: '10.213.125.0/24',
    // written 0644, as a hand-edited file might be; small disks and pool keep the scan below short
    config: { tokens: [`config-token-${process.pid}`], diskLimitGB: 1 / 16, sandboxPool: 1 },
  });
  api = new Api(berth, SUB);
});
after(() => endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE }));

/** Files under `roots` holding a secret that the user `uid` can read (grep as that user: the kernel decides). */
function readableWithSecrets(roots: string[], uid?: number): string[] {
  const as = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const argv = [...as, 'grep', '-rlsF', '-e', SECRET_ENV, '-e', SECRET_FILE, '--', ...roots];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).sort();
}

/** True when a dir on the way from `root` to `file` is closed to others (no o+x). */
const closedOnTheWay = (root: string, file: string) => {
  for (let d = dirname(file); d.length >= root.length; d = dirname(d)) if ((statSync(d).mode & 0o001) === 0) return true;
  return false;
};

test('secure values and secret volumes are in no file a non-root host user can read, and the containers (as nobody) still read them', async () => {
  // tightened at start, with a warning for the config file that holds tokens
  assert.equal(statSync(dataDir).mode & 0o777, 0o700);
  for (const f of ['berth.db', 'berth.db-wal', 'berth.db-shm']) assert.equal(statSync(join(dataDir, f)).mode & 0o777, 0o600, f);
  assert.match(berth.log(), new RegExp(`berth: warning: ${join(dataDir, 'config.json')} holds API tokens and is readable by every user \\(mode 0644\\): run chmod 600`));

  const body = group(image, {
    command: ['sh', '-c', 'echo "uid=$(id -u) env=${#SECRET} volume=$(wc -c < /secrets/token)"; exec sleep 100000'],
    env: [{ name: 'SECRET', secureValue: SECRET_ENV }],
  }) as any;
  body.properties.volumes = [{ name: 'creds', secret: { token: Buffer.from(SECRET_FILE).toString('base64') } }];
  body.properties.containers[0].properties.volumeMounts = [{ name: 'creds', mountPath: '/secrets', readOnly: true }];
  await api.createAndWait(RG, 'holder', body);
  const logs = async () => (await api.req('GET', `${api.groupPath(RG, 'holder')}/containers/main/logs`)).body?.content as string;
  assert.equal(await api.waitFor('the container to read its secrets', logs, 15_000), `uid=65534 env=${SECRET_ENV.length} volume=${SECRET_FILE.length}\n`);

  // an exec session holds the container's environment in a process spec while it runs
  const session = await execSession(api, RG, 'holder', 'main', 'sh -c "echo ${#SECRET}; exec sleep 1000"');
  await session.waitFor(/\d+\n/);
  assert.equal(session.output(), `${SECRET_ENV.length}\n`, 'exec sees the secure value too');

  // what the group wrote on its disk reaches the image once its file system is flushed
  const disks = join(dataDir, 'disks');
  for (const d of readdirSync(disks).filter((e) => e !== 'pool')) execFileSync('sync', ['-f', join(disks, d, 'fs')]);
  const roots = [dataDir, dirname(berth.runcRoot), ...readdirSync(tmpdir()).filter((e) => e.startsWith('berth-exec-')).map((e) => join(tmpdir(), e))];
  // as root: where they are (the scan sees them, so it would see a leak)
  const holders = readableWithSecrets(roots);
  const rel = holders.map((f) => relative(dataDir, f));
  for (const expected of [/^berth\.db(-wal)?$/, /^containers\/[^/]+\/bundle\/config\.json$/, /^disks\/[^/]+\/disk\.img$/]) {
    assert.ok(rel.some((f) => expected.test(f)), `${expected} holds a secret: ${rel.join(', ')}`);
  }
  // every file holding one is root's alone; only the secret volume's own files are readable by the
  // container's user, behind dirs closed to others
  for (const f of holders) {
    const mode = statSync(f).mode & 0o777;
    if ((mode & 0o077) === 0) continue;
    assert.match(relative(dataDir, f), /^disks\/[^/]+\/fs\/volumes\/creds\/token$/, `${f} (mode ${mode.toString(8)}) holds a secret`);
    assert.ok(closedOnTheWay(dataDir, f), `${f} is behind a dir closed to others`);
  }
  // as an ordinary host user: nothing
  assert.deepEqual(readableWithSecrets(roots, 65534), []);
  assert.deepEqual(readableWithSecrets(roots, 1000), []);

  session.ws.close();
  await session.closed;
  await api.deleteAndWait(RG, 'holder');
  // the group's disk went with it, secret volume and all
  assert.deepEqual(readableWithSecrets([join(dataDir, 'disks'), join(dataDir, 'containers')]), []);
});
