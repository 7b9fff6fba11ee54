// Ansible's YAML inventory, read by the same steps as ansible-core's yaml plugin
// (plugins/inventory/yaml.py): every top-level key is a group; a group's `vars`,
// `children` and `hosts` are read in the order they come, making the plugin's calls on
// InventoryData in its order; a string where a mapping is expected is one key
// (`hosts: test5`); what the plugin skips with a warning is skipped with that warning;
// what makes it fail is an error here. Pure: the data comes from ansible-yaml-load.ts.
import { InventoryError } from '../../errors.js';
import { AnsibleInventoryData } from './ansible-data.js';
import { expandAnsibleHostPattern, HostPatternError } from './ansible-host-pattern.js';
import { PyDict, pyStr, pyType } from './ansible-yaml-load.js';

/** The extensions the yaml plugin accepts (its yaml_extensions default), besides none at all. */
export const YAML_PLUGIN_EXTENSIONS = ['.yaml', '.yml', '.json'];

const SECTIONS = ['vars', 'children', 'hosts'];

/** Python's truth of a value (`x or {}`). */
const falsy = (v: unknown): boolean =>
  v === null ||
  v === undefined ||
  v === false ||
  v === 0 ||
  v === '' ||
  (Array.isArray(v) && v.length === 0) ||
  (v instanceof PyDict && v.entries.length === 0);

const isMappingOrNone = (v: unknown): v is PyDict | null => v === null || v instanceof PyDict;

/**
 * InventoryModule.parse over loaded data; then reconcile_inventory, as InventoryManager
 * does once its sources are read — unless `into` is given, an inventory other sources
 * fill too, which its caller reconciles. `warn` receives Ansible's warnings.
 */
export function readAnsibleYaml(data: unknown, file: string, warn: (message: string) => void, into?: AnsibleInventoryData): AnsibleInventoryData {
  const fail = (message: string, entry?: string): never => {
    throw new InventoryError(`${message}; Ansible's yaml plugin fails on this file too`, { file, entry });
  };
  if (falsy(data)) fail('Parsed empty YAML file');
  if (!(data instanceof PyDict)) return fail(`YAML inventory has invalid structure, it should be a dictionary, got: ${pyType(data)}`);
  if (!falsy(data.get('plugin'))) fail('Plugin configuration YAML file, not YAML inventory (inventory plugins are not read natively)');
  // Several sources fill one InventoryData, reconciled by the caller once all are read.
  const inventory = into ?? new AnsibleInventoryData(file);

  const parseGroup = (name: unknown, body: unknown, path: string): unknown => {
    if (!isMappingOrNone(body)) {
      warn(`Skipping '${pyStr(name)}' as this is not a valid group definition`);
      return name;
    }
    if (typeof name !== 'string' || name === '') {
      return fail(
        falsy(name)
          ? `Unable to add group ${pyStr(name)}: Invalid empty/false group name provided: ${pyStr(name)}`
          : `Unable to add group ${pyStr(name)}: Invalid group name supplied, expected a string but got ${pyType(name)} for ${pyStr(name)}`,
        path,
      );
    }
    inventory.addGroup(name);
    if (body === null) return name;
    for (const section of SECTIONS) {
      if (!body.has(section)) continue;
      const value = body.get(section);
      if (typeof value === 'string') body.set(section, new PyDict().withEntry(value, null));
      else if (!isMappingOrNone(value))
        fail(`Invalid "${section}" entry for "${name}" group, requires a dictionary, found "${pyType(value)}" instead.`, `${path}.${section}`);
    }
    for (const key of body.keys()) {
      const value = body.get(key);
      if (!isMappingOrNone(value)) {
        warn(`Skipping key (${pyStr(key)}) in group (${name}) as it is not a mapping, it is a ${pyType(value)}`);
        continue;
      }
      if (value === null) continue;
      if (key === 'vars') {
        for (const [variable, v] of value.entries) setVariable(name, variable, v, `${path}.vars.${pyStr(variable)}`);
      } else if (key === 'children') {
        for (const [child, childBody] of value.entries) {
          const entry = `${path}.children.${pyStr(child)}`;
          const added = parseGroup(child, childBody, entry);
          if (typeof added !== 'string') fail(`${pyStr(added)} is not a known host nor group`, entry);
          inventory.addChild(name, added as string);
        }
      } else if (key === 'hosts') {
        for (const [pattern, vars] of value.entries) {
          const entry = `${path}.hosts.${pyStr(pattern)}`;
          if (typeof pattern !== 'string')
            fail(`Host pattern ${pyStr(pattern)} must be a string. Enclose integers/floats in quotation marks.`, entry);
          let hosts: string[];
          try {
            hosts = expandAnsibleHostPattern(pattern as string).hosts;
          } catch (err) {
            if (err instanceof HostPatternError) return fail(err.message, entry);
            throw err;
          }
          if (hosts.length === 0) warn(`host pattern ${pyStr(pattern)} in group ${name} names no host (Ansible expands it to none)`);
          const hostVars = falsy(vars) ? new PyDict() : vars;
          if (!(hostVars instanceof PyDict)) return fail(`Invalid data from file, expected dictionary and got:\n\n${pyStr(vars)}`, entry);
          for (const host of hosts) {
            if (host === '') fail('Invalid empty host name provided: ', entry);
            inventory.addHost(host, name);
            for (const [variable, v] of hostVars.entries) setVariable(host, variable, v, `${entry}.${pyStr(variable)}`);
          }
        }
      } else {
        warn(`Skipping unexpected key (${pyStr(key)}) in group (${name}), only "vars", "children" and "hosts" are valid`);
      }
    }
    return name;
  };

  const setVariable = (entity: string, variable: unknown, value: unknown, entry: string): void => {
    try {
      inventory.setVariable(entity, typeof variable === 'string' ? variable : pyStr(variable), value);
    } catch (err) {
      if (err instanceof InventoryError) fail(err.message, entry);
      throw err;
    }
  };

  for (const [name, body] of data.entries) parseGroup(name, body, pyStr(name));
  if (!into) inventory.reconcile();
  return inventory;
}
