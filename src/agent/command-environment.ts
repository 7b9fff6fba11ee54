// The environment a command starts with: a clean one made by the agent, plus what the
// client asked for (`--env`), minus the variables no client may set. Pure.
import type { LocalUser } from './local-users.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The agent's own variables that commands inherit (locale and time zone). */
const INHERITED = ['LANG', 'LC_ALL', 'LC_CTYPE', 'TZ'];

/**
 * A clean environment, like a login: the agent's own variables (configuration paths,
 * anything systemd passed it) are not handed to commands.
 */
export function commandEnvironment(user: LocalUser, clientName: string, agentEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {
    PATH: commandPath(agentEnv),
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell || '/bin/sh',
    DISTRUN_CLIENT: clientName,
  };
  for (const key of INHERITED) if (agentEnv[key]) env[key] = agentEnv[key]!;
  return env;
}

/** The PATH commands are looked up in (the agent's, else the usual one). */
function commandPath(agentEnv: NodeJS.ProcessEnv = process.env): string {
  return agentEnv.PATH || DEFAULT_PATH;
}

/**
 * Variables a client may never set, whatever the policy says, with why. A policy that
 * allows `/usr/bin/systemctl` must not become "any code" through a variable that makes
 * the dynamic loader, the C library, a shell or an interpreter load or run something
 * else; and the variables the agent sets itself say who the command runs for and where
 * its programs come from. docs/security.md lists the same table for people.
 */
const REFUSED: ReadonlyArray<{ pattern: RegExp; why: string }> = [
  { pattern: /^(PATH|HOME|USER|LOGNAME|SHELL)$/, why: 'the agent sets it (the run-as user and where programs are found)' },
  { pattern: /^DISTRUN_/, why: 'the agent sets DISTRUN_* variables (DISTRUN_CLIENT names the client)' },
  { pattern: /^(LD_|GLIBC_TUNABLES$|MALLOC_)/, why: 'it changes how programs are loaded (dynamic loader, C library)' },
  {
    // glibc's own list of variables it ignores in setuid programs (unsecvars.h), but TMPDIR.
    pattern: /^(GCONV_PATH|GETCONF_DIR|HOSTALIASES|LOCALDOMAIN|LOCPATH|NIS_PATH|NLSPATH|RESOLV_HOST_CONF|RES_OPTIONS|TZDIR)$/,
    why: 'the C library loads files or modules named by it',
  },
  {
    pattern: /^(ENV|BASH_ENV|BASH_.*|SHELLOPTS|BASHOPTS|PS4|PROMPT_COMMAND|IFS|CDPATH|GLOBIGNORE|ZDOTDIR|FPATH)$/,
    why: 'a shell reads it when it starts or runs a command',
  },
  {
    pattern:
      /^(PYTHON.*|PERL.*|RUBY.*|GEM_PATH|GEM_HOME|NODE_.*|LUA_.*|TCLLIBPATH|CLASSPATH|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|JDK_JAVA_OPTIONS|PHPRC|PHP_INI_SCAN_DIR)$/,
    why: 'an interpreter loads code or options named by it',
  },
  {
    pattern:
      /^(PAGER|EDITOR|VISUAL|MANPAGER|SYSTEMD_PAGER|SYSTEMD_EDITOR|LESSOPEN|LESSCLOSE|SSH_ASKPASS|SUDO_ASKPASS|GIT_.*|OPENSSL_CONF|OPENSSL_ENGINES|OPENSSL_MODULES)$/,
    why: 'programs run the command or load the modules it names',
  },
];

/** Why the client may not set `name`, or undefined when it may (policy permitting). */
export function refusedVariable(name: string): string | undefined {
  return REFUSED.find(({ pattern }) => pattern.test(name))?.why;
}
