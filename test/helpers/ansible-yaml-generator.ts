// Random Ansible YAML inventories (seeded): nested and repeated groups, hosts in several
// groups, `host:port` keys, numeric and alphabetic ranges, string `hosts:`, merge keys,
// ansible_group_priority, the dial variables at every level, group_vars/ and host_vars/
// files and directories. The differential test reads each with distrun and with
// ansible-core, so that the next disagreement is found without anyone writing it down.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** mulberry32: small, seeded, the same sequence on every machine. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const GROUPS = ['web', 'db', 'prod', 'edge', 'cache', 'zeta'];
const HOSTS = ['h1', 'h2', 'h3', 'web1', 'db-a', 'n01', '10.0.0.5'];
const RANGES = ['r[1:3]', 'r[a:c]', 'n[01:04:2]', 'x[b:c]-[1:2]', 'h[2:3]'];

/** Writes one inventory (hosts.yml, and maybe group_vars/ and host_vars/) into `dir`; returns its path. */
export function writeInventory(dir: string, seed: number): string {
  const random = rng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const chance = (p: number): boolean => random() < p;
  const lines: string[] = [];
  const anchors = chance(0.5);
  if (anchors)
    lines.push('x-defaults: &d', `  ansible_host: 192.0.2.${1 + Math.floor(random() * 250)}`, `  distrun_port: ${7000 + Math.floor(random() * 900)}`);

  const dialVars = (indent: string, group: boolean): void => {
    if (chance(0.3)) lines.push(`${indent}ansible_host: 192.0.2.${1 + Math.floor(random() * 250)}`);
    if (chance(0.15)) lines.push(`${indent}ansible_ssh_host: ${chance(0.2) ? 'null' : `198.51.100.${1 + Math.floor(random() * 250)}`}`);
    if (chance(0.4))
      lines.push(`${indent}distrun_port: ${chance(0.2) ? `"${7000 + Math.floor(random() * 900)}"` : 7000 + Math.floor(random() * 900)}`);
    if (group && chance(0.25)) lines.push(`${indent}ansible_group_priority: ${1 + Math.floor(random() * 3)}`);
  };

  const group = (indent: string, depth: number): void => {
    const sections = ['vars', 'hosts', 'children'].filter(() => chance(0.7)).sort(() => random() - 0.5);
    for (const section of sections) {
      if (section === 'vars') {
        lines.push(`${indent}vars:`);
        dialVars(`${indent}  `, true);
        lines.push(`${indent}  other: ${Math.floor(random() * 10)}`);
      } else if (section === 'hosts') {
        if (chance(0.1)) {
          lines.push(`${indent}hosts: ${pick(HOSTS)}`);
          continue;
        }
        lines.push(`${indent}hosts:`);
        const count = 1 + Math.floor(random() * 3);
        for (let i = 0; i < count; i++) {
          let key = chance(0.25) ? pick(RANGES) : pick(HOSTS);
          if (chance(0.15)) key = `${key}:${2200 + Math.floor(random() * 50)}`;
          lines.push(`${indent}  "${key}":`);
          if (chance(0.4)) continue;
          if (anchors && chance(0.3)) lines.push(`${indent}    <<: *d`);
          dialVars(`${indent}    `, false);
        }
      } else if (depth < 3) {
        lines.push(`${indent}children:`);
        const count = 1 + Math.floor(random() * 2);
        for (let i = 0; i < count; i++) {
          lines.push(`${indent}  ${pick(GROUPS)}:`);
          if (chance(0.7)) group(`${indent}    `, depth + 1);
        }
      }
    }
  };

  lines.push('all:');
  group('  ', 0);
  if (chance(0.4)) {
    lines.push(`${pick(GROUPS)}:`);
    group('  ', 1);
  }
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'hosts.yml');
  writeFileSync(file, `${lines.join('\n')}\n`);

  // Vars files: a file or a directory of files, for some groups and hosts.
  const varsFile = (subdir: string, name: string): void => {
    const port = `distrun_port: ${7000 + Math.floor(random() * 900)}\n`;
    const address = `ansible_host: 203.0.113.${1 + Math.floor(random() * 250)}\n`;
    mkdirSync(join(dir, subdir), { recursive: true });
    if (chance(0.3)) {
      mkdirSync(join(dir, subdir, name), { recursive: true });
      writeFileSync(join(dir, subdir, name, '01.yml'), port);
      writeFileSync(join(dir, subdir, name, '02.yaml'), chance(0.5) ? address : port);
    } else {
      writeFileSync(join(dir, subdir, `${name}${pick(['', '.yml', '.yaml'])}`), chance(0.5) ? port + address : port);
    }
  };
  if (chance(0.5)) for (const name of ['all', ...GROUPS]) if (chance(0.3)) varsFile('group_vars', name);
  if (chance(0.5)) for (const name of ['h1', 'h2', 'web1', 'r2', 'n01']) if (chance(0.3)) varsFile('host_vars', name);
  return file;
}

