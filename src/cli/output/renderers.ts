// Renderers turn per-host output events and results into what the user sees. They
// consume HostSession events and HostResults only; none of them touches the network.
import { createHash } from 'node:crypto';
import { ErrorCodes } from '../../errors.js';
import { classify, describeOutcome, failureReason, hostExitCode, type HostResult, type OutcomeClass } from '../execution/outcome.js';
import { foldHosts } from '../targeting/host-range.js';
import { hostLabel } from '../targeting/host-label.js';
import { isTerminal, paletteFor } from './colors.js';
import { formatSummary } from './summary.js';
import { prefixedLine } from './prefixed-line.js';
import { neutralizeOutput } from '../terminal-text.js';
import type { HostSession } from '../execution/host-session.js';
import type { LeaderExit } from '../../protocol/messages.js';
import type { Target } from '../targeting/model.js';

/** A running host as renderers see it: which target, and a hold on its output. */
export interface RenderedHost {
  readonly target: Target;
  /**
   * Stops reading the host's output until the returned release is called: a sink that is
   * full holds the host. Holds are counted, so the host resumes only when every sink
   * that held it has drained.
   */
  hold(): () => void;
}

/**
 * What a renderer hears, once per event: a host started, a chunk of its output, its
 * command exited with the output held open, the host ended (every host, started or
 * not, in the order hosts end), the run ended.
 */
export interface Renderer {
  hostStarted?(host: RenderedHost): void;
  output?(host: RenderedHost, stream: OutputStream, chunk: Buffer): void;
  outputHeld?(host: RenderedHost, leader: LeaderExit): void;
  hostDone(result: HostResult): void;
  /** Once at the end with every host's result, in target order, and distrun's exit code. */
  finish(results: readonly HostResult[], exitCode: number): void;
  /** Resolves when everything the renderer wrote is on disk (file renderers). */
  close?(): Promise<void>;
}

export type OutputStream = 'stdout' | 'stderr';

/** What RendererSet needs of a host's session (a HostSession, or a fake in tests). */
export type OutputSource = Pick<HostSession, 'target' | 'on' | 'once' | 'pause' | 'resume'>;

/**
 * Every renderer of a run (live lines, progress, record, --outdir files) fed from one
 * subscription per host; the end of a host is the scheduler's one event (hostDone).
 */
export class RendererSet {
  constructor(private readonly renderers: readonly Renderer[]) {}

  hostStarted(session: OutputSource): void {
    const host: RenderedHost = { target: session.target, hold: countedHold(session) };
    for (const r of this.renderers) r.hostStarted?.(host);
    for (const stream of ['stdout', 'stderr'] as const) {
      session.on(stream, (chunk) => {
        for (const r of this.renderers) r.output?.(host, stream, chunk);
      });
    }
    session.once('output-held', (leader) => {
      for (const r of this.renderers) r.outputHeld?.(host, leader);
    });
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

/** Pauses the session at the first hold and resumes it when the last one is released. */
function countedHold(session: Pick<HostSession, 'pause' | 'resume'>): () => () => void {
  let holds = 0;
  return () => {
    if (holds++ === 0) session.pause();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--holds === 0) session.resume();
    };
  };
}

export interface OutputStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Called before anything is written to either stream: the progress line takes itself away. */
  beforeWrite?(): void;
}

/** Writes to one of the streams, after their beforeWrite hook; false when the stream is full. */
export function writeTo(streams: OutputStreams, stream: OutputStream, data: string | Buffer): boolean {
  streams.beforeWrite?.();
  return streams[stream].write(data);
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
  private readonly writers = new Map<Target, HostLines>();
  private readonly passThrough: boolean;

  constructor(
    private readonly streams: OutputStreams,
    private readonly options: { prefix: boolean; hostCount: number; neutralize: boolean },
  ) {
    this.passThrough = !options.prefix && options.hostCount === 1;
  }

  hostStarted(host: RenderedHost): void {
    const prefixFor = (stream: NodeJS.WritableStream) =>
      (this.options.prefix ? Buffer.from(paletteFor(stream).host(`${host.target.name}: `)) : Buffer.alloc(0));
    const write = (stream: OutputStream, data: Buffer): void => {
      // Local output backed up: stop reading from the agent until it drains.
      if (!writeTo(this.streams, stream, data)) this.streams[stream].once('drain', host.hold());
    };
    const sink = (which: OutputStream): LineSink => {
      const stream = this.streams[which];
      return {
        write: (data) => write(which, data),
        prefix: prefixFor(stream),
        filter: screenFilter(stream, this.options.neutralize),
        // On a terminal a CR inside a line writes the prefix again (prefixed-line.ts); into pipes and files, the bytes.
        reprefix: this.options.prefix && onScreen(stream, this.options.neutralize),
        lines: new LineSplitter(),
      };
    };
    this.writers.set(host.target, { stdout: sink('stdout'), stderr: sink('stderr') });
  }

  output(host: RenderedHost, stream: OutputStream, chunk: Buffer): void {
    const sink = this.writers.get(host.target)![stream];
    if (this.passThrough) sink.write(chunk);
    else emitLines(sink, sink.lines.push(chunk));
  }

  hostDone(result: HostResult): void {
    const writers = this.writers.get(result.target);
    this.writers.delete(result.target);
    // A last line without a newline is still shown, ended so the next host's line starts clean.
    for (const sink of writers ? [writers.stdout, writers.stderr] : []) {
      const last = sink.lines.flush();
      if (last) emitLines(sink, [Buffer.concat([last, Buffer.from('\n')])]);
    }
    reportHostError(this.streams, result);
  }

  finish(results: readonly HostResult[]): void {
    writeSummary(this.streams, results);
  }
}

