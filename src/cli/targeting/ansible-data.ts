// Ansible's in-memory inventory, as ansible-core builds it (ansible/inventory/data.py,
// group.py, host.py): every reader (YAML, INI, `ansible-inventory --list` JSON) makes the
// same calls Ansible's plugins make — addGroup, addHost, addChild, setVariable — so the
// order of hosts in a group, the groups of a host, group depth and priority, and which
// value of a variable wins come out as Ansible's. Pure: no files, no I/O.
import { InventoryError } from '../../errors.js';

export type Vars = Record<string, unknown>;

/** Names Ansible treats as the implicit localhost (C.LOCALHOST). */
export const LOCALHOST_NAMES: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '::1']);

class AnsibleHost {
  /** Groups in the order Ansible records them (ancestors before the group they lead to). */
  readonly groups: AnsibleGroup[] = [];
  readonly vars: Vars = {};

  constructor(
    readonly name: string,
    readonly implicit = false,
  ) {}

  /** host.add_group: the group's ancestors first, then the group itself. */
  addGroup(group: AnsibleGroup): void {
    for (const ancestor of group.ancestors()) if (!this.groups.includes(ancestor)) this.groups.push(ancestor);
    if (!this.groups.includes(group)) this.groups.push(group);
  }

  /** host.populate_ancestors(additions). */
  addAncestors(groups: Iterable<AnsibleGroup>): void {
    for (const group of groups) if (!this.groups.includes(group)) this.groups.push(group);
  }

  removeGroup(group: AnsibleGroup): void {
    const at = this.groups.indexOf(group);
    if (at < 0) return;
    this.groups.splice(at, 1);
    // An ancestor stays while another of the host's groups still descends from it.
    for (const ancestor of group.ancestors()) {
      if (ancestor.name === 'all') continue;
      if (!this.groups.some((g) => g.ancestors().has(ancestor))) this.removeGroup(ancestor);
    }
  }

  setVariable(key: string, value: unknown): void {
    setVar(this.vars, key, value);
  }
}

class AnsibleGroup {
  depth = 0;
  priority = 1;
  readonly hosts: AnsibleHost[] = [];
  readonly vars: Vars = {};
  readonly children: AnsibleGroup[] = [];
  readonly parents: AnsibleGroup[] = [];

  constructor(readonly name: string) {}

  /** Every group above this one. */
  ancestors(): Set<AnsibleGroup> {
    return walk(this, 'parents');
  }

  /** Every group below this one. */
  descendants(): Set<AnsibleGroup> {
    return walk(this, 'children');
  }

  /** group.add_child_group; a loop is an error, as in Ansible. */
  addChild(child: AnsibleGroup, file: string): boolean {
    if (child === this) throw new InventoryError(`group ${this.name} cannot contain itself`, { file, entry: this.name });
    if (this.children.includes(child)) return false;
    const startAncestors = child.ancestors();
    const newAncestors = this.ancestors();
    if (newAncestors.has(child)) {
      throw new InventoryError(`adding group ${child.name} as a child of ${this.name} makes a loop`, { file, entry: this.name });
    }
    newAncestors.add(this);
    for (const g of startAncestors) newAncestors.delete(g);
    this.children.push(child);
    child.depth = Math.max(this.depth + 1, child.depth);
    child.deepenChildren();
    if (!child.parents.includes(this)) {
      child.parents.push(this);
      for (const host of child.allHosts().hosts) host.addAncestors(newAncestors);
    }
    return true;
  }

  /** group._check_children_depth: children are deeper than their parents. */
  private deepenChildren(): void {
    let depth = this.depth;
    let level = new Set(this.children);
    while (level.size > 0) {
      depth += 1;
      const next = new Set<AnsibleGroup>();
      for (const g of level) {
        if (g.depth < depth) {
          g.depth = depth;
          for (const c of g.children) next.add(c);
        }
      }
      level = next;
    }
  }

  addHost(host: AnsibleHost): boolean {
    if (this.hosts.includes(host)) return false;
    this.hosts.push(host);
    host.addGroup(this);
    return true;
  }

  removeHost(host: AnsibleHost): void {
    const at = this.hosts.indexOf(host);
    if (at < 0) return;
    this.hosts.splice(at, 1);
    host.removeGroup(this);
  }

  setVariable(key: string, value: unknown): void {
    if (key === 'ansible_group_priority') {
      this.priority = pythonInt(value, `group ${this.name}: ansible_group_priority`);
      return;
    }
    setVar(this.vars, key, value);
  }

