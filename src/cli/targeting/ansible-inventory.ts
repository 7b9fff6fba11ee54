// An Ansible YAML inventory as an Inventory: read as ansible-core's yaml plugin reads it
// (ansible-yaml.ts), with the variables of group_vars/ and host_vars/ (a VarsFiles, from
// ansible-vars-files.ts) in Ansible's precedence, and each host's address and port by the
// dial rule (ansible-dial.ts). Also where the format of a YAML inventory file is decided.
import { extname } from 'node:path';
import { InventoryError } from '../../errors.js';
import { DEFAULT_AGENT_PORT } from '../../protocol/constants.js';
import { hostVariables, viewOf, type AnsibleInventoryData, type VarsFiles } from './ansible-data.js';
import { dialEntry } from './ansible-dial.js';
import { readAnsibleYaml, YAML_PLUGIN_EXTENSIONS } from './ansible-yaml.js';
import { loadAnsibleYaml } from './ansible-yaml-load.js';
import type { Inventory } from './model.js';

/** The top-level keys of distrun's own format. */
const NATIVE_KEYS = ['defaults', 'hosts', 'groups'];

/**
 * Which format a YAML inventory is in, from its top-level keys: `all` makes it Ansible's;
 * otherwise any of our own keys (defaults, hosts, groups) makes it ours — whose parser
 * then names any other key as unknown; anything else (kubespray's `kube-master:` with no
 * value, say) is Ansible's, where every top-level key is a group. An empty file is ours.
 */
export function inventoryFormat(topKeys: readonly unknown[]): 'native' | 'ansible' {
  if (topKeys.includes('all')) return 'ansible';
  if (topKeys.length === 0 || topKeys.some((k) => typeof k === 'string' && NATIVE_KEYS.includes(k))) return 'native';
  return 'ansible';
}

/**
 * An Ansible YAML inventory. `varsFiles` gives group_vars/ and host_vars/ (next to the
 * inventory, then the playbook directory's; none when undefined); `warn` gets Ansible's
 * warnings (skipped keys and groups, duplicate keys).
 */
export function parseAnsibleInventory(
  text: string,
  file: string,
  varsFiles: VarsFiles | readonly VarsFiles[] | undefined,
  warn: (message: string) => void,
): Inventory {
  const ext = extname(file);
  if (ext !== '' && !YAML_PLUGIN_EXTENSIONS.includes(ext)) {
    throw new InventoryError(
      `this is an Ansible YAML inventory, but Ansible's yaml plugin reads only files named *${YAML_PLUGIN_EXTENSIONS.join(', *')} or without an extension: rename it`,
      { file },
    );
  }
  return inventoryFromAnsible(readAnsibleYaml(loadAnsibleYaml(text, file, warn), file, warn), file, 'ansible yaml', varsFiles, warn);
}

/**
 * An Inventory from Ansible's in-memory inventory, whichever reader built it: each host's
 * address and port by the dial rule from its variables in Ansible's precedence, and the
 * view pattern matching uses (`reader` names the reader for `hosts --explain`).
 */
export function inventoryFromAnsible(
  data: AnsibleInventoryData,
  file: string,
  reader: string,
  varsFiles: VarsFiles | readonly VarsFiles[] | undefined,
  warn: (message: string) => void,
): Inventory {
  const inventory: Inventory = { file, defaults: { port: DEFAULT_AGENT_PORT }, hosts: new Map(), groups: new Map(), ansible: viewOf(data, reader) };
  for (const host of data.hosts.values()) inventory.hosts.set(host.name, dialEntry(host.name, hostVariables(data, host, varsFiles), file));
  // The native member map, for code that reads it: each group's hosts as get_hosts()
  // gives them (`all` is implicit there).
  for (const group of inventory.ansible!.groups) if (group.name !== 'all') inventory.groups.set(group.name, group.hosts);
  for (const warning of data.warnings) warn(warning);
  return inventory;
}
