// The inventory (hosts.yaml): hosts, their addresses and ports, and groups. Parsing
// and selection are pure; only loadInventory and findInventoryFile touch the disk.
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type { Node as YamlNode, Pair } from 'yaml';
import { EmptySelectionError, InventoryError, OptionError, UsageError } from '../../errors.js';
import { describeSystemError } from '../../system-errors.js';
import { inventoryFormat, parseAnsibleInventory } from './ansible-inventory.js';
import { hostGroupVars, varsFilesDigest } from './ansible-vars-files.js';
import { ansibleSettingProblems } from './ansible-config.js';
import { expandHostList, expandHostPattern, splitOutsideBrackets } from './host-range.js';
import { DEFAULT_AGENT_PORT } from '../../protocol/constants.js';
import { distrunCacheDir } from '../cache-dir.js';
import { loadCachedInventory } from './inventory-cache.js';
import type { AnsibleView, VarsFiles } from './ansible-data.js';
import type { HostEntry, Inventory, Selection, Target } from './model.js';
import { selectAnsibleHosts, subscriptBase } from './ansible-pattern.js';
import { loadInventorySources, STDIN_SOURCE } from './ansible-sources.js';

export { DEFAULT_AGENT_PORT };

const HOST_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const GROUP_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const TOP_KEYS = ['defaults', 'hosts', 'groups'];
const HOST_KEYS = ['address', 'port'];
export const ALL_GROUP = 'all';

function portProblem(value: unknown): string | undefined {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535) return undefined;
  return `port must be an integer from 1 to 65535, got ${JSON.stringify(value)}`;
}

function checkPort(value: unknown, file: string, entry: string): number {
  const problem = portProblem(value);
  if (problem) throw new InventoryError(problem, { file, entry });
  return Number(value);
}

/** `web1:7000`, `[2001:db8::5]:7000`: the inverse of splitHostPort. */
export function joinHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Splits `host`, `host:port` or `[v6]:port`. A bare IPv6 address has no port. */
export function splitHostPort(spec: string): { host: string; port: string | undefined } {
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(spec);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] };
  if (isIP(spec) === 6) return { host: spec, port: undefined };
  const colon = spec.lastIndexOf(':');
  if (colon < 0) return { host: spec, port: undefined };
  return { host: spec.slice(0, colon), port: spec.slice(colon + 1) };
}

function validHostName(name: string): boolean {
  return HOST_NAME.test(name) || isIP(name) !== 0;
}

function lineOf(node: YamlNode | null | undefined, lineStarts: number[]): string {
  const offset = node?.range?.[0];
  if (offset === undefined) return '';
  let line = 0;
  while (line + 1 < lineStarts.length && lineStarts[line + 1]! <= offset) line++;
  return ` (line ${line + 1})`;
}

// Loaded on first use: a cached inventory needs no YAML parser (it takes 30 ms to load).
const require = createRequire(import.meta.url);
const yaml = (): typeof import('yaml') => require('yaml') as typeof import('yaml');

/** group_vars/ and host_vars/ for an Ansible inventory (next to it, then the playbook's); the warnings of its reading. */
export interface ParseOptions {
  varsFiles?: VarsFiles | readonly VarsFiles[];
  warnings?: string[];
}

