// distrun's own inventory format (hosts.yaml: defaults, hosts, groups, and for a fleet
// with brokers broker and connect), parsed from its YAML document with errors that name
// the entry and line; and the groups of such an inventory expanded to host specs (cycles
// are errors).
import type { Document, Node as YamlNode, Pair } from 'yaml';
import { parseBrokerUrls } from '../../broker/broker-urls.js';
import { InventoryError } from '../../errors.js';
import { DEFAULT_AGENT_PORT } from '../../protocol/constants.js';
import { portProblem, splitHostPort, validHostName } from './host-address.js';
import { expandHostPattern } from './host-range.js';
import type { HostEntry, Inventory, Reach } from './model.js';
import { firstYamlError, lineOfNode, yaml, type YamlLines } from './yaml-module.js';

const GROUP_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const TOP_KEYS = ['defaults', 'hosts', 'groups', 'broker', 'connect'];
const HOST_KEYS = ['address', 'port', 'connect'];
const DEFAULT_KEYS = ['port', 'connect'];
const CONNECT_WAYS = ['direct', 'broker'] as const;
export const ALL_GROUP = 'all';

function checkConnect(value: unknown, file: string, entry: string): Reach['through'] {
  if (!CONNECT_WAYS.includes(value as Reach['through'])) {
    throw new InventoryError(`must be ${CONNECT_WAYS.join(' or ')}, got ${JSON.stringify(value)}`, { file, entry });
  }
  return value as Reach['through'];
}

function checkPort(value: unknown, file: string, entry: string): number {
  const problem = portProblem(value);
  if (problem) throw new InventoryError(problem, { file, entry });
  return Number(value);
}