  /**
   * group.get_hosts: this group's hosts, then its children's in list order, then deeper
   * ones. Past the children, Ansible walks a Python set of groups, whose order is that of
   * memory addresses: `ordered` is false when that order decided where a host came, so
   * that a subscript (`g[0]`) on this group is refused rather than guessed.
   */
  allHosts(): { hosts: AnsibleHost[]; ordered: boolean } {
    const seen = new Set<AnsibleHost>();
    const hosts: AnsibleHost[] = [];
    let ordered = true;
    const take = (group: AnsibleGroup): void => {
      for (const host of group.hosts) {
        if (seen.has(host)) continue;
        seen.add(host);
        if (this.name === 'all' && host.implicit) continue;
        hosts.push(host);
      }
    };
    take(this);
    for (const child of this.children) take(child);
    // Deeper levels: Ansible appends the children of a level's groups in the order it
    // iterates that level, a set. That order shows only when two groups of the level bring
    // new groups and two of those hold hosts not seen before.
    const visited = new Set<AnsibleGroup>([this, ...this.children]);
    let level = [...this.children];
    while (level.length > 0) {
      const next: AnsibleGroup[] = [];
      let parentsWithNew = 0;
      for (const group of level) {
        const fresh = group.children.filter((c) => !visited.has(c));
        if (fresh.length > 0) parentsWithNew += 1;
        for (const child of fresh) if (!next.includes(child)) next.push(child);
      }
      const unseen = next.filter((g) => g.hosts.some((h) => !seen.has(h))).length;
      if (parentsWithNew > 1 && unseen > 1) ordered = false;
      for (const group of next) {
        take(group);
        visited.add(group);
      }
      level = next;
    }
    return { hosts, ordered };
  }
}

/** Python's int(value), which set_variable applies to a priority: what it refuses fails the source. */
function pythonInt(value: unknown, what: string): number {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value);
  if (typeof value === 'string' && /^\s*[+-]?[0-9]+(?:_[0-9]+)*\s*$/.test(value)) return Number(value.trim().replace(/_/g, ''));
  throw new InventoryError(`${what} must be an integer (Python's int() refuses ${JSON.stringify(value)})`);
}

function walk(start: AnsibleGroup, relation: 'parents' | 'children'): Set<AnsibleGroup> {
  const seen = new Set<AnsibleGroup>();
  let level = [...start[relation]];
  while (level.length > 0) {
    const next: AnsibleGroup[] = [];
    for (const g of level) {
      if (seen.has(g)) continue;
      seen.add(g);
      next.push(...g[relation]);
    }
    level = next;
  }
  return seen;
}

/** set_variable with DEFAULT_HASH_BEHAVIOUR=replace: a new value replaces the old one, mappings too. */
function setVar(vars: Vars, key: string, value: unknown): void {
  vars[key] = value;
}

