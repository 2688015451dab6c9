// Unit tests of the exec command's quoting rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quoteCommand, splitCommand } from './argv.js';

describe('splitCommand', () => {
  it('splits unquoted commands on whitespace, as ACI does', () => {
    assert.deepEqual(splitCommand('/bin/sh'), ['/bin/sh']);
    assert.deepEqual(splitCommand('  cat   /www/index.html\t'), ['cat', '/www/index.html']);
    assert.deepEqual(splitCommand('ls -la /'), ['ls', '-la', '/']);
    assert.deepEqual(splitCommand(''), []);
  });

  it('keeps quoted words together and interprets nothing else', () => {
    assert.deepEqual(splitCommand(`sh -c 'echo a b; exit 3'`), ['sh', '-c', 'echo a b; exit 3']);
    assert.deepEqual(splitCommand(`sh -c "echo \\"$HOME\\" \\\\ \\n"`), ['sh', '-c', 'echo "$HOME" \\ \\n']);
    assert.deepEqual(splitCommand(`echo it\\'s a\\ b`), ['echo', "it's", 'a b']);
    assert.deepEqual(splitCommand(`printf '' x""y`), ['printf', '', 'xy']);
    assert.deepEqual(splitCommand('echo $PATH | wc > f'), ['echo', '$PATH', '|', 'wc', '>', 'f']);
    assert.deepEqual(splitCommand(`a'b'"c"d`), ['abcd']);
  });

  it('refuses unbalanced quotes and a trailing backslash', () => {
    assert.throws(() => splitCommand(`echo it's`), /unterminated ' quote/);
    assert.throws(() => splitCommand('echo "a'), /unterminated " quote/);
    assert.throws(() => splitCommand('echo \\'), /backslash/);
  });
});

describe('quoteCommand', () => {
  it('round-trips any argument vector', () => {
    const cases = [
      ['cat', '/etc/hostname'],
      ['sh', '-c', `echo "a b" 'c' $X \\ \`d\`; exit 3`],
      ['', ' ', "'", '"', '\\', '\n', 'tab\there', 'ünïcode ✓'],
    ];
    for (const argv of cases) assert.deepEqual(splitCommand(quoteCommand(argv)), argv);
    assert.equal(quoteCommand(['cat', '/etc/hostname']), 'cat /etc/hostname');
    assert.equal(quoteCommand(['sh', '-c', "it's"]), `sh -c 'it'\\''s'`);
  });
});
