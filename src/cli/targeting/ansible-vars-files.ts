// group_vars/ and host_vars/ of a directory — next to an inventory file, or the playbook
// directory, which for `ansible` and `ansible-inventory` is the current one unless
// --playbook-dir says otherwise — as ansible-core's host_group_vars vars plugin finds them (plugins/vars/host_group_vars.py, DataLoader.find_vars_files):
// for a group or host NAME, the first of `NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json`
// that exists; when that is a directory, every file in it and its subdirectories, in
// sorted order, that has one of those extensions or none, skipping names starting with
// `.` or ending with `~` (and subdirectories whose name has an extension). Later files
// win, whole values. A file that loads as nothing is skipped; one that is not a mapping
// is an error, as in Ansible.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { InventoryError } from '../../errors.js';
import { describeSystemError } from '../../system-errors.js';
import type { Vars, VarsFiles } from './ansible-data.js';
import { loadAnsibleYaml, PyDict, pyStr, pyType } from './ansible-yaml-load.js';

/** C.YAML_FILENAME_EXTENSIONS, after the bare name. */
const EXTENSIONS = ['', '.yml', '.yaml', '.json'];
const SUBDIRS = ['group_vars', 'host_vars'] as const;

const byCodePoint = (a: string, b: string): number => {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
};

const kind = (path: string): 'dir' | 'file' | undefined => {
  try {
    const st = statSync(path);
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined;
  } catch {
    return undefined;
  }
};

/** os.path.splitext(name)[1]: leading dots do not start an extension. */
const extensionOf = (name: string): string => {
  const base = name.replace(/^\.+/, '');
  const at = base.lastIndexOf('.');
  return at < 0 ? '' : base.slice(at);
};

/** _get_dir_vars_files. */
function dirFiles(path: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(path).sort(byCodePoint)) {
    if (name.startsWith('.') || name.endsWith('~')) continue;
    const ext = extensionOf(name);
    const full = `${path}/${name}`;
    const k = kind(full);
    if (k === 'dir' && !ext) found.push(...dirFiles(full));
    else if (k === 'file' && (!ext || EXTENSIONS.includes(ext))) found.push(full);
  }
  return found;
}

/** find_vars_files(path, name). */
function findVarsFiles(path: string, name: string): string[] {
  const base = `${path}/${name}`;
  for (const ext of EXTENSIONS) {
    const full = base + ext;
    if (!existsSync(full)) continue;
    return kind(full) === 'dir' ? dirFiles(full) : [full];
  }
  return [];
}

/** group_vars/ or host_vars/ of `base`, if it is a directory. */
function varsDir(base: string, subdir: string, warn: (message: string) => void): string | undefined {
  const path = `${base}/${subdir}`;
  if (!existsSync(path)) return undefined;
  const real = realpathSync(path);
  if (kind(real) !== 'dir') {
    warn(`Found ${subdir} that is not a directory, skipping: ${real}`);
    return undefined;
  }
  return real;
}

/** The variables of one vars file, or undefined for a file that loads as nothing. */
function loadVarsFile(file: string, warn: (message: string) => void): Vars | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InventoryError(describeSystemError(err), { file });
  }
  if (text.startsWith('$ANSIBLE_VAULT;')) {
    throw new InventoryError(
      'the file is encrypted with ansible-vault: distrun cannot read it natively (run the inventory through ansible-inventory --list)',
      { file },
    );
  }
  const data = loadAnsibleYaml(text, file, (m) => warn(`${file}: ${m}`));
  if (
    data === null ||
    data === false ||
    data === 0 ||
    data === '' ||
    (data instanceof PyDict && data.entries.length === 0) ||
    (Array.isArray(data) && data.length === 0)
  )
    return undefined;
  if (!(data instanceof PyDict)) {
    throw new InventoryError(`failed to combine variables, expected dicts but got a 'dict' and a '${pyType(data)}' (a vars file must be a mapping)`, {
      file,
    });
  }
  const vars: Vars = {};
  for (const [key, value] of data.entries) vars[typeof key === 'string' ? key : pyStr(key)] = value;
  return vars;
}

/** The host_group_vars plugin for the directory `base`. `read` lists the files it loaded. */
export function hostGroupVars(base: string, warn: (message: string) => void): VarsFiles & { read: string[] } {
  const dirs = new Map<string, string | undefined>();
  const cache = new Map<string, Vars | undefined>();
  const read: string[] = [];
  const lookup = (subdir: (typeof SUBDIRS)[number], name: string): Vars | undefined => {
    const key = `${subdir}/${name}`;
    if (cache.has(key)) return cache.get(key);
    if (!dirs.has(subdir)) dirs.set(subdir, varsDir(base, subdir, warn));
    const dir = dirs.get(subdir);
    let vars: Vars | undefined;
    // Names that are absolute paths (chroot-style hosts) are skipped, as Ansible does.
    if (dir !== undefined && !name.startsWith('/')) {
      for (const file of findVarsFiles(dir, name)) {
        read.push(file);
        const more = loadVarsFile(file, warn);
        if (more) vars = { ...vars, ...more };
      }
    }
    cache.set(key, vars);
    return vars;
  };
  return { read, group: (name) => lookup('group_vars', name), host: (name) => lookup('host_vars', name) };
}

/**
 * A digest of everything under group_vars/ and host_vars/ of these directories (paths,
 * kinds and contents), for the inventory cache: any change there means a new parse.
 * Directories without them add nothing, so that the key does not change with them.
 */
export function varsFilesDigest(bases: readonly string[]): string {
  const hash = createHash('sha256');
  const seen = new Set<string>();
  const walk = (path: string): void => {
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      return;
    }
    const k = kind(real);
    hash.update(`${k ?? 'other'}\0${path}\0`);
    if (k === 'file') {
      try {
        hash.update(readFileSync(real));
      } catch (err) {
        hash.update(`unreadable ${String(err)}`);
      }
    } else if (k === 'dir' && !seen.has(real)) {
      seen.add(real);
      for (const name of readdirSync(real).sort(byCodePoint)) walk(`${path}/${name}`);
    }
    hash.update('\0');
  };
  for (const base of bases) for (const subdir of SUBDIRS) walk(`${resolve(base)}/${subdir}`);
  return hash.digest('hex');
}
