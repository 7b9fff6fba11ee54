// From the selection options (-i, -g, -H, -x) to the hosts: what every command that
// reaches hosts (run, hosts, ping) does first. Pure but for finding and loading the inventory.
import { EmptySelectionError, InventoryError, OptionError, UsageError } from '../../errors.js';
import { DEFAULT_AGENT_PORT } from '../../protocol/constants.js';
import type { AnsibleView } from './ansible-data.js';
import { selectAnsibleHosts, subscriptBase } from './ansible-pattern.js';
import { joinHostPort, portProblem, splitHostPort, validHostName } from './host-address.js';
import { expandHostList, expandHostPattern, splitOutsideBrackets } from './host-range.js';
import { findInventorySources, loadInventories } from './inventory.js';
import type { Inventory, Selection, Target } from './model.js';
import { ALL_GROUP, allHosts, expandGroup } from './native-inventory.js';
import { hasWildcard, matchesWildcard } from '../../wildcard.js';

export interface SelectionOptions {
  /** -i, repeatable; `-` is stdin. */
  inventory?: string[];
  /** --ansible-inventory: read the inventory through Ansible's ansible-inventory. */
  ansibleInventory?: boolean;
  group?: string[];
  hosts?: string[];
  exclude?: string[];
}

export function resolveTargets(opts: SelectionOptions): Target[] {
  return resolveSelection(opts).targets;
}

/** The inventory (if any) and the hosts the selection options choose from it. */
export function resolveSelection(opts: SelectionOptions): { inventory: Inventory | undefined; targets: Target[] } {
  const sources = findInventorySources(opts.inventory);
  const inventory = sources ? loadInventories(sources, { throughAnsible: opts.ansibleInventory === true }) : undefined;
  return { inventory, targets: selectTargets(inventory, { groups: opts.group ?? [], hosts: opts.hosts ?? [], exclude: opts.exclude ?? [] }) };
}

const hostOf = (spec: string) => splitHostPort(spec).host;

/** The host specs one term names: a group, or inventory hosts by name, range or wildcard (`*`, `?`). */
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
  const wanted = hasWildcard(term)
    ? everyone.filter((spec) => matchesWildcard(term, hostOf(spec)))
    : expandHostPattern(term).flatMap((name) => everyone.filter((spec) => hostOf(spec) === name));
  if (wanted.length === 0) {
    const known = [...inv.groups.keys()].sort().join(', ') || 'none';
    throw new InventoryError(`unknown group or host '${term}' (known groups: ${known})`, { file: inv.file });
  }
  return wanted;
}

/**
 * A target expression in our own inventory format, Ansible style (an Ansible inventory
 * takes Ansible's own patterns, ansible-pattern.ts): `web:db` (union), `web:&prod` (intersection),
 * `web:!web03` (difference); `,` works like `:`. Terms are groups, inventory host names,
 * ranges (`web[01-03]`) or wildcards (`web*`). Order of first appearance is kept.
 */
function resolveExpression(inv: Inventory, expression: string): Array<{ spec: string; via: string }> {
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
  const reach = known?.reach ?? inv?.reaches?.get(host) ?? inv?.defaults.reach;
  return {
    name: host,
    address: known?.address ?? host,
    port: port !== undefined ? Number(port) : (known?.port ?? defaultPort),
    ...(reach ? { reach } : {}),
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
    return {
      name: host,
      address: entry.address ?? host,
      port: entry.port ?? defaultPort,
      via: `-g: ${via}`,
      ...(entry.reach ? { reach: entry.reach } : {}),
    };
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
      throw new InventoryError(
        `cannot select '${expression}': no inventory found (looked for -i, $DISTRUN_INVENTORY, ./hosts.yaml, ~/.config/distrun/hosts.yaml)`,
      );
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
