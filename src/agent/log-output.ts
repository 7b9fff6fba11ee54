// Where the agent's log lines go and how people read them. The log is pino JSON, one
// object per line. Under systemd stdout is a stream to journald, which files every
// line at priority 6 (info) unless the line starts with a syslog prefix `<N>`
// (SyslogLevelPrefix=, on by default): with it, `journalctl -p err` finds failures.
// And for reading, `--format-log` turns the JSON lines into text, with nothing to
// download (pino-pretty is an npm package, not something to fetch onto a server).
import { fstatSync } from 'node:fs';

/**
 * Whether descriptor `fd` is the stream systemd connected to journald: JOURNAL_STREAM
 * holds that stream's "DEVICE:INODE" (a command's output redirected elsewhere keeps the
 * variable, so the descriptor itself is compared).
 */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const match = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!match) return false;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return stat.dev === BigInt(match[1]!) && stat.ino === BigInt(match[2]!);
  } catch {
    return false;
  }
}

/** pino's levels and their syslog priorities (trace and debug: 7, info 6, warn 4, error 3, fatal 2). */
const LEVELS: ReadonlyArray<[level: number, name: string, priority: number]> = [
  [10, 'TRACE', 7],
  [20, 'DEBUG', 7],
  [30, 'INFO', 6],
  [40, 'WARN', 4],
  [50, 'ERROR', 3],
  [60, 'FATAL', 2],
];

function levelOf(level: number): [number, string, number] {
  return ([...LEVELS].reverse().find(([l]) => level >= l) ?? LEVELS[0]!) as [number, string, number];
}

/** A pino line with its syslog prefix; pino writes `{"level":N,` first. */
export function withSyslogPriority(line: string): string {
  const level = /^\{"level":(\d+)/.exec(line)?.[1];
  return level === undefined ? line : `<${levelOf(Number(level))[2]}>${line}`;
}

/** An error line of the agent's own (stderr) with its syslog prefix when stderr is the journal. */
export function errorLine(text: string, journal = isJournalStream(2)): string {
  return `${journal ? '<3>' : ''}${text}\n`;
}

// A value that needs no quotes: no spaces, quotes, `=` or anything a terminal acts on.
const PLAIN = /^[\w.,:/@+%~-]+$/;

function formatValue(value: unknown): string {
  if (typeof value === 'string') return PLAIN.test(value) ? value : JSON.stringify(value);
  // JSON.stringify escapes control characters: a peer's bytes cannot drive the terminal.
  return JSON.stringify(value) ?? String(value);
}

/**
 * One log line as text: `TIME LEVEL message key=value ...`. Lines that are not the
 * agent's JSON come back as they were, with control characters escaped.
 */
function formatLogLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    entry = parsed as Record<string, unknown>;
  } catch {
    // eslint-disable-next-line no-control-regex
    return line.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  }
  const { level, time, msg, pid: _pid, hostname: _hostname, ...fields } = entry;
  const parts = [
    typeof time === 'string' ? time : formatValue(time),
    typeof level === 'number' ? levelOf(level)[1].padEnd(5) : formatValue(level),
    typeof msg === 'string' ? JSON.stringify(msg).slice(1, -1) : '',
  ];
  for (const [key, value] of Object.entries(fields)) parts.push(`${key}=${formatValue(value)}`);
  return parts.filter(Boolean).join(' ');
}

/** `--format-log`: JSON lines on stdin, text on stdout. */
export async function formatLogStream(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<void> {
  const { createInterface } = await import('node:readline');
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (!output.write(`${formatLogLine(line)}\n`)) await new Promise((resolve) => output.once('drain', resolve));
  }
}
