// Small process and measurement helpers for the benchmark: running tools, quoting for
// hyperfine, reading CPU time and memory from /proc, and summary statistics.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const CLOCK_TICKS_PER_S = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** True when `program` is on PATH (or is an executable path). */
export function have(program) {
  return spawnSync('sh', ['-c', 'command -v "$1" >/dev/null', 'sh', program]).status === 0;
}

/** Runs a program to completion; returns { code, stdout, stderr } (text). Never throws for a non-zero exit. */
export function runSync(program, args, options = {}) {
  const result = spawnSync(program, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options });
  if (result.error) throw new Error(`${program}: ${result.error.message}`);
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** Runs a program and resolves with its exit code, stdout as a Buffer and stderr as text. */
export function run(program, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    const out = [];
    let err = '';
    child.stdout?.on('data', (c) => out.push(c));
    child.stderr?.on('data', (c) => {
      err += c;
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
  });
}

/** Quotes one word for a POSIX shell (and for hyperfine's shell-words splitting). */
export function shellQuote(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${String(word).replace(/'/g, `'\\''`)}'`;
}

export function commandLine(argv) {
  return argv.map(shellQuote).join(' ');
}

/** utime+stime+cutime+cstime of a process in seconds: its own CPU and that of the children it reaped. */
export function processCpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** Busy CPU seconds of the whole machine (user+nice+system+irq+softirq+steal), from /proc/stat. */
export function machineCpuSeconds() {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_S;
}

/** Resident set size of a process in bytes (0 once it is gone). */
function statusBytes(pid, field) {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident memory of a process now (bytes; 0 when it is gone). */
export function rssBytes(pid) {
  return statusBytes(pid, 'VmRSS');
}

/** The most resident memory a process has had (bytes; 0 when it is gone). */
export function peakRssBytes(pid) {
  return statusBytes(pid, 'VmHWM');
}

/** Direct children of a process. */
export function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Samples `measure()` every `everyMs` until stop() is called; stop() resolves with the largest value seen. */
export function sampleMax(measure, everyMs = 100) {
  let max = measure();
  const timer = setInterval(() => {
    max = Math.max(max, measure());
  }, everyMs);
  return {
    current: () => max,
    stop: () => {
      clearInterval(timer);
      max = Math.max(max, measure());
      return max;
    },
  };
}
