// `--json`: JSON Lines events (docs/json-events.md).
import { ErrorCodes } from '../../errors.js';
import type { LeaderExit } from '../../protocol/messages.js';
import { strictUtf8 } from '../../strict-utf8.js';
import { classify, hostExitCode, type HostResult, type OutcomeClass } from '../execution/outcome.js';
import type { Target } from '../targeting/model.js';
import { writeSummary, writeTo, type OutputStream, type OutputStreams, type RenderedHost, type Renderer } from './renderers.js';

/** Version of the `--json` event format (docs/json-events.md). */
const JSON_EVENTS_VERSION = 1;

/** Writes JSON Lines events (docs/json-events.md): what runs and copies share. */
export class JsonEvents {
  readonly startedAt = Date.now();

  constructor(private readonly streams: OutputStreams) {}

  emit(type: string, fields: Record<string, unknown>): void {
    writeTo(this.streams, 'stdout', `${JSON.stringify({ v: JSON_EVENTS_VERSION, type, time: new Date().toISOString(), ...fields })}\n`);
  }

  hostStarted({ name: host, address, port }: Target): void {
    this.emit('start', { host, address, port });
  }

  /** The host's end event: `exit`, `timeout`, `unreachable` or `error`, with `extra` fields (a copy's counts). */
  hostDone(result: HostResult, extra: Record<string, unknown> = {}, status: string = statusOf(result)): void {
    const { target, outcome, durationMs } = result;
    const common = { host: target.name, status, exitCode: hostExitCode(outcome), durationMs, ...extra };
    if (outcome.kind === 'exit') {
      const type = outcome.timedOut ? 'timeout' : 'exit';
      this.emit(type, { ...common, code: outcome.code ?? null, signal: outcome.signal ?? null, agent: result.agentSoftware ?? null });
    } else if (outcome.kind === 'error') {
      const type = status === 'unreachable' ? 'unreachable' : status === 'timeout' ? 'timeout' : 'error';
      this.emit(type, { ...common, code: outcome.code, message: outcome.message });
    } else if (outcome.kind === 'skipped') {
      // On the wire as before: an error event with its own code (docs/json-events.md).
      this.emit('error', { ...common, code: ErrorCodes.SKIPPED, message: outcome.reason });
    }
  }

  summary(results: readonly HostResult[], exitCode: number, extra: Record<string, number> = {}): void {
    const counts: Record<string, number> = { ok: 0, failed: 0, timeout: 0, unreachable: 0, error: 0, skipped: 0 };
    for (const result of results) counts[statusOf(result)]! += 1;
    this.emit('summary', { hosts: results.length, ...counts, ...extra, exitCode, durationMs: Date.now() - this.startedAt });
  }
}

/**
 * `--json`: JSON Lines events on stdout as they happen (docs/json-events.md): `start`,
 * `stdout`/`stderr` (each chunk, UTF-8 text or base64, so the bytes are exact), `held`
 * (the command exited, a background process holds its output open),
 * `exit`, `timeout`, `unreachable` or `error` per host, and a final `summary`.
 */
export class JsonRenderer implements Renderer {
  private readonly events: JsonEvents;

  constructor(private readonly streams: OutputStreams) {
    this.events = new JsonEvents(streams);
  }

  hostStarted({ target }: RenderedHost): void {
    this.events.hostStarted(target);
  }

  outputHeld(host: RenderedHost, leader: LeaderExit): void {
    this.events.emit('held', { host: host.target.name, code: leader.code ?? null, signal: leader.signal ?? null });
  }

  output(host: RenderedHost, stream: OutputStream, chunk: Buffer): void {
    const { text, encoding } = encodeBytes(chunk);
    this.events.emit(stream, { host: host.target.name, data: text, encoding });
  }

  hostDone(result: HostResult): void {
    this.events.hostDone(result);
  }

  finish(results: readonly HostResult[], exitCode: number): void {
    this.events.summary(results, exitCode);
    writeSummary(this.streams, results);
  }
}

/** A host's `status` in the JSON events: its class of outcome, by the same names. */
function statusOf(result: HostResult): OutcomeClass {
  return classify(result.outcome);
}

/** Text when the bytes are valid UTF-8, base64 otherwise, so JSON output stays byte-exact. */
function encodeBytes(bytes: Buffer): { text: string; encoding: 'utf8' | 'base64' } {
  const text = strictUtf8(bytes);
  return text !== undefined ? { text, encoding: 'utf8' } : { text: bytes.toString('base64'), encoding: 'base64' };
}
