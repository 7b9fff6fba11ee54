// Ansible settings that change what an inventory means. distrun reads Ansible inventories
// with ansible-core's defaults; where the environment or the ansible.cfg Ansible would
// use (config/manager.py find_ini_config_file: $ANSIBLE_CONFIG, ./ansible.cfg unless the
// directory is world-writable, ~/.ansible.cfg, /etc/ansible/ansible.cfg — the first
// found) sets one of these to something else, distrun would silently differ from
// Ansible: it says so instead.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** What the inventory at hand needs of Ansible's reading: its plugins, whether a directory is walked. */
interface SettingUses {
  /** The inventory plugins that read its files (default: yaml). */
  plugins?: readonly string[];
  directories?: boolean;
  /** Only the settings `ansible-inventory --list` does not apply for distrun (how a host is reached). */
  onlyDialling?: boolean;
}

interface Setting {
  env: string[];
  ini: Array<[section: string, key: string]>;
  /** Whether a value keeps Ansible's reading the one distrun implements. */
  harmless: (value: string, uses: Required<SettingUses>) => boolean;
  what: string;
  /** About how hosts are reached, not how the inventory is read: ansible-inventory's JSON does not carry it. */
  dialling?: boolean;
}

const list = (value: string): string[] =>
  value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
const sameList =
  (expected: string[]) =>
  (value: string): boolean =>
    list(value).join(',') === expected.join(',');
const sameSet =
  (expected: string[]) =>
  (value: string): boolean =>
    [...new Set(list(value))].sort().join(',') === [...expected].sort().join(',');
const builtin = (name: string): string[] => [name, `ansible.builtin.${name}`];
/** INVENTORY_IGNORE_EXTS's default: REJECT_EXTS and .orig .ini .cfg .retry. */
export const DEFAULT_IGNORE_EXTS = ['.pyc', '.pyo', '.swp', '.bak', '~', '.rpm', '.md', '.txt', '.rst', '.orig', '.ini', '.cfg', '.retry'];

const SETTINGS: Setting[] = [
  {
    env: ['ANSIBLE_PRECEDENCE'],
    ini: [['defaults', 'precedence']],
    what: 'the order of variable sources',
    harmless: sameList([
      'all_inventory',
      'groups_inventory',
      'all_plugins_inventory',
      'all_plugins_play',
      'groups_plugins_inventory',
      'groups_plugins_play',
    ]),
  },
  {
    env: ['ANSIBLE_YAML_FILENAME_EXT', 'ANSIBLE_INVENTORY_PLUGIN_EXTS'],
    ini: [
      ['defaults', 'yaml_valid_extensions'],
      ['inventory_plugin_yaml', 'yaml_valid_extensions'],
    ],
    what: 'which files are YAML (inventories, group_vars/, host_vars/)',
    harmless: sameList(['.yml', '.yaml', '.json']),
  },
  {
    env: ['ANSIBLE_VARS_ENABLED'],
    ini: [['defaults', 'vars_plugins_enabled']],
    what: 'which vars plugins run',
    harmless: (v) => list(v).length === 1 && builtin('host_group_vars').includes(list(v)[0]!),
  },
  {
    env: ['ANSIBLE_INVENTORY_ENABLED'],
    ini: [['inventory', 'enable_plugins']],
    what: 'which inventory plugins read the file',
    harmless: (v, uses) => uses.plugins.every((plugin) => list(v).some((p) => builtin(plugin).includes(p))),
  },
  {
    env: ['ANSIBLE_HASH_BEHAVIOUR'],
    ini: [['defaults', 'hash_behaviour']],
    what: 'how variables of several sources combine',
    harmless: (v) => v.trim() === 'replace',
  },
  {
    env: ['ANSIBLE_INVENTORY_IGNORE'],
    ini: [
      ['defaults', 'inventory_ignore_extensions'],
      ['inventory', 'ignore_extensions'],
    ],
    what: 'which files of an inventory directory are read',
    harmless: (v, uses) => !uses.directories || sameSet(DEFAULT_IGNORE_EXTS)(v),
  },
  {
    env: ['ANSIBLE_INVENTORY_IGNORE_REGEX'],
    ini: [
      ['defaults', 'inventory_ignore_patterns'],
      ['inventory', 'ignore_patterns'],
    ],
    what: 'which files of an inventory directory are read',
    harmless: (v, uses) => !uses.directories || list(v).length === 0,
  },
  {
    env: ['ANSIBLE_RUN_VARS_PLUGINS'],
    ini: [['defaults', 'run_vars_plugins']],
    what: 'when vars plugins run (and so their precedence)',
    harmless: (v) => v.trim() === 'demand',
  },
  {
    env: ['ANSIBLE_DUPLICATE_YAML_DICT_KEY'],
    ini: [['defaults', 'duplicate_dict_key']],
    what: 'whether a YAML key given twice is an error',
    harmless: (v) => ['warn', 'ignore'].includes(v.trim()),
  },
  {
    // to_safe_group_name rewrites group names unless the setting is never or ignore.
    env: ['ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS'],
    ini: [['defaults', 'force_valid_group_names']],
    what: 'group names (invalid characters replaced)',
    harmless: (v) => ['never', 'ignore'].includes(v.trim()),
  },
  {
    // The connection of hosts without ansible_connection: the dial rule is ssh's.
    env: ['ANSIBLE_TRANSPORT'],
    ini: [['defaults', 'transport']],
    what: 'the default connection (distrun dials as ssh would)',
    harmless: (v) => ['smart', 'ssh', 'ansible.builtin.ssh'].includes(v.trim()),
    dialling: true,
  },
  {
    env: ['ANSIBLE_PLAYBOOK_DIR'],
    ini: [['defaults', 'playbook_dir']],
    what: 'the playbook directory (whose group_vars/ and host_vars/ Ansible reads)',
    harmless: (v) => v.trim() === '',
  },
];

