// The default output: every host's lines under its name, live.
import { prefixedLine } from './prefixed-line.js';
import {
  NEWLINE,
  onScreen,
  reportHostError,
  screenFilter,
  writeSummary,
  writeTo,
  type OutputStream,
  type OutputStreams,
  type RenderedHost,
  type Renderer,
} from './renderers.js';
import type { HostResult } from '../execution/outcome.js';
import type { Target } from '../targeting/model.js';
import { paletteFor } from './colors.js';

/** Splits a byte stream into whole lines (each with its '\n'), keeping the incomplete rest. */
class LineSplitter {
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
      this.options.prefix ? Buffer.from(paletteFor(stream).host(`${host.target.name}: `)) : Buffer.alloc(0);
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
