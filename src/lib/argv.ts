// The exec API's one command string <-> an argument vector, with POSIX shell quoting and nothing else.

/**
 * Splits a command line into words as a POSIX shell would before expansion: unquoted blanks
 * separate words; '…' keeps everything literally; "…" keeps everything but lets a backslash
 * escape \ " $ ` and newline; elsewhere a backslash keeps the next character. Nothing is expanded
 * or interpreted: no variables, globs, pipes, redirections or `;` (run `sh -c '…'` for those).
 * A command without quotes or backslashes splits exactly on whitespace, as ACI's exec does.
 */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new SyntaxError(`unterminated ' quote at position ${i}`);
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      for (i++; ; i++) {
        if (i >= line.length) throw new SyntaxError('unterminated " quote');
        const d = line[i];
        if (d === '"') break;
        if (d === '\\' && i + 1 < line.length && '\\"$`\n'.includes(line[i + 1])) {
          if (line[i + 1] !== '\n') word += line[i + 1];
          i++;
        } else word += d;
      }
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new SyntaxError('a backslash at the end has nothing to escape');
      i++;
      if (line[i] !== '\n') {
        word += line[i];
        inWord = true;
      }
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

const plain = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** The inverse of splitCommand: splitCommand(quoteCommand(argv)) equals argv for any strings. */
export function quoteCommand(argv: string[]): string {
  return argv.map((a) => (plain.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
