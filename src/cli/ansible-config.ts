// Ansible settings that change how ansible-core reads an inventory — from the environment
// or from the one ansible.cfg Ansible would use (config/manager.py find_ini_config_file:
// $ANSIBLE_CONFIG, ./ansible.cfg unless the directory is world-writable, ~/.ansible.cfg,
// /etc/ansible/ansible.cfg; the first that exists). distrun's readers follow Ansible's
// defaults; where one of these is set, only Ansible itself reads the inventory exactly.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Each setting: its environment variable, and its [section] key in ansible.cfg. */
const SETTINGS: ReadonlyArray<{ env: string; ini: ReadonlyArray<readonly [string, string]> }> = [
  { env: 'ANSIBLE_INVENTORY_IGNORE', ini: [['defaults', 'inventory_ignore_extensions'], ['inventory', 'ignore_extensions']] },
  { env: 'ANSIBLE_INVENTORY_IGNORE_REGEX', ini: [['defaults', 'inventory_ignore_patterns'], ['inventory', 'ignore_patterns']] },
  { env: 'ANSIBLE_INVENTORY_ENABLED', ini: [['inventory', 'enable_plugins']] },
  { env: 'ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS', ini: [['defaults', 'force_valid_group_names']] },
  { env: 'ANSIBLE_HASH_BEHAVIOUR', ini: [['defaults', 'hash_behaviour']] },
  { env: 'ANSIBLE_PRECEDENCE', ini: [['defaults', 'precedence']] },
  { env: 'ANSIBLE_YAML_FILENAME_EXT', ini: [['defaults', 'yaml_valid_extensions']] },
  { env: 'ANSIBLE_VARS_ENABLED', ini: [['defaults', 'vars_plugins_enabled']] },
];

/** The ansible.cfg Ansible would read, if any. */
export function ansibleConfigFile(env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  const candidates: string[] = [];
  if (env.ANSIBLE_CONFIG !== undefined) {
    const given = resolve(cwd, env.ANSIBLE_CONFIG);
    candidates.push(existsSync(given) && statSync(given).isDirectory() ? join(given, 'ansible.cfg') : given);
  }
  try {
    // A world-writable directory's ansible.cfg is ignored (Ansible warns).
    if ((statSync(cwd).mode & 0o002) === 0) candidates.push(join(cwd, 'ansible.cfg'));
  } catch {
    // No working directory: nothing to read there.
  }
  candidates.push(join(homedir(), '.ansible.cfg'), '/etc/ansible/ansible.cfg');
  return candidates.find((f) => existsSync(f));
}

/** The [section] key names set in an ansible.cfg (configparser: keys are case-insensitive). */
function iniKeys(text: string): Set<string> {
  const keys = new Set<string>();
  let section = '';
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*[#;]/.test(line) || /^\s/.test(line)) continue;
    const header = /^\[([^\]]+)\]/.exec(line);
    if (header) section = header[1]!.trim();
    else {
      const key = /^([^=:]+?)\s*[=:]/.exec(line)?.[1];
      if (key) keys.add(`${section}.${key.trim().toLowerCase()}`);
    }
  }
  return keys;
}

/** What changes inventory reading from Ansible's defaults here, in words, or undefined. */
export function changedInventorySettings(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string | undefined {
  const fromEnv = SETTINGS.find((s) => env[s.env] !== undefined);
  if (fromEnv) return `${fromEnv.env} is set`;
  const file = ansibleConfigFile(env, cwd);
  if (!file) return undefined;
  let keys: Set<string>;
  try {
    keys = iniKeys(readFileSync(file, 'utf8'));
  } catch {
    return `${file} cannot be read`;
  }
  for (const setting of SETTINGS) {
    const hit = setting.ini.find(([section, key]) => keys.has(`${section}.${key}`));
    if (hit) return `${file} sets [${hit[0]}] ${hit[1]}`;
  }
  return undefined;
}
