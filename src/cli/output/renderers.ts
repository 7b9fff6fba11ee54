// Renderers turn per-host output events and results into what the user sees. They
// consume HostSession events and HostResults only; none of them touches the network.
import { createHash } from 'node:crypto';
import { classify, describeOutcome, hostExitCode, type HostResult, type OutcomeClass } from '../execution/outcome.js';
import { foldHosts } from '../targeting/host-range.js';
import { hostLabel } from '../targeting/host-label.js';
import { isTerminal, paletteFor } from './colors.js';
import { formatSummary } from './summary.js';
import { prefixedLine } from './prefixed-line.js';
import { neutralizeOutput } from '../terminal-text.js';
import type { HostSession } from '../execution/host-session.js';

export interface Renderer {
  /** Called once per host when its session starts. */
  attach(session: HostSession): void;
  /** Called once per host when it has finished (or could not run). */
  hostDone(result: HostResult): void;
  /** Called once at the end with every host's result, in target order, and distrun's exit code. */
  finish(results: readonly HostResult[], exitCode: number): void;
  /** Resolves when everything the renderer wrote is on disk (file renderers). */
  close?(): Promise<void>;
}

/** Several renderers fed with the same events (e.g. live lines and --outdir files). */
export class RendererSet implements Renderer {
  constructor(private readonly renderers: readonly Renderer[]) {}

  attach(session: HostSession): void {
    for (const r of this.renderers) r.attach(session);
  }

  hostDone(result: HostResult): void {
    for (const r of this.renderers) r.hostDone(result);
  }

  finish(results: readonly HostResult[], exitCode: number): void {
    for (const r of this.renderers) r.finish(results, exitCode);
  }

  async close(): Promise<void> {
    await Promise.all(this.renderers.map((r) => r.close?.()));
  }
}

export interface OutputStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const NEWLINE = 0x0a;

/**
 * What a stream is given of the hosts' output: on a terminal, made safe for it
 * (terminal-text.ts) unless raw output was asked for; into pipes and files, the bytes.
 */
function screenFilter(stream: NodeJS.WritableStream, neutralize: boolean): (bytes: Buffer) => Buffer {
  if (!onScreen(stream, neutralize)) return (bytes) => bytes;
  const { control } = paletteFor(stream);
  return (bytes) => neutralizeOutput(bytes, control);
}

const onScreen = (stream: NodeJS.WritableStream, neutralize: boolean): boolean => neutralize && isTerminal(stream);

/** Splits a byte stream into whole lines (each with its '\n'), keeping the incomplete rest. */
export class LineSplitter {
  private rest: Buffer[] = [];

  push(chunk: Buffer): Buffer[] {
    const lines: Buffer[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      const piece = chunk.subarray(start, nl + 1);
      if (this.rest.length > 0) {
        this.rest.push(piece);
        lines.push(Buffer.concat(this.rest));
        this.rest = [];
      } else {
        lines.push(piece);
      }
      start = nl + 1;
    }
    if (start < chunk.length) this.rest.push(chunk.subarray(start));
    return lines;
  }

  /** The incomplete last line, if any. */
  flush(): Buffer | undefined {
    if (this.rest.length === 0) return undefined;
    const line = Buffer.concat(this.rest);
    this.rest = [];
    return line;
  }
}

/**
 * The default output: every line as `host: line`, written whole so two hosts never
 * mix inside a line, and on a terminal with its controls neutralised (`neutralize`) and
 * the prefix written again after a carriage return, so that every row shown starts with
 * the real prefix. With `prefix: false` and a single host, bytes pass through untouched
 * (like ssh); with several hosts, lines are still kept whole.
 */
export class LineRenderer implements Renderer {
  private readonly splitters = new Map<HostSession, { out: LineSplitter; err: LineSplitter }>();
  private readonly passThrough: boolean;

  constructor(
    private readonly streams: OutputStreams,
    private readonly options: { prefix: boolean; hostCount: number; neutralize: boolean },
  ) {
    this.passThrough = !options.prefix && options.hostCount === 1;
  }