/** The inventory a native-format document describes (the format was told by its top-level keys). */
export function parseNativeInventory(doc: Document.Parsed, lines: YamlLines, file: string): Inventory {
  const { isMap, isScalar, isSeq } = yaml();
  const error = firstYamlError(doc);
  if (error !== undefined) throw new InventoryError(error, { file });
  const inventory: Inventory = { file, defaults: { port: DEFAULT_AGENT_PORT }, hosts: new Map(), groups: new Map() };
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return inventory;
  if (!isMap(root)) throw new InventoryError('the inventory must be a mapping with defaults, hosts and groups', { file });

  const entries = (node: YamlNode | null | undefined, entry: string): Array<Pair<unknown, unknown>> => {
    if (node === null || node === undefined || (isScalar(node) && node.value === null)) return [];
    if (!isMap(node)) throw new InventoryError(`must be a mapping${lineOfNode(lines, node)}`, { file, entry });
    return node.items as Array<Pair<unknown, unknown>>;
  };
  const keyOf = (pair: Pair<unknown, unknown>): string => String(isScalar(pair.key) ? pair.key.value : pair.key);

  for (const pair of root.items as Array<Pair<unknown, unknown>>) {
    const key = keyOf(pair);
    if (!TOP_KEYS.includes(key)) {
      throw new InventoryError(`unknown key${lineOfNode(lines, pair.key as YamlNode)} (allowed: ${TOP_KEYS.join(', ')})`, { file, entry: key });
    }
  }
  const section = (name: string) => root.get(name, true) as YamlNode | undefined;

  const urls = brokerUrls(section('broker'), file);
  const reach = (through: Reach['through'], by: string): Reach => ({ through, by: `${file}: ${by}`, ...(urls ? { urls } : {}) });

  for (const pair of entries(section('defaults'), 'defaults')) {
    const key = keyOf(pair);
    const value = isScalar(pair.value) ? pair.value.value : pair.value;
    if (!DEFAULT_KEYS.includes(key))
      throw new InventoryError(`unknown key (allowed: ${DEFAULT_KEYS.join(', ')})`, { file, entry: `defaults.${key}` });
    if (key === 'port') inventory.defaults.port = checkPort(value, file, 'defaults.port');
    if (key === 'connect') inventory.defaults.reach = reach(checkConnect(value, file, 'defaults.connect'), 'defaults.connect');
  }
  // Naming brokers makes them the way in for hosts nothing else is said of (as --broker does).
  if (urls && !inventory.defaults.reach) inventory.defaults.reach = reach('broker', 'broker');

  for (const pair of entries(section('hosts'), 'hosts')) {
    const pattern = keyOf(pair);
    const entry = `hosts.${pattern}`;
    // A key may be a range (`web[01-20]`): every host it names gets the same settings.
    const names = expandInInventory(pattern, file, entry);
    if (!names.every(validHostName)) throw new InventoryError(`invalid host name${lineOfNode(lines, pair.key as YamlNode)}`, { file, entry });
    const host: HostEntry = {};
    for (const field of entries(pair.value as YamlNode, entry)) {
      const key = keyOf(field);
      const value = isScalar(field.value) ? field.value.value : field.value;
      if (!HOST_KEYS.includes(key)) throw new InventoryError(`unknown key (allowed: ${HOST_KEYS.join(', ')})`, { file, entry: `${entry}.${key}` });
      if (key === 'port') host.port = checkPort(value, file, `${entry}.port`);
      if (key === 'connect') host.reach = reach(checkConnect(value, file, `${entry}.connect`), `${entry}.connect`);
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
    if (!isSeq(node)) throw new InventoryError(`must be a list of hosts and @groups${lineOfNode(lines, node)}`, { file, entry });
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
  applyConnectLists(inventory, entries(section('connect'), 'connect'), keyOf, lines, reach);
  return inventory;
}

/** The top-level `broker:` key: host:port of each broker, as a list or comma separated. */
function brokerUrls(node: YamlNode | undefined, file: string): string[] | undefined {
  if (node === undefined) return undefined;
  const { isScalar, isSeq } = yaml();
  const items = isSeq(node) ? node.items.map((item) => (isScalar(item) ? item.value : item)) : [isScalar(node) ? node.value : node];
  if (items.length === 0 || !items.every((item) => typeof item === 'string')) {
    throw new InventoryError('must be host:port of each broker, as a list or separated by commas', { file, entry: 'broker' });
  }
  try {
    return parseBrokerUrls(items.join(','), 'broker');
  } catch (err) {
    throw new InventoryError((err as Error).message.replace(/^broker: /, ''), { file, entry: 'broker' });
  }
}

/**
 * The top-level `connect:` key: `direct:` and `broker:`, each a list of hosts and @groups
 * reached that way (Inventory.reaches). A host's own `connect` wins; a host in both lists is an error (which
 * of them was meant cannot be told), as is a list that names no host of the inventory.
 */
function applyConnectLists(
  inventory: Inventory,
  pairs: Array<Pair<unknown, unknown>>,
  keyOf: (pair: Pair<unknown, unknown>) => string,
  lines: YamlLines,
  reach: (through: Reach['through'], by: string) => Reach,
): void {
  const { isScalar, isSeq } = yaml();
  const file = inventory.file ?? '';
  const chosen = new Map<string, Reach>();
  const known = new Set(allHosts(inventory).map((spec) => splitHostPort(spec).host));
  for (const pair of pairs) {
    const through = checkConnect(keyOf(pair), file, `connect.${keyOf(pair)}`);
    const entry = `connect.${through}`;
    const node = pair.value as YamlNode;
    if (!isSeq(node)) throw new InventoryError(`must be a list of hosts and @groups${lineOfNode(lines, node)}`, { file, entry });
    node.items.forEach((item, i) => {
      const member = isScalar(item) ? item.value : item;
      if (typeof member !== 'string' || member === '') throw new InventoryError('must be a host name or @group', { file, entry: `${entry}[${i}]` });
      const specs = member.startsWith('@')
        ? groupMembers(inventory, member.slice(1), `${entry}[${i}]`)
        : expandInInventory(member, file, `${entry}[${i}]`);
      for (const host of specs.map((spec) => splitHostPort(spec).host)) {
        if (!known.has(host)) throw new InventoryError(`${host} is not a host of this inventory`, { file, entry: `${entry}[${i}]` });
        const earlier = chosen.get(host);
        if (earlier && earlier.through !== through) {
          throw new InventoryError(`${host} is listed both as direct and as broker (${earlier.by.slice(file.length + 2)}); list it once`, {
            file,
            entry: `${entry}[${i}]`,
          });
        }
        chosen.set(host, reach(through, `${entry}[${i}]${member.startsWith('@') ? ` (${member})` : ''}`));
      }
    });
  }
  if (chosen.size > 0) inventory.reaches = chosen;
}

function groupMembers(inventory: Inventory, name: string, entry: string): string[] {
  if (name !== ALL_GROUP && !inventory.groups.has(name)) throw new InventoryError(`unknown group '${name}'`, { file: inventory.file, entry });
  return expandGroup(inventory, name, []);
}

/** Host specs of a group, with nested groups expanded (cycles are errors). */
export function expandGroup(inv: Inventory, name: string, trail: string[]): string[] {
  if (name === ALL_GROUP) return allHosts(inv);
  if (trail.includes(name)) {
    throw new InventoryError(`groups include each other in a cycle: ${[...trail, name].join(' -> ')}`, { file: inv.file, entry: `groups.${name}` });
  }
  const members = inv.groups.get(name) ?? [];
  return members.flatMap((m) => (m.startsWith('@') ? expandGroup(inv, m.slice(1), [...trail, name]) : [m]));
}

export function allHosts(inv: Inventory): string[] {
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