export function parseInventory(text: string, file: string, options: ParseOptions = {}): Inventory {
  const { isMap, isScalar, isSeq, parseDocument } = yaml();
  const doc = parseDocument(text, { uniqueKeys: true });
  // The format is told by the file's top-level keys (ansible-inventory.ts inventoryFormat).
  const top = doc.contents;
  if (isMap(top) && inventoryFormat(top.items.map((p) => (isScalar(p.key) ? p.key.value : p.key))) === 'ansible') {
    const warnings = options.warnings ?? [];
    const inventory = parseAnsibleInventory(text, file, options.varsFiles, (m) => {
      if (!warnings.includes(m)) warnings.push(m);
    });
    return warnings.length > 0 ? { ...inventory, warnings } : inventory;
  }
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const where = first.linePos ? `line ${first.linePos[0].line}, column ${first.linePos[0].col}: ` : '';
    throw new InventoryError(`${where}invalid YAML: ${first.message.split('\n')[0]}`, { file });
  }
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') lineStarts.push(i + 1);
  const inventory: Inventory = { file, defaults: { port: DEFAULT_AGENT_PORT }, hosts: new Map(), groups: new Map() };
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return inventory;
  if (!isMap(root)) throw new InventoryError('the inventory must be a mapping with defaults, hosts and groups', { file });

  const entries = (node: YamlNode | null | undefined, entry: string): Array<Pair<unknown, unknown>> => {
    if (node === null || node === undefined || (isScalar(node) && node.value === null)) return [];
    if (!isMap(node)) throw new InventoryError(`must be a mapping${lineOf(node, lineStarts)}`, { file, entry });
    return node.items as Array<Pair<unknown, unknown>>;
  };
  const keyOf = (pair: Pair<unknown, unknown>): string => String(isScalar(pair.key) ? pair.key.value : pair.key);

  for (const pair of root.items as Array<Pair<unknown, unknown>>) {
    const key = keyOf(pair);
    if (!TOP_KEYS.includes(key)) {
      throw new InventoryError(`unknown key${lineOf(pair.key as YamlNode, lineStarts)} (allowed: ${TOP_KEYS.join(', ')})`, { file, entry: key });
    }
  }
  const section = (name: string) => root.get(name, true) as YamlNode | undefined;

  for (const pair of entries(section('defaults'), 'defaults')) {
    const key = keyOf(pair);
    if (key !== 'port') throw new InventoryError('unknown key (allowed: port)', { file, entry: `defaults.${key}` });
    inventory.defaults.port = checkPort(isScalar(pair.value) ? pair.value.value : pair.value, file, 'defaults.port');
  }

  for (const pair of entries(section('hosts'), 'hosts')) {
    const pattern = keyOf(pair);
    const entry = `hosts.${pattern}`;
    // A key may be a range (`web[01-20]`): every host it names gets the same settings.
    const names = expandInInventory(pattern, file, entry);
    if (!names.every(validHostName)) throw new InventoryError(`invalid host name${lineOf(pair.key as YamlNode, lineStarts)}`, { file, entry });
    const host: HostEntry = {};
    for (const field of entries(pair.value as YamlNode, entry)) {
      const key = keyOf(field);
      const value = isScalar(field.value) ? field.value.value : field.value;
      if (!HOST_KEYS.includes(key)) throw new InventoryError(`unknown key (allowed: ${HOST_KEYS.join(', ')})`, { file, entry: `${entry}.${key}` });
      if (key === 'port') host.port = checkPort(value, file, `${entry}.port`);
      if (key === 'address') {
        if (typeof value !== 'string' || !validHostName(value)) {
          throw new InventoryError(`address must be a host name or IP address, got ${JSON.stringify(value)}`, { file, entry: `${entry}.address` });
        }
        host.address = value;
      }
    }
    for (const name of names) inventory.hosts.set(name, host);
  }

  for (const pair of entries(section('groups'), 'groups')) {
    const name = keyOf(pair);
    const entry = `groups.${name}`;
    if (!GROUP_NAME.test(name)) throw new InventoryError('invalid group name', { file, entry });
    if (name === ALL_GROUP) throw new InventoryError(`'${ALL_GROUP}' is implicit (every host in the file) and cannot be defined`, { file, entry });
    const node = pair.value as YamlNode;
    if (!isSeq(node)) throw new InventoryError(`must be a list of hosts and @groups${lineOf(node, lineStarts)}`, { file, entry });
    const members = node.items.flatMap((item, i) => {
      const value = isScalar(item) ? item.value : item;
      if (typeof value !== 'string' && typeof value !== 'number') {
        throw new InventoryError('must be a host name or @group', { file, entry: `${entry}[${i}]` });
      }
      const member = String(value);
      if (member.startsWith('@')) return [member];
      return expandInInventory(member, file, `${entry}[${i}]`).map((spec) => {
        const { host, port } = splitHostPort(spec);
        if (!validHostName(host)) throw new InventoryError(`invalid host name ${JSON.stringify(member)}`, { file, entry: `${entry}[${i}]` });
        if (port !== undefined) checkPort(port, file, `${entry}[${i}]`);
        return spec;
      });
    });
    inventory.groups.set(name, members);
  }

  // References are checked once every group is known, so order in the file does not matter.
  for (const [name, members] of inventory.groups) {
    members.forEach((member, i) => {
      if (member.startsWith('@') && !inventory.groups.has(member.slice(1)) && member !== `@${ALL_GROUP}`) {
        throw new InventoryError(`unknown group '${member.slice(1)}'`, { file, entry: `groups.${name}[${i}]` });
      }
    });
  }
  for (const name of inventory.groups.keys()) expandGroup(inventory, name, []);
  return inventory;
}

