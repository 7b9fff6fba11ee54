// Which reader for which Ansible inventory source, as ansible-core's InventoryManager
// decides (inventory/manager.py parse_sources/parse_source and each plugin's verify_file,
// in the default INVENTORY_ENABLED order host_list, script, auto, yaml, ini, toml), and
// several sources (`-i A -i B`, directories: every entry in byte order, minus
// INVENTORY_IGNORE_EXTS, hidden files, group_vars/, host_vars/) merged into ONE inventory,
// reconciled once at the end, as Ansible does.
//
// What the native readers cannot do (inventory scripts, plugin configs such as
// `plugin: aws_ec2`, vault-encrypted files, TOML) goes through Ansible's own
// `ansible-inventory --list` when it is on PATH — automatically, with a line on stderr —
// except executable scripts: distrun runs code from an inventory only when asked
// (`--ansible-inventory`), since `distrun hosts` on someone's inventory directory should not
// execute a file there because its mode bits say so. Without Ansible, such a source is
// refused, naming it and what it needs.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, delimiter, dirname, extname, join } from 'node:path';
import { InventoryError } from '../../errors.js';
import { describeSystemError } from '../../system-errors.js';
import { ansibleSettingProblems, DEFAULT_IGNORE_EXTS } from './ansible-config.js';
import { AnsibleInventoryData } from './ansible-data.js';
import { iniLines, readIni } from './ansible-ini.js';
import { inventoryFormat, inventoryFromAnsible } from './ansible-inventory.js';
import { isScriptJson, parseJsonObject, readScriptJson } from './ansible-json.js';
import { hostGroupVars } from './ansible-vars-files.js';
import { readAnsibleYaml } from './ansible-yaml.js';
import { loadAnsibleYaml, PyDict } from './ansible-yaml-load.js';
import type { Inventory } from './model.js';

/** `-i -`: the inventory is read from stdin. */
export const STDIN_SOURCE = '-';

// manager.py's IGNORED: hidden files, group_vars/host_vars/vars_plugins, and the default
// INVENTORY_IGNORE_EXTS (REJECT_EXTS + .orig .ini .cfg .retry), matched at the end of the name.
const ignoredInDirectory = (name: string): boolean =>
  /^\./.test(name) || ['host_vars', 'group_vars', 'vars_plugins'].includes(name) || DEFAULT_IGNORE_EXTS.some((ext) => name.endsWith(ext));
// The YAML plugin's yaml_extensions; no extension counts too.
const YAML_EXTS = ['', '.yaml', '.yml', '.json'];

/** Why a source needs Ansible itself. */
type Need = { kind: 'script' | 'ansible'; reason: string };

/** One file of the sources, with the reader Ansible's plugin chain would settle on. */
type Leaf =
  | { path: string; reader: 'ini'; lines: string[] }
  | { path: string; reader: 'json'; doc: Map<string, unknown> }
  | { path: string; reader: 'yaml'; text: string; parsed: PyDict }
  | { path: string; reader: 'needs'; need: Need };

interface SourceOptions {
  /** --ansible-inventory: read every source through `ansible-inventory --list`. */
  throughAnsible?: boolean;
  /** Reads stdin, for `-i -`. */
  stdin?: () => Buffer;
  env?: NodeJS.ProcessEnv;
  /** A line for stderr (which path was taken). */
  warn?: (line: string) => void;
  /**
   * Reads one YAML inventory given alone (distrun's own format or Ansible's): the YAML
   * reader's job, with its cache.
   */
  yamlInventory: (file: string, text: string) => Inventory;
}