/** One output stream of one host, as LineRenderer writes it. */
interface LineSink {
  write(data: Buffer): void;
  prefix: Buffer;
  filter: (bytes: Buffer) => Buffer;
  reprefix: boolean;
  lines: LineSplitter;
}

type HostLines = Record<OutputStream, LineSink>;

function emitLines(sink: LineSink, lines: Buffer[]): void {
  if (lines.length === 0) return;
  const parts: Buffer[] = [];
  for (const line of lines) parts.push(...(sink.reprefix ? prefixedLine(line, sink.prefix, sink.filter) : [sink.prefix, sink.filter(line)]));
  sink.write(Buffer.concat(parts));
}

/** A host that could not run the command is reported on stderr as soon as it is known. */
function reportHostError(streams: OutputStreams, result: HostResult): void {
  const reason = failureReason(result.outcome);
  if (reason === undefined) return;
  writeTo(streams, 'stderr', `distrun: ${paletteFor(streams.stderr).failure(`${hostLabel(result.target)}: ${reason}`)}\n`);
}

/** On stderr, when any host was not ok: counts per class and folded host lists per reason. */
export function writeSummary(streams: OutputStreams, results: readonly HostResult[]): void {
  const summary = formatSummary(results, paletteFor(streams.stderr));
  if (summary) writeTo(streams, 'stderr', summary);
}

/**
 * `-b, --gather` (like `clush -b`): nothing live; at the end, hosts whose stdout, stderr
 * and exit code are identical are printed once, under their folded names, largest group
 * first, neutralised on a terminal as the line output is. Each host's output is held
 * until it finishes; identical outputs are stored once.
 */
export class GatherRenderer implements Renderer {
  private readonly captured = new Map<Target, Record<OutputStream, Buffer[]>>();
  private readonly groups = new Map<string, { hosts: string[]; out: Buffer; err: Buffer; exit: string }>();

  constructor(private readonly streams: OutputStreams, private readonly options: { neutralize: boolean }) {}

  hostStarted(host: RenderedHost): void {
    this.captured.set(host.target, { stdout: [], stderr: [] });
  }

  output(host: RenderedHost, stream: OutputStream, chunk: Buffer): void {
    this.captured.get(host.target)![stream].push(chunk);
  }

  hostDone(result: HostResult): void {
    const capture = this.captured.get(result.target);
    this.captured.delete(result.target);
    if (capture) this.group(result, Buffer.concat(capture.stdout), Buffer.concat(capture.stderr));
    reportHostError(this.streams, result);
  }

  private group(result: HostResult, out: Buffer, err: Buffer): void {
    // A host that never ran and said nothing is only in the summary.
    if (failureReason(result.outcome) !== undefined && out.length === 0 && err.length === 0) return;
    const exit = result.outcome.kind === 'exit' && result.outcome.code === 0 ? '' : describeOutcome(result.outcome);
    const key = createHash('sha256').update(out).update('\0').update(err).update('\0').update(exit).digest('hex');
    const group = this.groups.get(key) ?? { hosts: [], out, err, exit };
    group.hosts.push(result.target.name);
    this.groups.set(key, group);
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
      writeTo(this.streams, 'stdout', header);
      if (group.out.length > 0) writeTo(this.streams, 'stdout', filterOut(withFinalNewline(group.out)));
      if (group.err.length > 0) writeTo(this.streams, 'stderr', filterErr(withFinalNewline(group.err)));
    }
    writeSummary(this.streams, results);
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
    writeTo(this.streams, 'stdout', `${JSON.stringify({ v: JSON_EVENTS_VERSION, type, time: new Date().toISOString(), ...fields })}\n`);
  }

  hostStarted({ target: { name: host, address, port } }: RenderedHost): void {
    this.emit('start', { host, address, port });
  }

  outputHeld(host: RenderedHost, leader: LeaderExit): void {
    this.emit('held', { host: host.target.name, code: leader.code ?? null, signal: leader.signal ?? null });
  }

  output(host: RenderedHost, stream: OutputStream, chunk: Buffer): void {
    const { text, encoding } = encodeBytes(chunk);
    this.emit(stream, { host: host.target.name, data: text, encoding });
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
    } else if (outcome.kind === 'skipped') {
      // On the wire as before: an error event with its own code (docs/json-events.md).
      this.emit('error', { ...common, code: ErrorCodes.SKIPPED, message: outcome.reason });
    }
  }

  finish(results: readonly HostResult[], exitCode: number): void {
    const counts: Record<string, number> = { ok: 0, failed: 0, timeout: 0, unreachable: 0, error: 0, skipped: 0 };
    for (const result of results) counts[statusOf(result)]! += 1;
    this.emit('summary', { hosts: results.length, ...counts, exitCode, durationMs: Date.now() - this.startedAt });
    writeSummary(this.streams, results);
  }
}

/** A host's `status` in the JSON events: its class of outcome, by the same names. */
function statusOf(result: HostResult): OutcomeClass {
  return classify(result.outcome);
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
