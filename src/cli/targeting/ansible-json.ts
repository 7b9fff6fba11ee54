// The JSON an inventory script prints for `--list` — and `ansible-inventory --list`
// prints the same format — read as plugins/inventory/script.py reads it: groups with
// `hosts` (a list), `children`, `vars`, a group given as a bare list of hosts or as a
// mapping of variables of a host named like the group, and `_meta.hostvars`. Ansible
// itself reads this format only from a script's output; distrun also reads it from a file
// or stdin (`-i -`), so `distrun -i <(ansible-inventory -i SRC --list)` works. Without
// `_meta.hostvars` the hosts have no variables (a script would be asked `--host` for each).
import { InventoryError } from '../../errors.js';
import type { AnsibleInventoryData } from './ansible-data.js';
import { yaml } from './yaml-module.js';

type Json = unknown;

// Key order decides group and host order: the parser keeps the text's order (JSON.parse
// would move integer-like keys such as a group "10" first).

const INDEX_KEY = /^(?:0|[1-9][0-9]{0,8})$/;

/** Objects as Maps, or undefined if one has an integer-like key (whose place JSON.parse lost). */
function asMaps(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(asMaps);
    return items.includes(undefined) ? undefined : items;
  }
  if (value === null || typeof value !== 'object') return value;
  const map = new Map<string, unknown>();
  for (const [k, v] of Object.entries(value)) {
    const converted = asMaps(v);
    if (INDEX_KEY.test(k) || converted === undefined) return undefined;
    map.set(k, converted);
  }
  return map;
}

/** The document as ordered Maps, or undefined when the text is not a JSON object. */
export function parseJsonObject(text: string): Map<string, Json> | undefined {
  if (!/^[\s]*\{/.test(text)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  // JSON.parse keeps the text's order, except for integer-like keys: then the slower parser.
  const fast = asMaps(parsed);
  if (fast !== undefined) return fast instanceof Map ? (fast as Map<string, Json>) : undefined;
  const doc = yaml().parseDocument(text, { schema: 'json', uniqueKeys: false });
  if (doc.errors.length > 0) return undefined;
  const value: unknown = doc.toJS({ mapAsMap: true });
  return value instanceof Map ? (value as Map<string, Json>) : undefined;
}

/**
 * Script output rather than a YAML-plugin inventory written as JSON (`all: {children:
 * {…}}`): `_meta`, or a group whose hosts or children are a list, or a bare host list.
 */
export function isScriptJson(doc: Map<string, Json>): boolean {
  if (doc.has('_meta')) return true;
  return [...doc.values()].some((g) => Array.isArray(g) || (g instanceof Map && (Array.isArray(g.get('hosts')) || Array.isArray(g.get('children')))));
}

/** Maps (from the ordered parse) back to plain objects, for variable values. */
function plain(value: Json): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), plain(v)]));
  if (Array.isArray(value)) return value.map(plain);
  return value;
}

/** script.py's parse after the script ran: fills `data`; the caller reconciles. */
export function readScriptJson(data: AnsibleInventoryData, doc: Map<string, Json>, file: string): void {
  const fail = (message: string, entry?: string): never => {
    throw new InventoryError(message, { file, entry });
  };
  const name = (value: Json, what: string, entry: string): string =>
    typeof value === 'string' ? value : fail(`${what} must be a string, got ${JSON.stringify(plain(value))}`, entry);
  // A set in script.py: each host's variables are applied once, whatever the order.
  const hosts = new Set<string>();
  let meta: Json;
  for (const [group, raw] of doc) {
    if (group === '_meta') {
      if (!(raw instanceof Map)) fail('_meta must be a mapping', '_meta');
      if ((raw as Map<string, Json>).has('hostvars')) meta = (raw as Map<string, Json>).get('hostvars');
      continue;
    }
    data.addGroup(group);
    let body: Map<string, Json>;
    if (!(raw instanceof Map)) body = new Map([['hosts', raw]]);
    else if (!['hosts', 'vars', 'children'].some((k) => raw.has(k)))
      body = new Map<string, Json>([
        ['hosts', [group]],
        ['vars', raw],
      ]);
    else body = raw as Map<string, Json>;
    if (body.has('hosts')) {
      const list = body.get('hosts');
      if (!Array.isArray(list)) fail(`group ${group} has bad data for the host list: it must be a list`, group);
      for (const host of list as Json[]) {
        const hostName = name(host, 'a host name', `${group}.hosts`);
        hosts.add(hostName);
        data.addHost(hostName, group);
      }
    }
    if (body.has('vars')) {
      const vars = body.get('vars');
      if (!(vars instanceof Map)) fail(`group ${group} has bad data for variables: they must be a mapping`, `${group}.vars`);
      for (const [k, v] of vars as Map<string, Json>) data.setVariable(group, String(k), plain(v));
    }
    if (body.has('children')) {
      const children = body.get('children');
      // Python iterates a list's items, a mapping's keys, a string's characters.
      const names = Array.isArray(children)
        ? children
        : children instanceof Map
          ? [...children.keys()]
          : typeof children === 'string'
            ? [...children]
            : fail(`group ${group} has bad data for children`, `${group}.children`);
      for (const child of names) {
        const childName = name(child, 'a child group name', `${group}.children`);
        data.addGroup(childName);
        data.addChild(group, childName);
      }
    }
  }
  if (meta !== undefined && !(meta instanceof Map)) fail('_meta.hostvars must be a mapping', '_meta.hostvars');
  for (const host of hosts) {
    const hostvars = meta as Map<string, Json> | undefined;
    const got = hostvars?.has(host) ? hostvars.get(host) : new Map();
    if (!(got instanceof Map)) fail('host variables must be a mapping', `_meta.hostvars.${host}`);
    for (const [k, v] of got as Map<string, Json>) data.setVariable(host, String(k), plain(v));
  }
}