  attach(session: HostSession): void {
    const prefixFor = (stream: NodeJS.WritableStream) =>
      (this.options.prefix ? Buffer.from(paletteFor(stream).host(`${session.target.name}: `)) : Buffer.alloc(0));
    const prefixes = new Map([[this.streams.stdout, prefixFor(this.streams.stdout)], [this.streams.stderr, prefixFor(this.streams.stderr)]]);
    const filters = new Map([this.streams.stdout, this.streams.stderr].map((s) => [s, screenFilter(s, this.options.neutralize)]));
    // On a terminal a CR inside a line writes the prefix again (prefixed-line.ts); into pipes and files, the bytes.
    const reprefix = new Map([this.streams.stdout, this.streams.stderr].map((s) => [s, this.options.prefix && onScreen(s, this.options.neutralize)]));
    const write = (stream: NodeJS.WritableStream, data: Buffer): void => {
      // Local output backed up: stop reading from the agent until it drains.
      if (!stream.write(data)) {
        session.pause();
        stream.once('drain', () => session.resume());
      }
    };
    if (this.passThrough) {
      session.on('stdout', (chunk) => write(this.streams.stdout, chunk));
      session.on('stderr', (chunk) => write(this.streams.stderr, chunk));
      return;
    }
    const splitters = { out: new LineSplitter(), err: new LineSplitter() };
    this.splitters.set(session, splitters);
    const emitLines = (stream: NodeJS.WritableStream, lines: Buffer[]): void => {
      if (lines.length === 0) return;
      const prefix = prefixes.get(stream)!;
      const filter = filters.get(stream)!;
      const parts: Buffer[] = [];
      for (const line of lines) parts.push(...(reprefix.get(stream) ? prefixedLine(line, prefix, filter) : [prefix, filter(line)]));
      write(stream, Buffer.concat(parts));
    };
    session.on('stdout', (chunk) => emitLines(this.streams.stdout, splitters.out.push(chunk)));
    session.on('stderr', (chunk) => emitLines(this.streams.stderr, splitters.err.push(chunk)));
    session.once('done', () => {
      // A last line without a newline is still shown, ended so the next host's line starts clean.
      const lastOut = splitters.out.flush();
      const lastErr = splitters.err.flush();
      if (lastOut) emitLines(this.streams.stdout, [Buffer.concat([lastOut, Buffer.from('\n')])]);
      if (lastErr) emitLines(this.streams.stderr, [Buffer.concat([lastErr, Buffer.from('\n')])]);
    });
  }

  hostDone(result: HostResult): void {
    reportHostError(this.streams.stderr, result);
  }

  finish(results: readonly HostResult[]): void {
    writeSummary(this.streams.stderr, results);
  }
}

/** A host that could not run the command is reported on stderr as soon as it is known. */
function reportHostError(stderr: NodeJS.WritableStream, result: HostResult): void {
  if (result.outcome.kind !== 'error') return;
  stderr.write(`distrun: ${paletteFor(stderr).failure(`${hostLabel(result.target)}: ${result.outcome.message}`)}\n`);
}

/** On stderr, when any host was not ok: counts per class and folded host lists per reason. */
export function writeSummary(stderr: NodeJS.WritableStream, results: readonly HostResult[]): void {
  const summary = formatSummary(results, paletteFor(stderr));
  if (summary) stderr.write(summary);
}

/**
 * `-b, --gather` (like `clush -b`): nothing live; at the end, hosts whose stdout, stderr
 * and exit code are identical are printed once, under their folded names, largest group
 * first, neutralised on a terminal as the line output is. Each host's output is held
 * until it finishes; identical outputs are stored once.
 */
export class GatherRenderer implements Renderer {
  private readonly captured = new Map<HostSession, { out: Buffer[]; err: Buffer[] }>();
  private readonly groups = new Map<string, { hosts: string[]; out: Buffer; err: Buffer; exit: string }>();

  constructor(private readonly streams: OutputStreams, private readonly options: { neutralize: boolean }) {}

  attach(session: HostSession): void {
    const capture = { out: [] as Buffer[], err: [] as Buffer[] };
    this.captured.set(session, capture);
    session.on('stdout', (chunk) => capture.out.push(chunk));
    session.on('stderr', (chunk) => capture.err.push(chunk));
    session.once('done', (result) => {
      this.captured.delete(session);
      const out = Buffer.concat(capture.out);
      const err = Buffer.concat(capture.err);
      // A host that never ran and said nothing is only in the summary.
      if (result.outcome.kind === 'error' && out.length === 0 && err.length === 0) return;
      const exit = result.outcome.kind === 'exit' && result.outcome.code === 0 ? '' : describeOutcome(result.outcome);
      const key = createHash('sha256').update(out).update('\0').update(err).update('\0').update(exit).digest('hex');
      const group = this.groups.get(key) ?? { hosts: [], out, err, exit };
      group.hosts.push(session.target.name);
      this.groups.set(key, group);
    });
  }

