// `-b, --gather`: identical outputs once, under folded host names, at the end.
import { createHash } from 'node:crypto';
import { describeOutcome, failureReason, type HostResult } from '../execution/outcome.js';
import { foldHosts } from '../targeting/host-range.js';
import type { Target } from '../targeting/model.js';
import {
  NEWLINE,
  reportHostError,
  screenFilter,
  writeSummary,
  writeTo,
  type OutputStream,
  type OutputStreams,
  type RenderedHost,
  type Renderer,
} from './renderers.js';

/**
 * `-b, --gather` (like `clush -b`): nothing live; at the end, hosts whose stdout, stderr
 * and exit code are identical are printed once, under their folded names, largest group
 * first, neutralised on a terminal as the line output is. Each host's output is held
 * until it finishes; identical outputs are stored once.
 */
export class GatherRenderer implements Renderer {
  private readonly captured = new Map<Target, Record<OutputStream, Buffer[]>>();
  private readonly groups = new Map<string, { hosts: string[]; out: Buffer; err: Buffer; exit: string }>();

  constructor(
    private readonly streams: OutputStreams,
    private readonly options: { neutralize: boolean },
  ) {}

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
    const groups = [...this.groups.values()]
      .map((g) => ({ ...g, label: foldHosts(g.hosts) }))
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
