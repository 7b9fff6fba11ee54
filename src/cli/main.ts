// distrun: command-line entry point of the admin CLI.
import { Command } from 'commander';
import { OptionError } from '../errors.js';
import { SOFTWARE_VERSION } from '../version.js';
import { registerBrokerCommand } from './commands/broker.js';
import { registerCertsCommand } from './commands/certs.js';
import { registerCopyCommand, rerunCopy } from './commands/copy.js';
import { registerFetchCommand, rerunFetch } from './commands/fetch.js';
import { ExitCode, fatalError } from './exit-codes.js';
import { addConnectionOptions, addSelectionOptions, collect, DEFAULT_CONNECT_TIMEOUT_S, DISCOVERY_WAIT_S, seconds } from './options.js';
import { pingHosts, type PingOptions } from './commands/ping.js';
import { registerRunHistoryCommand } from './commands/run-history.js';
import { discoverHosts, listHosts, type HostsOptions } from './commands/hosts.js';
import { rerunCommand, runCommand, type RunOptions } from './commands/run.js';
import { registerRerunCommand } from './commands/rerun.js';
import { configureUsageErrors, helpHint } from '../usage-errors.js';
import { keepCommandAfterDoubleDash, registerHelpCommand, remoteCommand } from './usage.js';

function buildProgram(): Command {
  const program = new Command('distrun')
    .description('Run one command on many hosts through distrunner-agent over mutual TLS')
    .version(SOFTWARE_VERSION, '-V, --version')
    .usage(
      '[options] [--] COMMAND [ARGS...]\n       distrun copy [options] SRC... DEST\n       distrun fetch [options] REMOTE... LOCALDIR\n       distrun hosts|ping|runs|rerun [options]\n       distrun certs <init|agent|client|broker|revoke|crl|list|renew> ...\n       distrun broker config NODE...\n       distrun help [SUBCOMMAND]',
    )
    .argument('[command...]', 'the program and its arguments, passed to the hosts exactly as given')
    .enablePositionalOptions()
    .passThroughOptions();
  addConnectionOptions(addSelectionOptions(program))
    .option('-t, --stdin', 'send local stdin to every host (otherwise remote stdin is empty)')
    .option('--tty', 'run the command in a terminal on the host (top, vi, bash): your keys go to it, as with ssh -t')
    .option('--broadcast', 'with --tty on several hosts: send every key to all of them (output is prefixed)')
    .option('--no-stderr', "discard the commands' stderr instead of forwarding it")
    .option('--shell', 'run the command through /bin/sh -c on the hosts (words are joined with spaces)')
    .option('--script <file>', 'send a local script and run it with its interpreter (#! line, or /bin/sh); the command words are its arguments')
    .option('-N, --no-prefix', 'do not prefix output lines with the host name (one host: output is byte-exact)')
    .option(
      '--raw-control-chars',
      "pass the hosts' output to the terminal untouched, escape sequences and all (like less -r); only for hosts you trust",
    )
    .option('-q, --quiet', 'no progress line on the terminal')
    .option('-y, --yes', 'do not ask for confirmation on a terminal above $DISTRUN_CONFIRM_ABOVE (50) hosts')
    .option('-n, --dry-run', 'print the hosts and the exact argv, and run nothing')
    .option('--list-hosts', 'the same as --dry-run (Ansible habit)')
    .option('-b, --gather', 'at the end, print identical outputs once under folded host names (like clush -b)')
    .option('--json', 'JSON Lines events on stdout (docs/json-events.md)')
    .option('--outdir <dir>', "also write each host's output to DIR/HOST.out, DIR/HOST.err and its exit code to DIR/HOST.rc")
    .option('--timeout <sec>', "kill the command's process group on a host after SEC (exit code 124)", seconds)
    .option('--cwd <dir>', "run the command in this directory on the hosts (absolute path; default: the user's home)")
    .option('--env <name=value>', 'set an environment variable for the command (repeatable)', collect)
    .option('--batch <n|n%>', 'run in batches of N hosts (or N% of them): a batch starts when the previous one has finished')
    .option('--batch-wait <sec>', 'pause between batches', seconds)
    .option('--max-fail <n|n%>', 'start no new host once N hosts (or N%) were not ok; running ones finish')
    .action(async (command: string[], opts: RunOptions & { listHosts?: boolean }) => {
      process.exitCode = await runCommand(remoteCommand(command), { ...opts, dryRun: opts.dryRun === true || opts.listHosts === true });
    });

  addSelectionOptions(
    program
      .command('hosts')
      .description('print the hosts a selection resolves to, one per line')
      .argument('[expression...]', 'target expressions, as for -g'),
  )
    .option('--explain', 'also show which part of the selection chose each host')
    .option('--discover', 'also ask the brokers which of them are connected now (best effort: distrun ping checks each agent)')
    .option('--broker <urls>', "the fleet's NATS brokers, as for a run (default: $DISTRUN_BROKER, then the inventory's broker:)")
    .option('--wait <sec>', 'with --discover: how long to wait for answers', seconds, DISCOVERY_WAIT_S)
    .option('--connect-timeout <sec>', 'with --discover: give up on the brokers after SEC', seconds, DEFAULT_CONNECT_TIMEOUT_S)
    .option('--pki <dir>', 'with --discover: client certificate directory (default: $DISTRUN_PKI, ~/.config/distrun/pki)')
    .action(async (expressions: string[], opts: HostsOptions) => {
      const options = { ...opts, group: [...(opts.group ?? []), ...expressions] };
      process.exitCode = opts.discover ? await discoverHosts(options) : listHosts(options);
    });
  addConnectionOptions(
    addSelectionOptions(
      program.command('ping').description('connect and authenticate to each agent; report round-trip time, versions and certificate expiry'),
    ),
  )
    .option('-q, --quiet', 'no line for each host that answered: only failures and the summary')
    .option('--json', 'one JSON object per host, one per line')
    .action(async (opts: PingOptions) => {
      process.exitCode = await pingHosts(opts);
    });
  registerCopyCommand(program);
  registerFetchCommand(program);
  registerRunHistoryCommand(program);
  registerRerunCommand(program, { run: rerunCommand, copy: rerunCopy, fetch: rerunFetch });
  registerCertsCommand(program);
  registerBrokerCommand(program);
  // `distrun help [SUBCOMMAND]` shows help (the root's own action would otherwise run `help` remotely).
  registerHelpCommand(program);
  configureUsageErrors(program, { exitOverride: true });
  keepCommandAfterDoubleDash(program);
  program.hook('preSubcommand', (_program, subcommand) => inheritOptions(program, subcommand));
  return program;
}

/**
 * `distrun -i hosts.yaml ping`: options given before a subcommand that it also has count
 * as if given right after its name (otherwise they would be ignored without a word).
 */
function inheritOptions(program: Command, subcommand: Command): void {
  for (const option of subcommand.options) {
    const key = option.attributeName();
    const source = program.getOptionValueSource(key);
    if (source === 'cli' || source === 'env') {
      subcommand.setOptionValueWithSource(key, program.getOptionValue(key), source);
    }
  }
}

export async function main(argv: string[] = process.argv): Promise<void> {
  // A reader that went away (`distrun ... | head`) ends distrun as SIGPIPE ends other tools;
  // the agents see the disconnect and stop the commands.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(ExitCode.BROKEN_PIPE);
      throw err;
    });
  }
  const program = buildProgram();
  // The command whose action runs: a usage error found there points at its help.
  let active: Command = program;
  program.hook('preAction', (_program, actionCommand) => {
    active = actionCommand;
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const { message, exitCode } = fatalError(err);
    if (message) process.stderr.write(`distrun: ${message}\n`);
    if (err instanceof OptionError) process.stderr.write(`${helpHint(active)}\n`);
    process.exitCode = exitCode;
  }
}
