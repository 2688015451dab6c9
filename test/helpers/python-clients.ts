// Where the Python Azure clients the tests drive are: virtual environments made by scripts/python-clients.sh (same pins).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const venvs = process.env.BERTH_VENVS ?? '/var/cache/berth/venvs';

/** The newest az CLI from PyPI (its container module sends 2024-05-01-preview). */
export const AZ_PYPI = { version: '2.91.0', venv: join(venvs, 'azure-cli-2.91.0') };
/** The newest Python SDK (its default api-version is 2026-06-01-preview). */
export const PYTHON_SDK = { version: '10.2.0b2', venv: join(venvs, 'azure-mgmt-containerinstance-10.2.0b2') };

/** A program of a venv, or an error that says how to make it. */
export function venvProgram(venv: string, program: string): string {
  if (!existsSync(join(venv, '.complete'))) throw new Error(`${venv} is missing: run scripts/python-clients.sh (scripts/test.sh does)`);
  return join(venv, 'bin', program);
}
