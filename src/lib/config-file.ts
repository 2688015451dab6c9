// Settings from a JSON config file, each overridden by a flag given on the command line.
import { existsSync, readFileSync } from 'node:fs';

/** Picks a setting: the flag when one was given (an empty list counts as none), else the file's, else `fallback`. */
export type Pick<C> = <K extends keyof C>(k: K, fallback: C[K]) => C[K];

/** The file's settings, and a `pick` over the flags and them. */
export function configPicker<C extends object>(file: string, flags: Partial<C>): { fromFile: Partial<C>; pick: Pick<C> } {
  const fromFile: Partial<C> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const given = (v: unknown) => v !== undefined && !(Array.isArray(v) && v.length === 0);
  const pick: Pick<C> = (k, fallback) => (given(flags[k]) ? flags[k] : fromFile[k] ?? fallback) as never;
  return { fromFile, pick };
}