/** The ansible.cfg Ansible would read, if any. */
function ansibleConfigFile(env: NodeJS.ProcessEnv, cwd: string, home: string): string | undefined {
  const candidates: string[] = [];
  if (env.ANSIBLE_CONFIG !== undefined) {
    const given = resolve(cwd, env.ANSIBLE_CONFIG.replace(/^~(?=\/|$)/, home));
    candidates.push(existsSync(given) && statSync(given).isDirectory() ? join(given, 'ansible.cfg') : given);
  }
  try {
    if ((statSync(cwd).mode & 0o002) === 0) candidates.push(join(cwd, 'ansible.cfg'));
  } catch {
    // An unreadable current directory is skipped, as Ansible skips it.
  }
  candidates.push(join(home, '.ansible.cfg'), '/etc/ansible/ansible.cfg');
  return candidates.find((path) => {
    try {
      readFileSync(path);
      return true;
    } catch {
      return false;
    }
  });
}

/** configparser's reading of an ansible.cfg, enough for `key = value` and `key: value` in sections. */
function readIni(text: string): Map<string, string> {
  const values = new Map<string, string>();
  let section = '';
  let last: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*([#;]|$)/.test(line)) continue;
    if (/^\s/.test(line) && last !== undefined) {
      values.set(last, `${values.get(last)!}\n${line.trim()}`);
      continue;
    }
    const header = /^\[([^\]]+)\]/.exec(line);
    if (header) {
      section = header[1]!.trim();
      last = undefined;
      continue;
    }
    const pair = /^([^=:]+)[=:](.*)$/.exec(line);
    if (!pair) continue;
    last = `${section}\0${pair[1]!.trim().toLowerCase()}`;
    values.set(last, pair[2]!.replace(/\s[#;].*$/, '').trim());
  }
  return values;
}

/** Each setting in effect that changes what Ansible makes of an inventory, with where it is set. */
export function ansibleSettingProblems(
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
  home = homedir(),
  uses: SettingUses = {},
): string[] {
  const needs = { plugins: uses.plugins ?? ['yaml'], directories: uses.directories ?? false, onlyDialling: uses.onlyDialling ?? false };
  const file = ansibleConfigFile(env, cwd, home);
  let ini = new Map<string, string>();
  if (file !== undefined) {
    try {
      ini = readIni(readFileSync(file, 'utf8'));
    } catch {
      // Unreadable: Ansible would not use it either.
    }
  }
  const problems: string[] = [];
  for (const setting of SETTINGS) {
    if (needs.onlyDialling && !setting.dialling) continue;
    // The environment wins over the file, as in Ansible.
    const fromEnv = setting.env.find((name) => env[name] !== undefined);
    const fromIni = setting.ini.find(([section, key]) => ini.has(`${section}\0${key}`));
    const value = fromEnv !== undefined ? env[fromEnv]! : fromIni !== undefined ? ini.get(`${fromIni[0]}\0${fromIni[1]}`)! : undefined;
    if (value === undefined || setting.harmless(value, needs)) continue;
    const where = fromEnv !== undefined ? `$${fromEnv}` : `${file} [${fromIni![0]}] ${fromIni![1]}`;
    problems.push(`${where} = ${JSON.stringify(value)} changes ${setting.what}`);
  }
  return problems;
}
