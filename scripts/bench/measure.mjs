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

const MAXRSS_MARK = 'distrun-bench-maxrss';

/** argv under GNU time, which reports the peak resident memory on stderr (maxRssOf reads it). */
export function underTime(argv) {
  return ['/usr/bin/time', '-f', `${MAXRSS_MARK} %M`, ...argv];
}

/** The peak resident memory (bytes) from underTime's stderr, and that stderr without time's lines. */
export function maxRssOf(stderr) {
  const text = stderr.toString();
  const match = new RegExp(`${MAXRSS_MARK} (\\d+)`).exec(text);
  const own = text
    .split('\n')
    .filter((line) => !line.startsWith(MAXRSS_MARK) && !line.startsWith('Command exited with non-zero status'))
    .join('\n');
  return { maxRss: match ? Number(match[1]) * 1024 : undefined, stderr: own };
}

/** Peak resident memory (bytes) and exit status of one run, from GNU time's %M. */
export function peakMemory(argv, env = {}) {
  const [program, ...args] = underTime(argv);
  const result = runSync(program, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  return { code: result.code, ...maxRssOf(result.stderr) };
}
