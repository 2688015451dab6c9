// Tests of the CNI runner's protocol handling with recording fake plugins.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { addNetworkList, CniPluginError, delNetworkList, type CniNetworkConfig } from './cni.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-cni-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A plugin that appends its env and config to a log and answers with a result naming itself. */
function fakePlugin(name: string, opts: { fail?: boolean; silentOnAdd?: boolean } = {}): void {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh
conf=$(cat)
printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "${name}" "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$conf" >> ${join(dir, 'calls.log')}
${opts.fail ? `echo '{"code":11,"msg":"boom","details":"from ${name}"}'; exit 1` : ''}
if [ "$CNI_COMMAND" = ADD ]; then
  ${opts.silentOnAdd ? 'exit 0' : `echo '{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.${name.length}/24"}],"dns":{"nameservers":["${name}"]}}'`}
fi
`);
  chmodSync(p, 0o755);
}

function calls(): { plugin: string; cmd: string; id: string; netns: string; ifName: string; conf: Record<string, any> }[] {
  try {
    return readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n').filter(Boolean).map((l) => {
      const [plugin, cmd, id, netns, ifName, conf] = l.split('\t');
      return { plugin, cmd, id, netns, ifName, conf: JSON.parse(conf) };
    });
  } finally {
    rmSync(join(dir, 'calls.log'), { force: true });
  }
}

fakePlugin('first');
fakePlugin('second');
fakePlugin('silent', { silentOnAdd: true });
fakePlugin('broken', { fail: true });

const net = (types: string[]): CniNetworkConfig => ({
  cniVersion: '1.0.0',
  name: 'testnet',
  plugins: types.map((type) => (type === 'second' ? { type, capabilities: { portMappings: true }, extra: 1 } : { type })),
});
const rt = { containerId: 'c1', netns: '/run/netns/x', ifName: 'eth0', capabilityArgs: { portMappings: [{ hostPort: 80 }], other: 1 } };

describe('CNI runner', () => {
  it('chains ADD results and hands capability args only to plugins that ask', async () => {
    const res = await addNetworkList(net(['first', 'silent', 'second']), rt, dir);
    assert.deepEqual(res.dns, { nameservers: ['second'] });
    const c = calls();
    assert.deepEqual(c.map((x) => `${x.plugin}:${x.cmd}`), ['first:ADD', 'silent:ADD', 'second:ADD']);
    assert.deepEqual([c[0].id, c[0].netns, c[0].ifName], ['c1', '/run/netns/x', 'eth0']);
    assert.equal(c[0].conf.prevResult, undefined);
    assert.equal(c[0].conf.runtimeConfig, undefined);
    assert.equal(c[0].conf.name, 'testnet');
    assert.equal(c[0].conf.cniVersion, '1.0.0');
    // a plugin printing nothing passes the previous result through
    assert.deepEqual(c[2].conf.prevResult.dns, { nameservers: ['first'] });
    assert.deepEqual(c[2].conf.runtimeConfig, { portMappings: [{ hostPort: 80 }] });
    assert.equal(c[2].conf.extra, 1);
  });

  it('runs DEL in reverse with the cached result, trying every plugin despite failures', async () => {
    const prev = { cniVersion: '1.0.0', ips: [{ address: '10.9.9.9/24' }] };
    await assert.rejects(delNetworkList(net(['first', 'broken', 'second']), rt, dir, prev), /boom: from broken/);
    const c = calls();
    assert.deepEqual(c.map((x) => `${x.plugin}:${x.cmd}`), ['second:DEL', 'broken:DEL', 'first:DEL']);
    for (const x of c) assert.deepEqual(x.conf.prevResult, prev);
    assert.deepEqual(c[0].conf.runtimeConfig, { portMappings: [{ hostPort: 80 }] });
  });

  it('reports the plugin error object', async () => {
    const err = await addNetworkList(net(['first', 'broken']), rt, dir).catch((e) => e);
    assert.ok(err instanceof CniPluginError);
    assert.equal(err.cniCode, 11);
    assert.equal(err.plugin, 'broken');
    calls();
  });

  it('fails clearly on a missing plugin', async () => {
    await assert.rejects(addNetworkList(net(['nope']), rt, dir), /"nope" not found/);
  });
});
