// How distrun and distrunner-agent report a usage mistake: the error and one line
// pointing to --help (as pdsh, clush and ssh keep it short), never the whole help.
import type { Command } from 'commander';

/** `distrun certs agent`: the words that name a command, from the root down. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** The one line that follows a usage error. */
export function helpHint(command: Command): string {
  return `Try '${commandPath(command)} --help' for more information.`;
}

/**
 * Every command of the tree: an option error prints `PROGRAM: MESSAGE` and the hint line.
 * With `exitOverride` it then throws a CommanderError (the caller sets the exit code);
 * otherwise commander exits as it does by default.
 */
export function configureUsageErrors(command: Command, options: { exitOverride: boolean }): void {
  const program = commandPath(command).split(' ')[0]!;
  command.showHelpAfterError(helpHint(command)).configureOutput({
    // Commander's "error: X\n(Did you mean Y?)" becomes one line in the program's own style.
    outputError: (text, write) => write(text.replace(/^error: /, `${program}: `).replace(/\n\(Did you mean (.*)\?\)/, ' (did you mean $1?)')),
  });
  if (options.exitOverride) command.exitOverride();
  for (const sub of command.commands) configureUsageErrors(sub, options);
}