export function loadInventorySources(sources: readonly string[], opts: SourceOptions): Inventory {
  const label = sources.map((s) => (s === STDIN_SOURCE ? '<stdin>' : s)).join(', ');
  if (sources.filter((s) => s === STDIN_SOURCE).length > 1) throw new InventoryError('stdin can be given only once (-i -)');
  if (opts.throughAnsible) {
    if (sources.includes(STDIN_SOURCE))
      throw new InventoryError('--ansible-inventory reads files: give the inventory as a file, not on stdin (-i -)');
    refuseDiallingSettings(label, opts.env ?? process.env);
    return throughAnsibleInventory(sources, label, 'asked with --ansible-inventory', opts);
  }
  const fast = sources.length === 1 ? plainYamlFile(sources[0]!) : undefined;
  if (fast !== undefined) return opts.yamlInventory(sources[0]!, fast);
  const leaves = sources.flatMap((s) => leavesOf(s, opts));
  // A script anywhere decides: ansible-inventory would run it along with the rest.
  const needing = leaves.filter((l): l is Extract<Leaf, { reader: 'needs' }> => l.reader === 'needs');
  const needs: { path: string; need: Need } | undefined =
    needing.find((l) => l.need.kind === 'script') ?? needing[0] ?? changedSettings(sources, leaves, opts.env ?? process.env);
  if (needs) {
    const what = `${needs.path} is ${needs.need.reason}`;
    if (needs.need.kind === 'script') {
      throw new InventoryError(
        `${what}: distrun does not run it on its own; pass --ansible-inventory to read the inventory through Ansible's ansible-inventory, which runs it`,
      );
    }
    if (sources.includes(STDIN_SOURCE))
      throw new InventoryError(`${what}: only Ansible's ansible-inventory reads it, and it cannot take stdin (-i -): give files`);
    refuseDiallingSettings(label, opts.env ?? process.env);
    if (!onPath('ansible-inventory', opts.env ?? process.env)) {
      throw new InventoryError(
        `${what}: distrun reads it only through Ansible's ansible-inventory, which is not on PATH (install ansible-core, or give distrun an inventory it reads natively: YAML, INI, ansible-inventory --list JSON)`,
      );
    }
    return throughAnsibleInventory(sources, label, what, opts);
  }
  const only = leaves.length === 1 && sources.length === 1 ? leaves[0]! : undefined;
  if (only?.reader === 'yaml') return opts.yamlInventory(only.path, only.text);
  return nativeInventory(sources, leaves, label, opts);
}

/**
 * The text of a lone `.yml`/`.yaml` file that can only be a YAML inventory (not a script,
 * vault, JSON or plugin config), so that a cached inventory is not parsed again to be told.
 */
