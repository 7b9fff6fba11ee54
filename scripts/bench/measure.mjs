// Timed runs through hyperfine (wall time, and the client's CPU from its rusage), with
// the servers' CPU (agents or sshd, commands they ran included) read from /proc around
// the same runs, and /usr/bin/time for peak memory.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { commandLine, machineCpuSeconds, run, runSync } from './tools.mjs';

let sequence = 0;

/**
 * Times `argv` `runs` times after `warmup` untimed runs. `serverCpu()` returns the CPU
 * seconds of the server side so far. Resolves with medians and spreads, or with `error`
 * when the command failed (hyperfine stops at a non-zero exit status).
 */
export async function timeCommand({ work, label, argv, runs, warmup = 1, prepare, env, serverCpu = () => 0 }) {
  const json = join(work, `hyperfine-${(sequence += 1)}.json`);
  const args = ['-N', '--style', 'none', '--runs', String(runs), '--warmup', String(warmup), '--export-json', json, '--command-name', label];
  if (prepare) args.push('--prepare', commandLine(prepare));
  args.push('--', commandLine(argv));
  const server0 = serverCpu();
  const machine0 = machineCpuSeconds();
  const result = await run('hyperfine', args, { env: { ...process.env, ...env } });
  const executions = runs + warmup;
  const serverPerRun = (serverCpu() - server0) / executions;
  const machinePerRun = (machineCpuSeconds() - machine0) / executions;
  if (result.code !== 0) {
    return { label, error: (result.stderr.trim().split('\n').pop() || `hyperfine exited with ${result.code}`).slice(0, 200) };
  }
  const [stats] = JSON.parse(readFileSync(json, 'utf8')).results;
  rmSync(json, { force: true });
  return {
    label,
    median: stats.median,
    min: stats.min,
    max: stats.max,
    runs: stats.times.length,
    clientCpu: stats.user + stats.system,
    serverCpu: serverPerRun,
    machineCpu: machinePerRun,
  };
}

/** Peak resident memory (bytes) and exit status of one run, from GNU time's %M. */
export function peakMemory(argv, env = {}) {
  const result = runSync('/usr/bin/time', ['-f', 'distrun-bench-maxrss %M', ...argv], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const match = /distrun-bench-maxrss (\d+)/.exec(result.stderr);
  return { code: result.code, maxRss: match ? Number(match[1]) * 1024 : undefined, stderr: result.stderr };
}