  hostDone(result: HostResult): void {
    reportHostError(this.streams.stderr, result);
  }

  finish(results: readonly HostResult[]): void {
    const groups = [...this.groups.values()].map((g) => ({ ...g, label: foldHosts(g.hosts) }))
      .sort((a, b) => b.hosts.length - a.hosts.length || a.label.localeCompare(b.label));
    const rule = '-'.repeat(15);
    const { stdout, stderr } = this.streams;
    const filterOut = screenFilter(stdout, this.options.neutralize);
    const filterErr = screenFilter(stderr, this.options.neutralize);
    for (const group of groups) {
      const header = `${rule}\n${group.label} (${group.hosts.length})${group.exit ? ` ${group.exit}` : ''}\n${rule}\n`;
      stdout.write(header);
      if (group.out.length > 0) stdout.write(filterOut(withFinalNewline(group.out)));
      if (group.err.length > 0) stderr.write(filterErr(withFinalNewline(group.err)));
    }
    writeSummary(this.streams.stderr, results);
  }
}

function withFinalNewline(bytes: Buffer): Buffer {
  return bytes[bytes.length - 1] === NEWLINE ? bytes : Buffer.concat([bytes, Buffer.from('\n')]);
}

/** Version of the `--json` event format (docs/json-events.md). */
export const JSON_EVENTS_VERSION = 1;

/**
 * `--json`: JSON Lines events on stdout as they happen (docs/json-events.md): `start`,
 * `stdout`/`stderr` (each chunk, UTF-8 text or base64, so the bytes are exact), `held`
 * (the command exited, a background process holds its output open),
 * `exit`, `timeout`, `unreachable` or `error` per host, and a final `summary`.
 */
export class JsonRenderer implements Renderer {
  private readonly startedAt = Date.now();

  constructor(private readonly streams: OutputStreams) {}

  private emit(type: string, fields: Record<string, unknown>): void {
    this.streams.stdout.write(`${JSON.stringify({ v: JSON_EVENTS_VERSION, type, time: new Date().toISOString(), ...fields })}\n`);
  }

  attach(session: HostSession): void {
    const { name: host, address, port } = session.target;
    this.emit('start', { host, address, port });
    session.once('output-held', (leader) => this.emit('held', { host, code: leader.code ?? null, signal: leader.signal ?? null }));
    for (const stream of ['stdout', 'stderr'] as const) {
      session.on(stream, (chunk) => {
        const { text, encoding } = encodeBytes(chunk);
        this.emit(stream, { host, data: text, encoding });
      });
    }
  }

  hostDone(result: HostResult): void {
    const { target, outcome, durationMs } = result;
    const common = { host: target.name, status: statusOf(result), exitCode: hostExitCode(outcome), durationMs };
    if (outcome.kind === 'exit') {
      const type = outcome.timedOut ? 'timeout' : 'exit';
      this.emit(type, { ...common, code: outcome.code ?? null, signal: outcome.signal ?? null, agent: result.agentSoftware ?? null });
    } else if (outcome.kind === 'error') {
      const type = common.status === 'unreachable' ? 'unreachable' : common.status === 'timeout' ? 'timeout' : 'error';
      this.emit(type, { ...common, code: outcome.code, message: outcome.message });
    }
  }

  finish(results: readonly HostResult[], exitCode: number): void {
    const counts: Record<string, number> = { ok: 0, failed: 0, timeout: 0, unreachable: 0, error: 0, skipped: 0 };
    for (const result of results) counts[statusOf(result)]! += 1;
    this.emit('summary', { hosts: results.length, ...counts, exitCode, durationMs: Date.now() - this.startedAt });
    writeSummary(this.streams.stderr, results);
  }
}

const STATUS: Record<OutcomeClass, string> = {
  ok: 'ok', failed: 'failed', timeout: 'timeout', unreachable: 'unreachable', error: 'error', skipped: 'skipped',
};

function statusOf(result: HostResult): string {
  return STATUS[classify(result.outcome)];
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Text when the bytes are valid UTF-8, base64 otherwise, so JSON output stays byte-exact. */
function encodeBytes(bytes: Buffer): { text: string; encoding: 'utf8' | 'base64' } {
  try {
    return { text: strictUtf8.decode(bytes), encoding: 'utf8' };
  } catch {
    return { text: bytes.toString('base64'), encoding: 'base64' };
  }
}