const SCALAR_CHARS = '0123456789+-._:eExXbBoO~nNuUlLyYsStTrRfFaA';
const SCALARS = [
  'yes',
  'No',
  'ON',
  'off',
  'y',
  'null',
  '~',
  '.inf',
  '0',
  '010',
  '09',
  '0x1B5E',
  '0b101',
  '7_006',
  '1:56:46',
  '2001-12-14',
  '1e5',
  '7006.0',
  '"7006"',
  "'07006'",
  '07006',
  '+7006',
  '-1',
  '65536',
  '0o17',
];

/** An inventory whose hosts' distrun_port values are YAML 1.1 scalars of every kind (PyYAML decides what they are). */
export function writeScalarInventory(dir: string, seed: number, count = 300): string {
  const random = rng(seed);
  const values = [...SCALARS];
  while (values.length < count) {
    const length = 1 + Math.floor(random() * 6);
    let text = '';
    for (let i = 0; i < length; i++) text += SCALAR_CHARS[Math.floor(random() * SCALAR_CHARS.length)];
    // Not a YAML indicator at the start (`-` then space, `:` at the end would change the structure).
    if (/^[-?:]|:$|^[~]./.test(text)) continue;
    values.push(text);
  }
  const lines = ['all:', '  hosts:', ...values.flatMap((value, i) => [`    s${i}:`, `      distrun_port: ${value}`])];
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'hosts.yml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const ODD_VALUES = ['', '~', '0', "''", '[]', '{}', 'text', '[a, b]', '{x: 1}', '7', 'yes', '!vault |\n  $ANSIBLE_VAULT;1.1;AES256'];
const ODD_KEYS = ['vars', 'hosts', 'children', 'host', 'var', 'plugin'];
const ODD_NAMES = ['a', 'b', 'g1', 'g2', 'web1', 'h[1:2]', 'a:22', '"1"', 'x y', 'all', 'ungrouped'];

/** An inventory of odd shapes (values where mappings are expected, unknown keys, hosts named as groups): what Ansible skips, warns of or fails on. */
export function writeOddInventory(dir: string, seed: number): string {
  const random = rng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const lines: string[] = [];
  const value = (indent: string, depth: number): void => {
    const roll = random();
    if (depth > 2 || roll < 0.3) {
      const v = pick(ODD_VALUES);
      lines[lines.length - 1] += ` ${v.replace(/\n/g, `\n${indent}`)}`;
      return;
    }
    const keys = Array.from({ length: 1 + Math.floor(random() * 3) }, () => (depth % 2 === 0 ? pick(ODD_KEYS) : pick(ODD_NAMES)));
    for (const key of keys) {
      lines.push(`${indent}${key}:`);
      if (random() < 0.8) value(`${indent}  `, depth + 1);
    }
  };
  const tops = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(ODD_NAMES));
  for (const top of tops) {
    lines.push(`${top}:`);
    if (random() < 0.9) value('  ', 0);
  }
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'hosts.yml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}
