// The renderers' side of a run: the Renderer interface, RendererSet (one subscription per
// host, counted holds for backpressure), and what every screen renderer shares: writing
// through beforeWrite, the terminal filter, a host's failure line and the summary.
// Renderers consume events and HostResults only; none of them touches the network.
import type { LeaderExit } from '../../protocol/messages.js';
import type { Session } from '../execution/session.js';
import { failureReason, type HostResult } from '../execution/outcome.js';
import type { Target } from '../targeting/model.js';
import { hostLabel } from '../targeting/host-label.js';
import { neutralizeOutput } from '../terminal-text.js';
import { isTerminal, paletteFor } from './colors.js';
import { formatSummary } from './summary.js';

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

/** What RendererSet needs of a host's session. */
type OutputSource = Pick<Session, 'target' | 'on' | 'once' | 'pause' | 'resume'>;

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
function countedHold(session: Pick<Session, 'pause' | 'resume'>): () => () => void {
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

export const NEWLINE = 0x0a;

/**
 * What a stream is given of the hosts' output: on a terminal, made safe for it
 * (terminal-text.ts) unless raw output was asked for; into pipes and files, the bytes.
 */
export function screenFilter(stream: NodeJS.WritableStream, neutralize: boolean): (bytes: Buffer) => Buffer {
  if (!onScreen(stream, neutralize)) return (bytes) => bytes;
  const { control } = paletteFor(stream);
  return (bytes) => neutralizeOutput(bytes, control);
}

export const onScreen = (stream: NodeJS.WritableStream, neutralize: boolean): boolean => neutralize && isTerminal(stream);

/** A host that could not run the command is reported on stderr as soon as it is known. */
export function reportHostError(streams: OutputStreams, result: HostResult): void {
  const reason = failureReason(result.outcome);
  if (reason === undefined) return;
  writeTo(streams, 'stderr', `distrun: ${paletteFor(streams.stderr).failure(`${hostLabel(result.target)}: ${reason}`)}\n`);
}

/** On stderr, when any host was not ok: counts per class and folded host lists per reason. */
export function writeSummary(streams: OutputStreams, results: readonly HostResult[]): void {
  const summary = formatSummary(results, paletteFor(streams.stderr));
  if (summary) writeTo(streams, 'stderr', summary);
}
