// Test fixture: a real Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler) through scripts/k8s-controlplane.sh, plus kubectl.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const script = join(repo, 'scripts/k8s-controlplane.sh');

export interface ControlPlane {
  dir: string;
  kubeconfig: string;
  bindir: string;
  kubectl(...args: string[]): Promise<string>;
  /** kubectl with JSON output, parsed. */
  json<T = any>(...args: string[]): Promise<T>;
  /** kubectl apply -f - of a manifest object. */
  apply(manifest: unknown): Promise<string>;
  stop(): Promise<void>;
}

/** The binaries' directory; builds them into the machine-wide cache on first use (minutes on 2 cores). */
export function controlPlaneBinaries(): string {
  return execFileSync('bash', [script, 'bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 }).trim();
}

/** `apiServerOnly`: etcd and kube-apiserver, without the controller-manager and the scheduler. */
export async function startControlPlane(o: { apiServerOnly?: boolean } = {}): Promise<ControlPlane> {
  const bindir = controlPlaneBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'berth-k8s-'));
  let kubeconfig: string;
  try {
    const env = { ...process.env, K8S_COMPONENTS: o.apiServerOnly ? 'apiserver' : 'all' };
    kubeconfig = (await execFileP('bash', [script, 'start', dir], { encoding: 'utf8', maxBuffer: 1 << 20, env })).stdout.trim();
  } catch (e) {
    await execFileP('bash', [script, 'stop', dir]).catch(() => undefined);
    const logs = execFileSync('bash', ['-c', `tail -n 20 ${dir}/*.log 2>/dev/null || true`], { encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`control plane did not start: ${(e as { stderr?: string }).stderr ?? e}\n${logs}`);
  }
  const kubectl = async (...args: string[]) => {
    try {
      return (await execFileP(join(bindir, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 60_000 })).stdout;
    } catch (e) {
      const x = e as { stderr?: string; stdout?: string; code?: number };
      throw Object.assign(new Error(`kubectl ${args.join(' ')}: exit ${x.code}: ${x.stderr ?? ''}${x.stdout ?? ''}`), { stdout: x.stdout, stderr: x.stderr, exitCode: x.code });
    }
  };
  return {
    dir, kubeconfig, bindir, kubectl,
    json: async (...args: string[]) => JSON.parse(await kubectl(...args, '-o', 'json')),
    apply: async (manifest: unknown) => {
      const p = execFile(join(bindir, 'kubectl'), ['--kubeconfig', kubeconfig, 'apply', '-f', '-'], { encoding: 'utf8' });
      let out = '';
      let err = '';
      p.stdout!.on('data', (d) => (out += d));
      p.stderr!.on('data', (d) => (err += d));
      p.stdin!.end(JSON.stringify(manifest));
      const code = await new Promise<number | null>((r) => p.on('close', r));
      if (code !== 0) throw new Error(`kubectl apply: ${err}`);
      return out;
    },
    async stop() {
      await execFileP('bash', [script, 'stop', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
