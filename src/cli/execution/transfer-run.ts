// The fanout of a copy or a fetch: one session per host with the transfer's request, in
// the usual schedule (fanout, --batch, --batch-wait, --max-fail), Ctrl-C stopping every
// host, and one report per host: its result, what its receiver or sender said of each
// entry, and its stderr. What runs on each host's session is the caller's (CopyFeeder,
// FetchCollector).
import { ErrorCodes } from '../../errors.js';
import { defaultSessionOptions } from '../../protocol/messages.js';
import type { RoutedTargets } from './broker-route.js';
import { CLIENT_SOFTWARE, hostSessionFactory, openBroker, openClient, saveTlsTickets } from './client.js';
import { Fanout, fanoutWithinFileLimit, scheduleFor, type ScheduleOptions } from './fanout.js';
import type { RunRequest } from './host-session.js';
import type { HostResult } from './outcome.js';
import type { Session } from './session.js';

/** The options a transfer shares with every command: connection and schedule. */
export interface TransferOptions extends ScheduleOptions {
  pki?: string;
  tokenFile?: string;
  connectTimeout: number;
  /** --broker: the brokers, and the way to hosts nothing else is said of (broker-route.ts). */
  broker?: string;
  timeout?: number;
}

export interface TransferReport<E> {
  result: HostResult;
  entries: readonly E[];
  /** What the receiver or sender wrote on stderr (why it stopped, when it did). */
  stderr: string;
}

interface TransferHooks<E> {
  /** A host's session has started: drive it; `entries` is read once it is done. */
  start: (session: Session) => { entries: readonly E[] };
  /** A host is done (reached or not). */
  done: (report: TransferReport<E>) => void;
  /** A note for the user (the fanout was lowered). */
  note: (text: string) => void;
}

/** Runs the transfer on every target (routed: broker-route.ts); the reports in target order, and whether Ctrl-C stopped it. */
export async function runTransfer<E>(
  { targets, urls: brokers }: RoutedTargets,
  transfer: Pick<RunRequest, 'copy' | 'fetch'> & { stdin: boolean },
  opts: TransferOptions,
  hooks: TransferHooks<E>,
): Promise<{ reports: TransferReport<E>[]; interrupted: boolean }> {
  const { tls: client, token } = openClient(opts);
  const timeoutMs = (opts.timeout ?? 0) * 1000;
  const request: RunRequest = {
    argv: [],
    ...(transfer.copy ? { copy: transfer.copy } : {}),
    ...(transfer.fetch ? { fetch: transfer.fetch } : {}),
    options: { ...defaultSessionOptions(), stdin: transfer.stdin, stderr: true, timeoutMs },
    token,
    software: CLIENT_SOFTWARE,
  };
  const limits = { connectTimeoutMs: opts.connectTimeout * 1000, commandTimeoutMs: timeoutMs };
  const reports = new Map<string, TransferReport<E>>();
  const report = (r: TransferReport<E>): void => {
    reports.set(r.result.target.name, r);
    hooks.done(r);
  };
  const asked = scheduleFor(opts, targets.length);
  const schedule = { ...asked, fanout: fanoutWithinFileLimit(asked.fanout, hooks.note) };
  const broker = await openBroker(brokers, opts, client, schedule.fanout);
  const fanout = new Fanout(targets, schedule, hostSessionFactory(request, client, limits, broker), {
    onStart: (session) => {
      const stderr: Buffer[] = [];
      session.on('stderr', (chunk) => stderr.push(chunk));
      const driven = hooks.start(session);
      session.once('done', (result) => report({ result, entries: driven.entries, stderr: Buffer.concat(stderr).toString('utf8') }));
    },
    // Hosts never started have no session: reported here.
    onDone: (result: HostResult) => {
      if (!reports.has(result.target.name)) report({ result, entries: [], stderr: '' });
    },
  });
  let interrupted = false;
  const onInterrupt = (): void => {
    interrupted = true;
    fanout.stop();
    for (const session of fanout.running) session.abort(ErrorCodes.INTERRUPTED, 'aborted by user');
  };
  process.on('SIGINT', onInterrupt);
  try {
    const results = await fanout.run();
    saveTlsTickets(client);
    return { reports: results.map((r) => reports.get(r.target.name) ?? { result: r, entries: [], stderr: '' }), interrupted };
  } finally {
    process.off('SIGINT', onInterrupt);
    await broker?.close();
  }
}
