// distrun's command line: `distrun help`, and `--` meaning "the rest is the remote
// command" even when the rest starts with a subcommand's name.
import type { Command } from 'commander';
import { OptionError } from '../errors.js';
import { commandPath } from '../usage-errors.js';

/**
 * `distrun help [SUBCOMMAND...]`: the help of that command, on stdout. The root has an
 * action of its own (the remote command), so commander would not add this by itself;
 * and its built-in one prints the whole help for an unknown name.
 */
export function registerHelpCommand(program: Command): void {
  program
    .command('help')
    .description('show the help of distrun or of a subcommand (the same as SUBCOMMAND --help)')
    .argument('[subcommand...]', 'for example: rerun, or: certs agent')
    .action((words: string[]) => {
      let command = program;
      for (const word of words) {
        const sub = command.commands.find((c) => c.name() === word);
        if (!sub) throw new OptionError(`no such subcommand: '${[commandPath(command), word].join(' ')}'`);
        command = sub;
      }
      command.outputHelp();
    });
}

/** What the action of `program` receives in front of a command that followed a root-level `--`. */
const AFTER_DOUBLE_DASH = '--';

/**
 * Commander dispatches `distrun -g web -- hosts` to the `hosts` subcommand (and `-- help`
 * to help), because `--` only ends options for it. Here the operands that came after a
 * root-level `--` keep a leading `--`, which no subcommand is named, so they reach the
 * run action, which drops it (remoteCommand).
 */
export function keepCommandAfterDoubleDash(program: Command): void {
  const parseOptions = program.parseOptions.bind(program);
  program.parseOptions = (args: string[]) => {
    const parsed = parseOptions(args);
    // The operands are what followed a `--` that ended the options (nothing before them
    // was an operand); a subcommand found earlier leaves a later `--` in `unknown`.
    const start = args.length - parsed.operands.length;
    const afterDash = parsed.unknown.length === 0 && args[start - 1] === '--' && parsed.operands.every((arg, i) => arg === args[start + i]);
    return afterDash ? { ...parsed, operands: [AFTER_DOUBLE_DASH, ...parsed.operands] } : parsed;
  };
}

/** The remote command as the run action receives it (see keepCommandAfterDoubleDash). */
export function remoteCommand(operands: readonly string[]): string[] {
  return operands[0] === AFTER_DOUBLE_DASH ? operands.slice(1) : [...operands];
}
