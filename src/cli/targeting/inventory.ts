// The inventory: found (-i, $DISTRUN_INVENTORY, ./hosts.yaml, ~/.config/distrun/hosts.yaml),
// loaded (through the cache), and its format told by its top-level keys: distrun's own
// (native-inventory.ts) or Ansible's (ansible-*.ts). Selecting hosts from it is select.ts.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { InventoryError } from '../../errors.js';
import { describeSystemError } from '../../system-errors.js';
import { distrunCacheDir } from '../cache-dir.js';
import type { VarsFiles } from './ansible-data.js';
import { ansibleSettingProblems } from './ansible-config.js';
import { inventoryFormat, parseAnsibleInventory } from './ansible-inventory.js';
import { loadInventorySources, STDIN_SOURCE } from './ansible-sources.js';
import { hostGroupVars, varsFilesDigest } from './ansible-vars-files.js';
import { loadCachedInventory } from './inventory-cache.js';
import type { Inventory } from './model.js';
import { parseNativeInventory } from './native-inventory.js';
import { newLineCounter, yaml } from './yaml-module.js';

/** group_vars/ and host_vars/ for an Ansible inventory (next to it, then the playbook's); the warnings of its reading. */
interface ParseOptions {
  varsFiles?: VarsFiles | readonly VarsFiles[];
  warnings?: string[];
}

export function parseInventory(text: string, file: string, options: ParseOptions = {}): Inventory {
  const { isMap, isScalar, parseDocument } = yaml();
  const lines = newLineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, lineCounter: lines });
  // The format is told by the file's top-level keys (ansible-inventory.ts inventoryFormat).
  const top = doc.contents;
  if (isMap(top) && inventoryFormat(top.items.map((p) => (isScalar(p.key) ? p.key.value : p.key))) === 'ansible') {
    const warnings = options.warnings ?? [];
    const inventory = parseAnsibleInventory(text, file, options.varsFiles, (m) => {
      if (!warnings.includes(m)) warnings.push(m);
    });
    return warnings.length > 0 ? { ...inventory, warnings } : inventory;
  }
  return parseNativeInventory(doc, lines, file);
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
      throw new InventoryError(
        `Ansible settings in effect change what Ansible makes of this inventory, and distrun reads it with ansible-core's defaults: ${problems.join('; ')}. Unset them for distrun`,
        { file },
      );
    }
  }
  for (const warning of inventory.warnings ?? []) warn(warning);
  return inventory;
}

interface LoadOptions {
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
  const given =
    explicit !== undefined && explicit.length > 0
      ? { list: explicit, source: '-i' }
      : env.DISTRUN_INVENTORY
        ? { list: [env.DISTRUN_INVENTORY], source: 'DISTRUN_INVENTORY' }
        : undefined;
  if (given) {
    return given.list.map((item) => {
      if (item === STDIN_SOURCE) return item;
      const file = resolve(cwd, item);
      if (!existsSync(file)) {
        // Ansible's host_list plugin reads a path that does not exist and has a comma as hosts.
        if (item.includes(',')) {
          throw new InventoryError(
            `no such file; Ansible would read it as a list of hosts (its host_list form), which distrun does not: ` +
              `give the hosts with -H (a port there is the agent's, where Ansible's is ssh's)`,
            { file: item },
          );
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
