// berth's version, as its package.json says (what an agent registers with).
import { readFileSync } from 'node:fs';

export function berthVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
