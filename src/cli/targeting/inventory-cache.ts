// Parsed inventories kept between runs, by the SHA-256 of the file's path and text and of
// what else the parse read (an Ansible inventory's group_vars/ and host_vars/). The
// YAML parser takes about 0.2 ms per host (0.2 s for 1,000 hosts, after 30 ms to load
// it); a cached copy takes about 1 ms. Any change to the file means a new parse, and
// only what parsing produced is kept, so a cached inventory behaves as a parsed one.
import { createHash } from 'node:crypto';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SOFTWARE_VERSION } from '../../version.js';
import { ensurePrivateDir, isPrivateDir, readPrivateFile, writeFileWithMode } from '../../private-files.js';
import type { HostEntry, Inventory, Reach } from './model.js';
import type { AnsibleView } from './ansible-data.js';

/** What a cached copy holds; a new one when Inventory changes, so that an older copy is never read as complete. */
const FORMAT = 2;

/** Cached inventories kept; older ones are removed when a new one is written. */
const KEEP = 16;

interface CachedInventory {
  file: string | undefined;
  defaults: Inventory['defaults'];
  hosts: Array<[string, HostEntry]>;
  groups: Array<[string, string[]]>;
  reaches?: Array<[string, Reach]>;
  ansible?: AnsibleView;
  warnings?: string[];
}

/** `extra`: a digest of the other files the parse reads, so that a change there is never served stale. */
export function loadCachedInventory(dir: string, file: string, text: string, extra: string, parse: () => Inventory): Inventory {
  // A new release may parse differently: its version is part of the key.
  const key = createHash('sha256').update(`${SOFTWARE_VERSION}\0${FORMAT}\0${file}\0${extra}\0${text}`).digest('hex');
  const path = join(dir, `${key}.json`);
  // Someone else's directory could hold a planted inventory, and so could ours from a time
  // when it was open to others: the file itself must be ours and private too.
  const usable = isPrivateDir(dir);
  if (usable) {
    try {
      const cached = JSON.parse(readPrivateFile(path).toString('utf8')) as CachedInventory;
      return {
        file: cached.file,
        defaults: cached.defaults,
        hosts: new Map(cached.hosts),
        groups: new Map(cached.groups),
        ...(cached.reaches ? { reaches: new Map(cached.reaches) } : {}),
        ansible: cached.ansible,
        warnings: cached.warnings,
      };
    } catch {
      // Not cached yet, damaged, or not ours: parse.
    }
  }
  const inventory = parse();
  try {
    if (usable || ensurePrivateDir(dir)) {
      const cached: CachedInventory = {
        file: inventory.file,
        defaults: inventory.defaults,
        hosts: [...inventory.hosts],
        groups: [...inventory.groups],
        ...(inventory.reaches ? { reaches: [...inventory.reaches] } : {}),
        ansible: inventory.ansible,
        warnings: inventory.warnings,
      };
      writeFileWithMode(path, JSON.stringify(cached), 0o600, { durable: false });
      prune(dir);
    }
  } catch {
    // The cache only saves time.
  }
  return inventory;
}

function prune(dir: string): void {
  const files = readdirSync(dir)
    .filter((f) => /^[0-9a-f]{64}\.json$/.test(f))
    .map((f) => ({ f, mtime: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { f } of files.slice(KEEP)) rmSync(join(dir, f), { force: true });
}