function plainYamlFile(source: string): string | undefined {
  if (source === STDIN_SOURCE || !['.yml', '.yaml'].includes(extname(source)) || isExecutable(source)) return undefined;
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch {
    return undefined;
  }
  return /^\s*\{|^\$ANSIBLE_VAULT;|^plugin\s*:/m.test(text) ? undefined : text;
}

/** The file(s) a source stands for, each classified; directories are walked as Ansible walks them. */
function leavesOf(source: string, opts: SourceOptions): Leaf[] {
  if (source === STDIN_SOURCE) return [classify('<stdin>', opts.stdin ? opts.stdin() : readFileSync(0), false)];
  let stat;
  try {
    stat = statSync(source);
  } catch (err) {
    throw new InventoryError(describeSystemError(err), { file: source });
  }
  if (stat.isDirectory()) {
    const names = readdirSync(source).filter((n) => !ignoredInDirectory(n));
    // sorted(os.listdir(bytes)): byte order.
    names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const leaves = names.flatMap((n) => leavesOf(join(source, n), opts));
    if (leaves.length === 0) throw new InventoryError('this inventory directory has no inventory file', { file: source });
    return leaves;
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(source);
  } catch (err) {
    throw new InventoryError(describeSystemError(err), { file: source });
  }
  return [classify(source, bytes, isExecutable(source))];
}

/** The plugin chain on one file: script, auto (plugin configs), yaml, ini, toml. */
function classify(path: string, bytes: Buffer, executable: boolean): Leaf {
  const text = bytes.toString('utf8');
  // script: executable with `#!` (or a binary). An executable without either fails to
  // start (ENOEXEC) and Ansible goes on to the next plugin, as we do.
  if (executable && (text.startsWith('#!') || bytes.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])))) {
    return { path, reader: 'needs', need: { kind: 'script', reason: 'an executable inventory script' } };
  }
  // The loader decrypts vault files for every plugin.
  if (text.startsWith('$ANSIBLE_VAULT;')) return { path, reader: 'needs', need: { kind: 'ansible', reason: 'vault-encrypted' } };
  const ext = path === '<stdin>' ? '' : extname(basename(path));
  // distrun's own addition: script output (`ansible-inventory --list` JSON), which Ansible
  // reads only from a script, not from a file (its YAML plugin fails on `_meta`).
  // Without `_meta`, a document with our own keys is distrun's format written as JSON
  // (whose `broker: [...]` list would otherwise look like a script's group).
  const json = parseJsonObject(text);
  if (json && isScriptJson(json) && (json.has('_meta') || inventoryFormat([...json.keys()]) !== 'native')) return { path, reader: 'json', doc: json };
  if (YAML_EXTS.includes(ext) || ext === '.yml' || ext === '.yaml') {
    const parsed = parseYamlMapping(text);
    // auto: a .yml/.yaml with a `plugin:` key is a plugin's configuration.
    const plugin = parsed?.get('plugin');
    if (parsed && (ext === '.yml' || ext === '.yaml') && pyTruthy(plugin)) {
      return { path, reader: 'needs', need: { kind: 'ansible', reason: `an inventory plugin configuration (plugin: ${String(plugin)})` } };
    }
    // The YAML plugin takes a non-empty mapping without `plugin:`; anything else falls to INI.
    if (parsed && parsed.entries.length > 0 && !pyTruthy(plugin)) return { path, reader: 'yaml', text, parsed };
  }
  // ini takes any file; toml comes after it, for a .toml file INI does not parse (Ansible
  // keeps what INI added before failing: only ansible-inventory gives that exactly).
  try {
    const lines = iniLines(bytes, path);
    if (ext === '.toml') readIni(new AnsibleInventoryData(path), lines, path);
    return { path, reader: 'ini', lines };
  } catch (err) {
    if (ext === '.toml' && err instanceof InventoryError) return { path, reader: 'needs', need: { kind: 'ansible', reason: 'a TOML inventory' } };
    throw err;
  }
}

/** The file as Ansible's loader gives it to the YAML plugin, if that is a mapping. */
function parseYamlMapping(text: string): PyDict | undefined {
  try {
    const doc = loadAnsibleYaml(text, '', () => {});
    return doc instanceof PyDict ? doc : undefined;
  } catch {
    return undefined;
  }
}

/** Python's truth: empty lists and mappings are false too. */
const pyTruthy = (v: unknown): boolean => Boolean(v) && !(Array.isArray(v) && v.length === 0) && !(v instanceof PyDict && v.entries.length === 0);

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command: string, env: NodeJS.ProcessEnv): boolean {
  return (env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && isExecutable(join(dir, command)));
}

/**
 * The native readers into one InventoryData, in source order, reconciled once; variables
 * of each source's group_vars/ and host_vars/ (the directory itself, or the file's), then
 * the playbook directory's (the current one, as for `ansible` and `ansible-inventory`).
 */
function nativeInventory(sources: readonly string[], leaves: readonly Leaf[], label: string, opts: SourceOptions): Inventory {
  const warn = (message: string): void => opts.warn?.(`distrun: warning: ${label}: ${message}`);
  const data = new AnsibleInventoryData(label);
  for (const leaf of leaves) {
    if (leaf.reader === 'ini') readIni(data, leaf.lines, leaf.path);
    else if (leaf.reader === 'json') readScriptJson(data, leaf.doc, leaf.path);
    else if (leaf.reader === 'yaml') readAnsibleYaml(loadAnsibleYaml(leaf.text, leaf.path, warn), leaf.path, warn, data);
  }
  data.reconcile();
  const bases = [...sources.filter((s) => s !== STDIN_SOURCE).map((s) => (statSync(s).isDirectory() ? s : dirname(s))), process.cwd()];
  const varsFiles = bases.map((base) => hostGroupVars(base, warn));
  const readers = leaves.map((l) => `${l.reader === 'json' ? 'script JSON' : l.reader} ${l.path}`);
  return inventoryFromAnsible(data, label, `distrun's reader${readers.length > 1 ? 's' : ''} (${readers.join('; ')})`, varsFiles, warn);
}