/** sort_groups: by depth, then priority, then name (Python's code-point order). */
function sortGroups(groups: readonly AnsibleGroup[]): AnsibleGroup[] {
  return [...groups].sort((a, b) => a.depth - b.depth || a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** data.py's InventoryData: groups and hosts in the order they were first added. */
export class AnsibleInventoryData {
  readonly groups = new Map<string, AnsibleGroup>();
  readonly hosts = new Map<string, AnsibleHost>();
  /** Names that are both a host and a group (Ansible warns). */
  readonly warnings: string[] = [];

  constructor(readonly file: string) {
    this.addGroup('all');
    this.addGroup('ungrouped');
    this.addChild('all', 'ungrouped');
  }

  addGroup(name: string): AnsibleGroup {
    if (name === '') throw new InventoryError('empty group name', { file: this.file });
    let group = this.groups.get(name);
    if (!group) {
      group = new AnsibleGroup(name);
      this.groups.set(name, group);
    }
    return group;
  }

  addHost(name: string, groupName?: string): AnsibleHost {
    if (name === '') throw new InventoryError('empty host name', { file: this.file });
    let group: AnsibleGroup | undefined;
    if (groupName !== undefined) {
      group = this.groups.get(groupName);
      if (!group) throw new InventoryError(`group ${groupName} is not in the inventory`, { file: this.file });
    }
    let host = this.hosts.get(name);
    if (!host) {
      host = new AnsibleHost(name);
      this.hosts.set(name, host);
    }
    group?.addHost(host);
    return host;
  }

  /** add_child: a group or a host into a group. */
  addChild(parentName: string, childName: string): boolean {
    const parent = this.groups.get(parentName);
    if (!parent) throw new InventoryError(`${parentName} is not a known group`, { file: this.file });
    const child = this.groups.get(childName);
    if (child) return parent.addChild(child, this.file);
    const host = this.hosts.get(childName);
    if (host) return parent.addHost(host);
    throw new InventoryError(`${childName} is not a known host nor group`, { file: this.file, entry: parentName });
  }

  setVariable(entity: string, key: string, value: unknown): void {
    const target = this.groups.get(entity) ?? this.hosts.get(entity);
    if (!target) throw new InventoryError(`${entity} is not a known host nor group`, { file: this.file });
    target.setVariable(key, value);
  }

  /** reconcile_inventory: every group under `all`, hosts of no group in `ungrouped`. */
  reconcile(): void {
    const all = this.groups.get('all')!;
    const ungrouped = this.groups.get('ungrouped')!;
    for (const group of this.groups.values()) {
      if (group !== all && group.ancestors().size === 0) this.addChild('all', group.name);
    }
    for (const host of this.hosts.values()) {
      const mine = host.groups;
      if (mine.includes(ungrouped)) {
        if (mine.some((g) => g !== all && g !== ungrouped)) ungrouped.removeHost(host);
      } else if (!host.implicit && (mine.length === 0 || (mine.length === 1 && mine[0] === all))) {
        this.addChild('ungrouped', host.name);
      }
    }
    for (const name of this.groups.keys()) if (this.hosts.has(name)) this.warnings.push(`found both group and host with the same name: ${name}`);
  }
}

/** Where group_vars/ and host_vars/ files come in (the host_group_vars plugin), if any. */
export interface VarsFiles {
  /** Variables of group_vars/NAME (and its directory), or undefined. */
  group(name: string): Vars | undefined;
  /** Variables of host_vars/NAME (and its directory), or undefined. */
  host(name: string): Vars | undefined;
}

/**
 * A host's variables in Ansible's precedence (vars/manager.py, VARIABLE_PRECEDENCE's
 * default): `all`'s inventory vars, the other groups' inventory vars (sorted by depth,
 * priority, name), group_vars/all, the other groups' group_vars files (same order), the
 * host's inventory vars, host_vars/HOST. Later wins, whole values (hash_behaviour replace).
 * Several VarsFiles (next to the inventory, then next to the playbook) come stage by
 * stage, as Ansible's all_plugins_inventory then all_plugins_play, and so on.
 */
export function hostVariables(data: AnsibleInventoryData, host: AnsibleHost, files?: VarsFiles | readonly VarsFiles[]): Vars {
  const sources: readonly VarsFiles[] = files === undefined ? [] : 'group' in files ? [files as VarsFiles] : (files as readonly VarsFiles[]);
  const all = data.groups.get('all')!;
  const groups = sortGroups(host.groups.filter((g) => g.name !== 'all'));
  const vars: Vars = {};
  Object.assign(vars, all.vars);
  for (const g of groups) Object.assign(vars, g.vars);
  for (const source of sources) Object.assign(vars, source.group('all'));
  for (const source of sources) for (const g of groups) Object.assign(vars, source.group(g.name));
  Object.assign(vars, host.vars);
  for (const source of sources) Object.assign(vars, source.host(host.name));
  return vars;
}

/**
 * What pattern matching needs of an Ansible inventory, as plain data (it is cached as
 * JSON with the inventory): groups and hosts in Ansible's order, each group's hosts as
 * group.get_hosts() gives them, and whether that order is Ansible's own (allHosts).
 */
export interface AnsibleView {
  /** How the inventory was read, for `distrun hosts --explain`. */
  reader: string;
  /** Host names in the order they were first added (InventoryData.hosts). */
  hosts: string[];
  /**
   * False when that order is not Ansible's: read through `ansible-inventory --list`, whose
   * JSON sorts the groups, hosts come in another order (group orders are kept). Patterns
   * that depend on it (a subscript on a glob) must then be refused.
   */
  hostsOrdered?: boolean;
  /** Groups in the order they were first added, with their hosts (get_hosts). */
  groups: Array<{ name: string; hosts: string[]; ordered: boolean }>;
}

export function viewOf(data: AnsibleInventoryData, reader: string): AnsibleView {
  return {
    reader,
    hosts: [...data.hosts.keys()],
    groups: [...data.groups.values()].map((g) => {
      const { hosts, ordered } = g.allHosts();
      return { name: g.name, hosts: hosts.map((h) => h.name), ordered };
    }),
  };
}