/**
 * `playbookDir`: where Ansible would look for group_vars/ and host_vars/ besides the
 * inventory's directory — `ansible` and `ansible-inventory` use the current directory.
 */
export function loadInventory(
  file: string,
  cacheDir = join(distrunCacheDir(), 'inventory'),
  warn = (message: string): void => void process.stderr.write(`distrun: warning: ${file}: ${message}\n`),
  playbookDir = process.cwd(),
): Inventory {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InventoryError(describeSystemError(err), { file });
  }
  // group_vars/ and host_vars/ are part of what an Ansible inventory means: part of the key.
  const bases = [dirname(file), playbookDir];
  const inventory = loadCachedInventory(cacheDir, file, text, varsFilesDigest(bases), () => {
    const warnings: string[] = [];
    return parseInventory(text, file, { varsFiles: bases.map((base) => hostGroupVars(base, (m) => warnings.push(m))), warnings });
  });
  if (inventory.ansible) {
    // Read each time: these live outside the inventory (environment, ansible.cfg).
    const problems = ansibleSettingProblems(process.env, playbookDir);
    if (problems.length > 0) {
      throw new InventoryError(`Ansible settings in effect change what Ansible makes of this inventory, and distrun reads it with ansible-core's defaults: ${problems.join('; ')}. Unset them for distrun`, { file });
    }
  }
  for (const warning of inventory.warnings ?? []) warn(warning);
  return inventory;
}

export interface LoadOptions {
  /** --ansible-inventory: every source through Ansible's `ansible-inventory --list`. */
  throughAnsible?: boolean;
  cacheDir?: string;
  /** Where `-i -` reads from (default: fd 0). */
  stdin?: () => Buffer;
  warn?: (line: string) => void;
  /** Where ansible-inventory is looked for (PATH) and what it runs with. */
  env?: NodeJS.ProcessEnv;
}

/**
 * The inventory of one or more sources (-i, repeatable; `-` is stdin): one YAML file is
 * read (and cached) as before; INI, `ansible-inventory --list` JSON, directories and
 * several sources are Ansible inventories merged as Ansible merges them (ansible-sources.ts).
 */
export function loadInventories(sources: readonly string[], opts: LoadOptions = {}): Inventory {
  const cacheDir = opts.cacheDir ?? join(distrunCacheDir(), 'inventory');
  return loadInventorySources(sources, {
    throughAnsible: opts.throughAnsible,
    stdin: opts.stdin,
    env: opts.env,
    warn: opts.warn ?? ((line) => process.stderr.write(`${line}\n`)),
    yamlInventory: (file, text) => (file === '<stdin>' ? parseInventory(text, file) : loadInventory(file, cacheDir)),
  });
}

/** The inventory to use: -i (repeatable), then $DISTRUN_INVENTORY, ./hosts.yaml, ~/.config/distrun/hosts.yaml. */
export function findInventorySources(
  explicit: readonly string[] | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
  home: string = homedir(),
): string[] | undefined {
  const given = explicit !== undefined && explicit.length > 0 ? { list: explicit, source: '-i' } : env.DISTRUN_INVENTORY ? { list: [env.DISTRUN_INVENTORY], source: 'DISTRUN_INVENTORY' } : undefined;
  if (given) {
    return given.list.map((item) => {
      if (item === STDIN_SOURCE) return item;
      const file = resolve(cwd, item);
      if (!existsSync(file)) {
        // Ansible's host_list plugin reads a path that does not exist and has a comma as hosts.
        if (item.includes(',')) {
          throw new InventoryError(`no such file; Ansible would read it as a list of hosts (its host_list form), which distrun does not: `
            + `give the hosts with -H (a port there is the agent's, where Ansible's is ssh's)`, { file: item });
        }
        throw new InventoryError(`no such file (from ${given.source})`, { file: item });
      }
      return file;
    });
  }
  const found = [join(cwd, 'hosts.yaml'), join(home, '.config', 'distrun', 'hosts.yaml')].find((f) => existsSync(f));
  return found === undefined ? undefined : [found];
}

/** findInventorySources for one -i. */
export function findInventoryFile(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
  home: string = homedir(),
): string | undefined {
  return findInventorySources(explicit === undefined ? undefined : [explicit], env, cwd, home)?.[0];
}

/** Host specs of a group, with nested groups expanded (cycles are errors). */
function expandGroup(inv: Inventory, name: string, trail: string[]): string[] {
  if (name === ALL_GROUP) return allHosts(inv);
  if (trail.includes(name)) {
    throw new InventoryError(`groups include each other in a cycle: ${[...trail, name].join(' -> ')}`, { file: inv.file, entry: `groups.${name}` });
  }
  const members = inv.groups.get(name) ?? [];
  return members.flatMap((m) => (m.startsWith('@') ? expandGroup(inv, m.slice(1), [...trail, name]) : [m]));
}

