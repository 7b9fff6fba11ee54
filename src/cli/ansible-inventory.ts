// Ansible's YAML inventory, read as it is, so a team can point `distrun -i` at the file it
// already has: `all`, `hosts`, `children`, `vars`, nested groups, `www[01:50:2]` ranges,
// implicit `all` and `ungrouped`. What is dialled: `ansible_host` (else the name); the
// agent port: `distrun_port` (else the default) — never `ansible_port`, which is ssh's.
// Variables follow Ansible's precedence: parent groups, then child groups (deeper wins,
// same depth by name), then the host's own.
import { InventoryError } from '../errors.js';
import { DEFAULT_AGENT_PORT } from '../protocol/constants.js';
import { expandHostPattern } from './host-range.js';
import type { HostEntry, Inventory } from './inventory.js';

type Vars = Record<string, unknown>;

interface GroupDef {
  hosts: Map<string, Vars>;
  children: Set<string>;
  vars: Vars;
}

const GROUP_KEYS = ['hosts', 'children', 'vars'];
const GROUP_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

const isMapping = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * An Ansible inventory has top-level groups (usually `all`) instead of our `defaults`,
 * `hosts` and `groups`: `all` decides; otherwise every top-level value must look like a
 * group (a mapping of hosts, children and vars).
 */
export function looksLikeAnsible(data: unknown): boolean {
  if (!isMapping(data)) return false;
  if ('all' in data) return true;
  const keys = Object.keys(data);
  if (keys.length === 0 || keys.some((k) => ['defaults', 'hosts', 'groups'].includes(k))) return false;
  return keys.every((k) => {
    const value = data[k];
    return isMapping(value) && Object.keys(value).length > 0 && Object.keys(value).every((g) => GROUP_KEYS.includes(g));
  });
}

export function parseAnsibleInventory(data: Record<string, unknown>, file: string): Inventory {
  const groups = new Map<string, GroupDef>();
  const fail = (message: string, entry: string): never => {
    throw new InventoryError(message, { file, entry });
  };

  const define = (name: string, body: unknown, path: string): void => {
    if (!GROUP_NAME.test(name)) fail('invalid group name', path);
    const group = groups.get(name) ?? { hosts: new Map(), children: new Set(), vars: {} };
    groups.set(name, group);
    if (body === null || body === undefined) return;
    if (!isMapping(body)) fail('a group must be a mapping with hosts, children or vars', path);
    const def = body as Record<string, unknown>;
    for (const key of Object.keys(def)) if (!GROUP_KEYS.includes(key)) fail(`unknown key (allowed: ${GROUP_KEYS.join(', ')})`, `${path}.${key}`);
    if (def.vars !== undefined && def.vars !== null) {
      if (!isMapping(def.vars)) fail('vars must be a mapping', `${path}.vars`);
      Object.assign(group.vars, def.vars);
    }
    if (def.hosts !== undefined && def.hosts !== null) {
      if (!isMapping(def.hosts)) fail('hosts must be a mapping of host names', `${path}.hosts`);
      for (const [pattern, vars] of Object.entries(def.hosts as Record<string, unknown>)) {
        if (vars !== null && !isMapping(vars)) fail('host variables must be a mapping', `${path}.hosts.${pattern}`);
        let names: string[];
        try {
          names = expandHostPattern(pattern);
        } catch (err) {
          return fail((err as Error).message, `${path}.hosts.${pattern}`);
        }
        for (const host of names) group.hosts.set(host, { ...group.hosts.get(host), ...(vars as Vars | null) });
      }
    }
    if (def.children !== undefined && def.children !== null) {
      if (!isMapping(def.children)) fail('children must be a mapping of groups', `${path}.children`);
      for (const [child, childBody] of Object.entries(def.children as Record<string, unknown>)) {
        group.children.add(child);
        define(child, childBody, `${path}.children.${child}`);
      }
    }
  };
  for (const [name, body] of Object.entries(data)) define(name, body, name);

  // Every group hangs under `all`; `ungrouped` holds hosts that are in no other group.
  const all = groups.get('all') ?? { hosts: new Map(), children: new Set(), vars: {} };
  groups.set('all', all);
  const parents = new Map<string, Set<string>>();
  for (const [name, group] of groups) for (const child of group.children) {
    if (!parents.has(child)) parents.set(child, new Set());
    parents.get(child)!.add(name);
  }
  for (const name of groups.keys()) if (name !== 'all' && !parents.has(name)) {
    all.children.add(name);
    parents.set(name, new Set(['all']));
  }

  // Depth for variable precedence (a group below another is more specific); cycles are errors.
  const depth = new Map<string, number>([['all', 0]]);
  const depthOf = (name: string, trail: string[]): number => {
    if (depth.has(name)) return depth.get(name)!;
    if (trail.includes(name)) fail(`groups contain each other in a cycle: ${[...trail, name].join(' -> ')}`, name);
    const d = 1 + Math.max(...[...(parents.get(name) ?? ['all'])].map((p) => depthOf(p, [...trail, name])));
    depth.set(name, d);
    return d;
  };
  for (const name of groups.keys()) depthOf(name, []);

  // The groups a host belongs to: those that list it, and all their ancestors.
  const memberOf = new Map<string, Set<string>>();
  const addAncestors = (host: string, group: string): void => {
    const set = memberOf.get(host)!;
    if (set.has(group)) return;
    set.add(group);
    for (const parent of parents.get(group) ?? []) addAncestors(host, parent);
  };
  for (const [name, group] of groups) for (const host of group.hosts.keys()) {
    if (!memberOf.has(host)) memberOf.set(host, new Set());
    addAncestors(host, name);
  }

  const inventory: Inventory = { file, defaults: { port: DEFAULT_AGENT_PORT }, hosts: new Map(), groups: new Map() };
  for (const [host, member] of memberOf) {
    const ordered = [...member].sort((a, b) => depth.get(a)! - depth.get(b)! || a.localeCompare(b));
    const vars: Vars = {};
    for (const group of ordered) Object.assign(vars, groups.get(group)!.vars);
    for (const group of ordered) Object.assign(vars, groups.get(group)!.hosts.get(host));
    const entry: HostEntry = {};
    if (vars.ansible_host !== undefined) {
      if (typeof vars.ansible_host !== 'string' || vars.ansible_host === '') fail('ansible_host must be a host name or address', `${host}.ansible_host`);
      entry.address = vars.ansible_host as string;
    }
    if (vars.distrun_port !== undefined) {
      const port = Number(vars.distrun_port);
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        fail(`distrun_port must be an integer from 1 to 65535, got ${JSON.stringify(vars.distrun_port)}`, `${host}.distrun_port`);
      }
      entry.port = port;
    }
    inventory.hosts.set(host, entry);
  }
  for (const [name, group] of groups) {
    if (name === 'all') continue;
    inventory.groups.set(name, [...group.hosts.keys(), ...[...group.children].map((c) => `@${c}`)]);
  }
  const ungrouped = [...all.hosts.keys()].filter((h) => [...memberOf.get(h)!].every((g) => g === 'all' || g === 'ungrouped'));
  inventory.groups.set('ungrouped', [...new Set([...(inventory.groups.get('ungrouped') ?? []), ...ungrouped])]);
  return inventory;
}
