// distrunner-agent: command-line entry point of the daemon.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { isDistRunError, messageOf } from '../errors.js';
import { configureUsageErrors } from '../usage-errors.js';
import { SOFTWARE_VERSION } from '../version.js';
import { LOG_LEVELS, loadAgentConfig, type AgentConfig, type AgentFlags } from './config.js';
import { takeOverReloadSignals } from './process-start.js';
import { errorLine, formatLogStream, isJournalStream, withSyslogPriority } from './log-output.js';
import { loadRuntime } from './runtime.js';
import { startAgentServer, type AgentServer } from './server.js';
import { notifySystemd } from './systemd-notify.js';

/** Exit code for a configuration error: systemd's unit does not restart on it. */
export const EXIT_CONFIG_ERROR = 78; // EX_CONFIG from sysexits.h
/** Exit code for a command-line mistake (an unknown option, a bad value): not restarted either. */
export const EXIT_USAGE_ERROR = 64; // EX_USAGE from sysexits.h

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new InvalidArgumentError('must be an integer from 0 to 65535');
  return port;
}

interface AgentOptions extends AgentFlags {
  broker?: string;
  config?: string;
  checkConfig?: boolean;
  formatLog?: boolean;
}

function buildProgram(): Command {
  const program = new Command('distrunner-agent')
    .description('Run commands for distrun clients that present a certificate of the fleet CA')
    .version(SOFTWARE_VERSION, '-V, --version')
    .option('-c, --config <file>', 'YAML configuration file (default $DISTRUNNER_CONFIG; see config/agent.yaml)')
    .option('--check-config', 'check the configuration and every file it names, then exit (0 = valid, 78 = not)')
    .option('--host <address>', 'address to listen on, or several, comma separated (default 0.0.0.0)')
    .option('--port <port>', 'port to listen on (default 6789; 0 picks a free port)', parsePort)
    .option('--ca <file>', 'CA certificate that client certificates must chain to')
    .option('--cert <file>', "the agent's certificate")
    .option('--key <file>', "the agent's private key")
    .option('--crl <file>', 'certificate revocation list (from distrun certs revoke): revoked clients are refused')
    .option('--token-file <file>', 'require clients to present the token in this file')
    .addOption(new Option('--log-level <level>', 'log level (default info, or $DISTRUNNER_LOG_LEVEL)').choices(LOG_LEVELS))
    .option('--broker <urls>', 'also serve sessions through these NATS brokers, comma separated (host:port; see broker: in config/agent.yaml)')
    .option('--no-listen', 'do not listen for direct connections (with a broker: outbound connections only)')
    .option('--command-cgroups', "run each command in a cgroup of its own (the agent's cgroup must be delegated: systemd Delegate=yes)")
    .option(
      '--format-log',
      'read agent log lines (JSON) on stdin and print them as text: journalctl -u distrunner-agent -o cat | distrunner-agent --format-log',
    );
  configureUsageErrors(program, { exitOverride: true });
  return program;
}