function allHosts(inv: Inventory): string[] {
  const names = new Set(inv.hosts.keys());
  for (const members of inv.groups.values()) for (const m of members) if (!m.startsWith('@')) names.add(m);
  return [...names];
}

/** Range expansion with errors that name the inventory file and entry. */
function expandInInventory(pattern: string, file: string, entry: string): string[] {
  try {
    return expandHostPattern(pattern);
  } catch (err) {
    throw new InventoryError((err as Error).message, { file, entry });
  }
}

const hostOf = (spec: string) => splitHostPort(spec).host;

/** The host specs one term names: a group, or inventory hosts by name, range or `*` wildcard. */
function resolveTerm(inv: Inventory, term: string): string[] {
  if (term === ALL_GROUP || inv.groups.has(term)) return expandGroup(inv, term, []);
  // `web[0]` on a group `web`: Ansible's subscript, or our host range web0? Not guessed.
  const base = subscriptBase(term);
  if (base !== undefined && (base === ALL_GROUP || inv.groups.has(base))) {
    throw new InventoryError(
      `'${term}': ${base} is a group, and in this inventory format brackets after a name are a host range (${expandHostPattern(term).slice(0, 3).join(', ')}), ` +
        'not positions in a group as in Ansible patterns; name the hosts without brackets, or use a wildcard',
      { file: inv.file },
    );
  }
  const everyone = allHosts(inv);
  const wanted = term.includes('*')
    ? everyone.filter((spec) => matchesWildcard(term, hostOf(spec)))
    : expandHostPattern(term).flatMap((name) => everyone.filter((spec) => hostOf(spec) === name));
  if (wanted.length === 0) {
    const known = [...inv.groups.keys()].sort().join(', ') || 'none';
    throw new InventoryError(`unknown group or host '${term}' (known groups: ${known})`, { file: inv.file });
  }
  return wanted;
}

