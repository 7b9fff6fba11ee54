// `distrun ping`: connect and authenticate to every selected agent, run nothing, and
// report round-trip time, agent and protocol versions and certificate expiry.
import { defaultSessionOptions } from '../../protocol/messages.js';
import { routeTargets } from '../execution/broker-route.js';
import { CLIENT_SOFTWARE, hostSessionFactory, openBroker, openClient, saveTlsTickets } from '../execution/client.js';
import { Fanout, fanoutWithinFileLimit } from '../execution/fanout.js';
import { classify, runExitCode, type HostResult } from '../execution/outcome.js';
import { writeSummary, type OutputStreams } from '../output/renderers.js';
import { count } from '../plural.js';
import { hostLabel } from '../targeting/host-label.js';
import { resolveTargets, type SelectionOptions } from '../targeting/select.js';

export interface PingOptions extends SelectionOptions {
  fanout: number;
  connectTimeout: number;
  /** --broker: the brokers, and the way to hosts nothing else is said of (broker-route.ts). */
  broker?: string;
  pki?: string;
  tokenFile?: string;
  json?: boolean;
  /** -q: no line for a host that answered (failures and the summary only). */
  quiet?: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;

function describePong(result: HostResult): Record<string, unknown> | undefined {
  if (result.outcome.kind !== 'pong') return undefined;
  const expires = result.outcome.certificateExpires;
  return {
    host: result.target.name,
    address: result.target.address,
    port: result.target.port,
    status: 'ok',
    rttMs: result.outcome.rttMs,
    connectMs: result.outcome.connectMs,
    agent: result.agentSoftware ?? null,
    protocol: result.protocolVersion ?? null,
    certificateExpires: expires?.toISOString() ?? null,
    certificateDaysLeft: expires ? Math.floor((expires.getTime() - Date.now()) / DAY_MS) : null,
  };
}

export async function pingHosts(opts: PingOptions, io: OutputStreams = process): Promise<number> {
  const { targets, urls: brokers } = routeTargets(resolveTargets(opts), opts);
  const { tls: client, token } = openClient(opts);
  const request = { argv: [], options: defaultSessionOptions(), token, software: CLIENT_SOFTWARE };
  const limits = { connectTimeoutMs: opts.connectTimeout * 1000, commandTimeoutMs: 0 };
  const onDone = (result: HostResult): void => {
    const pong = describePong(result);
    if (opts.json) {
      const error = result.outcome.kind === 'error' ? { code: result.outcome.code, message: result.outcome.message } : null;
      const failure = { host: result.target.name, address: result.target.address, port: result.target.port, status: classify(result.outcome), error };
      io.stdout.write(`${JSON.stringify(pong ?? failure)}\n`);
    } else if (pong && !opts.quiet) {
      io.stdout.write(
        `${result.target.name}: ok  rtt ${Number(pong.rttMs).toFixed(1)} ms  connect ${Number(pong.connectMs).toFixed(1)} ms  ` +
          `${pong.agent}  protocol ${pong.protocol}  certificate expires ${String(pong.certificateExpires).slice(0, 10)} (${count(Number(pong.certificateDaysLeft), 'day')})\n`,
      );
    } else if (result.outcome.kind === 'error') {
      io.stderr.write(`distrun: ${hostLabel(result.target)}: ${result.outcome.message}\n`);
    }
  };
  const fanoutLimit = fanoutWithinFileLimit(Math.min(opts.fanout, targets.length), (note) => io.stderr.write(`distrun: ${note}\n`));
  const schedule = { fanout: fanoutLimit, batchSize: Infinity, batchWaitMs: 0, maxFail: Infinity };
  const broker = await openBroker(brokers, opts, client, fanoutLimit);
  const fanout = new Fanout(targets, schedule, hostSessionFactory(request, client, limits, broker), {
    onStart: () => {},
    onDone,
  });
  try {
    const results = await fanout.run();
    saveTlsTickets(client);
    writeSummary(io, results);
    return runExitCode(results, false);
  } finally {
    await broker?.close();
  }
}