/** Ansible settings that make its reading differ from its defaults, which distrun's readers follow. */
function changedSettings(sources: readonly string[], leaves: readonly Leaf[], env: NodeJS.ProcessEnv): { path: string; need: Need } | undefined {
  // A lone YAML file is the YAML reader's, which checks them itself (it may also be distrun's own format).
  if (leaves.length === 1 && sources.length === 1 && leaves[0]!.reader === 'yaml') return undefined;
  const plugins = [...new Set(leaves.flatMap((l) => (l.reader === 'ini' || l.reader === 'yaml' ? [l.reader] : [])))];
  const directories = sources.some((s) => s !== STDIN_SOURCE && statSync(s).isDirectory());
  const problems = ansibleSettingProblems(env, process.cwd(), homedir(), { plugins, directories });
  if (problems.length === 0) return undefined;
  return {
    path: sources.join(', '),
    need: { kind: 'ansible', reason: `to be read under Ansible settings distrun's readers do not apply (${problems.join('; ')})` },
  };
}

/** How a host is reached is not in ansible-inventory's JSON: a setting about it is refused on that path too. */
function refuseDiallingSettings(label: string, env: NodeJS.ProcessEnv): void {
  const dialling = ansibleSettingProblems(env, process.cwd(), homedir(), { onlyDialling: true });
  if (dialling.length > 0) {
    throw new InventoryError(
      `Ansible settings in effect change how Ansible reaches these hosts, which distrun dials as ssh would: ${dialling.join('; ')}. Unset them for distrun`,
      { file: label },
    );
  }
}

/** `ansible-inventory -i SRC... --list`, read as script JSON: Ansible's own reading of the sources. */
function throughAnsibleInventory(sources: readonly string[], label: string, why: string, opts: SourceOptions): Inventory {
  if (!onPath('ansible-inventory', opts.env ?? process.env)) {
    throw new InventoryError(`--ansible-inventory: Ansible's ansible-inventory is not on PATH (install ansible-core)`, { file: label });
  }
  const env = opts.env ?? process.env;
  opts.warn?.(`distrun: reading ${label} through ansible-inventory (${why})`);
  const args = [...sources.flatMap((s) => ['-i', s]), '--list'];
  // A source Ansible cannot parse fails it, rather than a warning and what it read.
  const result = spawnSync('ansible-inventory', args, {
    env: { ...env, ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED: 'True', ANSIBLE_INVENTORY_UNPARSED_FAILED: 'True' },
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.error) throw new InventoryError(`cannot run ansible-inventory: ${describeSystemError(result.error)}`, { file: label });
  const stderr = result.stderr.toString('utf8').trim();
  if (result.status !== 0)
    throw new InventoryError(`ansible-inventory ${args.join(' ')} failed${stderr ? `: ${stderr}` : ` (exit ${result.status})`}`, { file: label });
  // Ansible warns and goes on where a source does not parse: distrun stops.
  if (/\[WARNING\]:[\s\S]*?(Unable\s+to\s+parse|Failed\s+to\s+parse|No\s+inventory\s+was\s+parsed)/.test(stderr)) {
    throw new InventoryError(`ansible-inventory could not read every source:\n${stderr}`, { file: label });
  }
  const doc = parseJsonObject(result.stdout.toString('utf8'));
  if (!doc) throw new InventoryError('ansible-inventory --list printed no JSON object', { file: label });
  const data = new AnsibleInventoryData(label);
  readScriptJson(data, doc, `ansible-inventory ${args.join(' ')}`);
  data.reconcile();
  const inventory = inventoryFromAnsible(data, label, `ansible-inventory --list (${why})`, undefined, (m) =>
    opts.warn?.(`distrun: warning: ${label}: ${m}`),
  );
  inventory.ansible!.hostsOrdered = false;
  return inventory;
}
