// The real ClusterShell as a reference: test/helpers/nodeset-oracle.py answers many node-set
// questions with ClusterShell's Python API in one process.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ORACLE = fileURLToPath(new URL('../../../test/helpers/nodeset-oracle.py', import.meta.url));

export type OracleRequest = { pattern: string } | { names: string[] };
export type OracleAnswer = { expand: string[]; fold: string; count: number } | { error: string };

/**
 * A Python that can import ClusterShell, or undefined. The Debian package installs it for
 * the system's python3, which a pyenv or venv python3 earlier on PATH does not see.
 */
export function clusterShellPython(): string | undefined {
  for (const python of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(python, ['-c', 'import ClusterShell'], { stdio: 'ignore' });
    if (r.status === 0) return python;
  }
  return undefined;
}

/** ClusterShell's answers, in the order of the requests (one Python process for all). */
export function askClusterShell(python: string, requests: readonly OracleRequest[]): OracleAnswer[] {
  const r = spawnSync(python, [ORACLE], {
    input: requests.map((q) => JSON.stringify(q)).join('\n') + '\n',
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`nodeset oracle failed (${r.status ?? r.signal}): ${r.stderr}`);
  const answers = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as OracleAnswer);
  if (answers.length !== requests.length) throw new Error(`nodeset oracle answered ${answers.length} of ${requests.length}`);
  return answers;
}
