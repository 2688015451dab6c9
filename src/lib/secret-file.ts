// Files that hold credentials: a warning when one is readable by others than its owner.
import { statSync } from 'node:fs';

/** What to tell the user when `file` (holding `what`) grants group or others read, else undefined. */
export function readableSecretWarning(file: string, what: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return undefined;
  }
  if ((mode & 0o044) === 0) return undefined;
  return `${file} holds ${what} and is readable by ${mode & 0o004 ? 'every user' : 'its group'} (mode ${mode.toString(8).padStart(4, '0')}): run chmod 600 ${file}`;
}
