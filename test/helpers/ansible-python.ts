// The Python that runs ansible-core here (the #! line of ansible-inventory: on a machine
// with pyenv, `python3` may be another one without ansible), or undefined when
// ansible-core is not installed — tests that compare with it then skip, with one line.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function ansiblePython(): string | undefined {
  const candidates: string[] = [];
  const which = spawnSync('sh', ['-c', 'command -v ansible-inventory'], { encoding: 'utf8' });
  const path = which.stdout.trim();
  if (which.status === 0 && path !== '') {
    const shebang = /^#!\s*(\S+)/.exec(readFileSync(path, 'utf8'))?.[1];
    if (shebang && !shebang.endsWith('/env')) candidates.push(shebang);
  }
  candidates.push('python3');
  return candidates.find((python) => spawnSync(python, ['-c', 'import ansible'], { stdio: 'ignore' }).status === 0);
}

const ORACLE = fileURLToPath(new URL('../../../test/helpers/ansible-sources-oracle.py', import.meta.url));

/** test/helpers/ansible-sources-oracle.py on these cases, in one Python process. */
export function askAnsible<T>(python: string, cases: unknown[]): Record<string, T> {
  const r = spawnSync(python, [ORACLE], { input: JSON.stringify(cases), encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`ansible-sources-oracle.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, T>;
}
