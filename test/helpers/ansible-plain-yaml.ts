// A plain Ansible YAML inventory (all/hosts/children/vars: no ranges, no merge keys) read
// with the calls ansible-core's yaml plugin makes (plugins/inventory/yaml.py _parse_group),
// so pattern tests have Ansible's InventoryData whatever the state of distrun's own readers.
import { parse } from 'yaml';
import { AnsibleInventoryData } from '../../src/cli/targeting/ansible-data.js';

type Body = Record<string, Record<string, unknown> | null> | null;

export function plainAnsibleYaml(text: string, file: string): AnsibleInventoryData {
  const data = new AnsibleInventoryData(file);
  const group = (name: string, body: Body): string => {
    data.addGroup(name);
    for (const [key, section] of Object.entries(body ?? {})) {
      if (section === null) continue;
      if (key === 'vars') for (const [k, v] of Object.entries(section)) data.setVariable(name, k, v);
      if (key === 'children') for (const [child, childBody] of Object.entries(section)) data.addChild(name, group(child, childBody as Body));
      if (key === 'hosts') {
        for (const [host, vars] of Object.entries(section)) {
          data.addHost(host, name);
          for (const [k, v] of Object.entries((vars ?? {}) as Record<string, unknown>)) data.setVariable(host, k, v);
        }
      }
    }
    return name;
  };
  for (const [name, body] of Object.entries(parse(text) as Record<string, Body>)) group(name, body);
  data.reconcile();
  return data;
}