/** SIGTERM/SIGINT: drain, then stop commands, exit 0. A second one kills every group at once. */
function handleStopSignals(server: AgentServer, log: Logger): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second stop signal: killing commands and exiting now');
      server.kill();
      process.exit(0);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    void notifySystemd({ STOPPING: '1', STATUS: 'draining sessions' });
    void server.close().then(() => {
      log.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/**
 * SIGHUP: re-read the configuration and every file it names; keep the old state on error.
 * One that arrived while the agent was starting (process-start.ts) is carried out now.
 */
function handleReloadSignal(server: AgentServer, log: Logger, current: AgentConfig, reread: () => AgentConfig): void {
  const reload = (): void => {
    try {
      const next = reread();
      server.reload(next);
      if (next.host !== current.host || next.port !== current.port || next.listen !== current.listen) {
        log.warn({ host: next.host, port: next.port, listen: next.listen }, 'listen address changes need a restart');
      }
      if (JSON.stringify(next.broker) !== JSON.stringify(current.broker)) {
        log.warn({ broker: next.broker?.urls ?? null }, 'broker changes need a restart');
      }
      log.level = next.logLevel;
      log.info({ crl: next.crl, policyRules: next.policy?.length ?? 0, allowedClients: next.allowedClients.length }, 'reloaded');
    } catch (err) {
      log.error({ reason: messageOf(err), kept: 'previous configuration' }, 'reload failed');
    }
  };
  if (takeOverReloadSignals(reload)) {
    log.info('reload asked for while starting');
    reload();
  }
}

/** What the start-up code (src/bin/distrunner-agent.ts) did before loading the agent. */
export interface StartContext {
  /** Descriptors the agent was started with and closed (closeInheritedDescriptors). */
  inheritedDescriptors?: number[];
}

export async function main(argv: string[] = process.argv, context: StartContext = {}): Promise<void> {
  const program = buildProgram();
  try {
    program.parse(argv);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // --help and --version end here too, with commander's exit code 0.
    process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE_ERROR);
  }
  const opts = program.opts<AgentOptions>();
  const configFile = opts.config ?? process.env.DISTRUNNER_CONFIG;
  const flags: AgentFlags = {
    host: opts.host,
    port: opts.port,
    ca: opts.ca,
    cert: opts.cert,
    key: opts.key,
    crl: opts.crl,
    tokenFile: opts.tokenFile,
    logLevel: opts.logLevel ?? (process.env.DISTRUNNER_LOG_LEVEL as AgentFlags['logLevel']),
    commandCgroups: opts.commandCgroups,
    // commander's --no-listen default is true: only an explicit flag overrides the file.
    listen: opts.listen === false ? false : undefined,
    brokerUrls: opts.broker,
  };
  if (opts.formatLog) {
    await formatLogStream(process.stdin, process.stdout);
    return;
  }
  try {
    const config = loadAgentConfig(configFile, flags);
    const log = pino({
      level: config.logLevel,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // On the journal, each line carries its priority (`journalctl -p err` finds failures).
      ...(isJournalStream(1) ? { hooks: { streamWrite: withSyslogPriority } } : {}),
    });
    if (opts.checkConfig) {
      // The same loading as a start, files included, without listening (the `sshd -t` pattern).
      loadRuntime(config, log);
      process.stdout.write(`distrunner-agent: configuration OK${configFile ? ` (${configFile})` : ''}\n`);
      return;
    }
    if (context.inheritedDescriptors?.length) {
      log.info({ descriptors: context.inheritedDescriptors }, 'closed descriptors inherited from the parent');
    }
    const server = await startAgentServer(config, log, `distrunner-agent/${SOFTWARE_VERSION}`);
    handleStopSignals(server, log);
    const [first] = server.addresses;
    const listening = server.addresses.map((a) => `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    if (first) log.info({ host: first.address, port: first.port, listen: listening, version: SOFTWARE_VERSION }, 'listening');
    else log.info({ version: SOFTWARE_VERSION }, 'not listening: sessions come through the broker only');
    // Until here a SIGHUP was only noted (process-start.ts); one that came is carried out now.
    handleReloadSignal(server, log, config, () => loadAgentConfig(configFile, flags));
    // Ready only now: listening, and every signal handler installed.
    const withoutCgroups = config.commandCgroups && !server.commandCgroups ? '; commands without cgroups of their own (see the log)' : '';
    const where = [
      ...(first ? [`listening on ${listening.join(', ')}`] : []),
      ...(config.broker ? [`through brokers ${config.broker.urls.join(', ')}`] : []),
    ];
    await notifySystemd({ READY: '1', STATUS: `${where.join('; ')}${withoutCgroups}` });
  } catch (err) {
    if (isDistRunError(err)) {
      process.stderr.write(errorLine(`distrunner-agent: ${err.message}`));
      process.exit(EXIT_CONFIG_ERROR);
    }
    process.stderr.write(errorLine(`distrunner-agent: unexpected error: ${messageOf(err)}`));
    process.exit(1);
  }
}