function matchesWildcard(pattern: string, name: string): boolean {
  const regex = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${regex}$`).test(name);
}

/**
 * A target expression in our own inventory format, Ansible style (an Ansible inventory
 * takes Ansible's own patterns, ansible-pattern.ts): `web:db` (union), `web:&prod` (intersection),
 * `web:!web03` (difference); `,` works like `:`. Terms are groups, inventory host names,
 * ranges (`web[01-03]`) or wildcards (`web*`). Order of first appearance is kept.
 */
export function resolveExpression(inv: Inventory, expression: string): Array<{ spec: string; via: string }> {
  const union: Array<{ spec: string; via: string }> = [];
  const intersections: Set<string>[] = [];
  const differences = new Set<string>();
  let positive = false;
  const terms = splitOutsideBrackets(expression, ':,');
  for (const term of terms) {
    if (term.startsWith('&')) intersections.push(new Set(resolveTerm(inv, term.slice(1)).map(hostOf)));
    else if (term.startsWith('!')) for (const spec of resolveTerm(inv, term.slice(1))) differences.add(hostOf(spec));
    else {
      positive = true;
      const via = term === ALL_GROUP || inv.groups.has(term) ? `group ${term}` : `host ${term}`;
      union.push(...resolveTerm(inv, term).map((spec) => ({ spec, via: expression === term ? via : `${via} in '${expression}'` })));
    }
  }
  if (!positive) throw new UsageError(`'${expression}' has no group or host to start from (only & and ! terms)`);
  // An empty result is an error that names its cause.
  const empty = (cause: string): never => {
    throw new EmptySelectionError(`the selection is empty: ${cause}`);
  };
  if (union.length === 0) empty(`'${expression}' names only groups without hosts`);
  const common = union.filter(({ spec }) => intersections.every((set) => set.has(hostOf(spec))));
  if (common.length === 0) empty(`the intersection ${terms.filter((term) => !term.startsWith('!')).join(':')} is empty`);
  const kept = common.filter(({ spec }) => !differences.has(hostOf(spec)));
  if (kept.length === 0) empty(`${expression} excluded every host`);
  return kept;
}

/** A host of an Ansible inventory is named as Ansible names it (`hôte1`, even `web_:22`): no port split. */
const isAnsibleHost = (spec: string, inv: Inventory | undefined): boolean => inv?.ansible !== undefined && inv.hosts.has(spec);

/** `-H` and `-x` items: an Ansible inventory's host name as it is, else splitHostPort. */
function hostSpec(spec: string, inv: Inventory | undefined): { host: string; port: string | undefined } {
  return isAnsibleHost(spec, inv) ? { host: spec, port: undefined } : splitHostPort(spec);
}

function toTarget(spec: string, inv: Inventory | undefined, defaultPort: number): Target {
  const { host, port } = hostSpec(spec, inv);
  if (!isAnsibleHost(spec, inv) && !validHostName(host)) throw new UsageError(`invalid host ${JSON.stringify(spec)}`);
  const problem = port === undefined ? undefined : portProblem(port);
  if (problem) throw new UsageError(`host ${JSON.stringify(spec)}: ${problem}`);
  const known = inv?.hosts.get(host);
  if (known?.refused) throw new InventoryError(known.refused);
  return {
    name: host,
    address: known?.address ?? host,
    port: port !== undefined ? Number(port) : known?.port ?? defaultPort,
  };
}

/** Targets of a comma-separated `-H` list; items may be ranges (`web[01-05]:7000`). */
export function parseHostList(list: string, defaultPort: number, inv?: Inventory): Target[] {
  return expandHostList(list).map((spec) => toTarget(spec, inv, defaultPort));
}

/**
 * -g on an Ansible inventory: Ansible's hosts for the pattern (or an error where Ansible
 * would only warn), dialled at the address and port the inventory gives each.
 */
function ansibleTargets(inv: Inventory, view: AnsibleView, expression: string, defaultPort: number): Target[] {
  return selectAnsibleHosts(view, expression, inv.file).map(({ host, via }) => {
    const entry = inv.hosts.get(host);
    if (!entry) throw new InventoryError(`host ${host} has no entry to dial (the inventory was read inconsistently)`, { file: inv.file });
    if (entry.refused) throw new InventoryError(entry.refused);
    return { name: host, address: entry.address ?? host, port: entry.port ?? defaultPort, via: `-g: ${via}` };
  });
}

export function selectTargets(inv: Inventory | undefined, selection: Selection): Target[] {
  if (selection.groups.length === 0 && selection.hosts.every((h) => h.trim() === '')) {
    throw new OptionError('no hosts selected: use -g GROUP or -H HOSTS');
  }
  const defaultPort = inv?.defaults.port ?? DEFAULT_AGENT_PORT;
  const chosen: Target[] = [];
  let empty: EmptySelectionError | undefined;
  for (const expression of selection.groups) {
    if (!inv) {
      throw new InventoryError(`cannot select '${expression}': no inventory found (looked for -i, $DISTRUN_INVENTORY, ./hosts.yaml, ~/.config/distrun/hosts.yaml)`);
    }
    try {
      if (inv.ansible) chosen.push(...ansibleTargets(inv, inv.ansible, expression, defaultPort));
      else chosen.push(...resolveExpression(inv, expression).map(({ spec, via }) => ({ ...toTarget(spec, inv, defaultPort), via: `-g: ${via}` })));
    } catch (err) {
      if (!(err instanceof EmptySelectionError)) throw err;
      empty ??= err;
    }
  }
  for (const list of selection.hosts) {
    chosen.push(...parseHostList(list, defaultPort, inv).map((target) => ({ ...target, via: `-H ${list}` })));
  }
  if (chosen.length === 0 && empty) throw empty;

  const excluded = selection.exclude.flatMap((list) => expandHostList(list).map((spec) => hostSpec(spec, inv)));
  const seen = new Set<string>();
  const targets = chosen.filter((t) => {
    const key = `${t.name}:${t.port}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return !excluded.some((x) => x.host === t.name && (x.port === undefined || Number(x.port) === t.port));
  });
  if (targets.length === 0) throw new UsageError(`the selection is empty: -x ${selection.exclude.join(' -x ')} excluded every selected host`);
  return withDistinctNames(targets);
}

/**
 * One name selected with two ports (`-H 10.0.0.5:6790,10.0.0.5:6791`, or a host listed
 * with different ports in two groups) would give two hosts one output prefix and one
 * summary entry: each of them is named with its port instead.
 */
function withDistinctNames(targets: Target[]): Target[] {
  const uses = new Map<string, number>();
  for (const { name } of targets) uses.set(name, (uses.get(name) ?? 0) + 1);
  return targets.map((t) => (uses.get(t.name)! > 1 ? { ...t, name: joinHostPort(t.name, t.port) } : t));
}
