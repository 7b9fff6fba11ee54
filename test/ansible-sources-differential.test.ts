// INI inventories, `--list` JSON, directories and several -i, compared with ansible-core
// itself: for each case, every group's hosts (in get_hosts() order) and every host's dial
// address and port must be Ansible's, or distrun must stop with an error. Ansible runs once
// for all cases (test/helpers/ansible-sources-oracle.py); the test says so in one line and
// skips where ansible-core is not installed. Then `distrun hosts --explain` end to end.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InventoryError } from '../src/errors.js';
import { loadInventories } from '../src/cli/targeting/inventory.js';
import type { Inventory } from '../src/cli/targeting/model.js';
import { DEFAULT_AGENT_PORT } from '../src/protocol/constants.js';
import { listedHosts, cleanupAll, distrun, tempDir } from './helpers/fleet.js';
import { randomIni } from './helpers/ansible-ini-generator.js';
import { random } from './helpers/seeded-random.js';
import { ansiblePython, askAnsible } from './helpers/ansible-python.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/ansible/', import.meta.url));
const at = (...parts: string[]): string => join(FIXTURES, ...parts);

interface Case {
  id: string;
  sources: string[];
  /** distrun stops where Ansible reads the inventory (a documented refusal). */
  refused?: RegExp;
}

const cases: Case[] = [
  ...[
    'basic',
    'values',
    'pending',
    'ranges',
    'precedence',
    'order',
    'crlf',
    'executable-no-shebang',
    'misc',
    'kubespray',
    'docs-example',
    'whitespace',
  ].map((n) => ({ id: `ini/${n}`, sources: [at('ini', `${n}.ini`)] })),
  { id: 'ini/jinja', sources: [at('ini', 'jinja.ini')], refused: /ansible_host is a Jinja template/ },
  { id: 'ini/complex', sources: [at('ini', 'complex.ini')], refused: /complex numbers are not supported/ },
  ...['undefined-child', 'undefined-vars', 'bad-section', 'colon-end', 'unclosed-quote', 'backwards-range', 'unknown-section'].map((n) => ({
    id: `ini/errors/${n}`,
    sources: [at('ini', 'errors', `${n}.ini`)],
  })),
  ...['basic-list', 'script', 'no-meta'].map((n) => ({ id: `json/${n}`, sources: [at('json', `${n}.json`)] })),
  { id: 'dirs/site', sources: [at('dirs', 'site')] },
  { id: 'dirs/ignored-only', sources: [at('dirs', 'ignored-only')] },
  { id: 'two -i: ini + json', sources: [at('ini', 'order.ini'), at('json', 'script.json')] },
  { id: 'two -i: dir + ini', sources: [at('dirs', 'site'), at('ini', 'precedence.ini')] },
  { id: 'two -i: ini twice, vars of the later', sources: [at('ini', 'basic.ini'), at('ini', 'values.ini')] },
  { id: 'through ansible-inventory: plugin config', sources: [at('plugins', 'generator.yml')] },
  { id: 'through ansible-inventory: TOML', sources: [at('needs', 'inventory.toml')] },
  { id: 'INI with group_vars/, host_vars/', sources: [at('dirs', 'with-vars')] },
  { id: 'two -i: INI + YAML', sources: [at('ini', 'order.ini'), at('site.yaml')] },
  { id: 'two -i: YAML + directory', sources: [at('site.yaml'), at('dirs', 'site')] },
];

// Random INI inventories (seeded; ANSIBLE_INI_SEED=N explores others).
const generated = tempDir();
const rand = random(Number(process.env.ANSIBLE_INI_SEED ?? 15));
for (let i = 0; i < 60; i++) {
  const file = join(generated, `random-${i}.ini`);
  writeFileSync(file, randomIni(rand));
  cases.push({ id: `random INI ${i}`, sources: [file] });
}

interface OracleResult {
  ok: boolean;
  error?: string;
  hosts: string[];
  groups: Record<string, string[]>;
  dial: Record<string, { address: unknown; port: unknown; jinja: boolean }>;
}

const python = ansiblePython();
if (!python) console.log('ansible-sources-differential: ansible-core is not installed (python3 -c "import ansible" fails): comparisons skipped');

let oracle: Record<string, OracleResult> | undefined;
function ansible(): Record<string, OracleResult> {
  if (!oracle) {
    oracle = askAnsible<OracleResult>(python!, cases);
  }
  return oracle;
}

test.after.always(cleanupAll);

const cacheDir = join(tempDir(), 'cache');
const ours = (sources: string[]): Inventory => loadInventories(sources, { cacheDir, warn: () => {} });

const dialable = (d: OracleResult['dial'][string]): boolean => {
  const p = port(d.port);
  return !d.jinja && typeof d.address === 'string' && d.address.trim() !== '' && typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
};
const port = (value: unknown): unknown => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value);

for (const c of cases) {
  (python ? test : test.skip)(`as Ansible: ${c.id}`, (t) => {
    const expected = ansible()[c.id]!;
    if (!expected.ok) {
      const err = t.throws(() => ours(c.sources), { instanceOf: InventoryError }, `Ansible fails: ${expected.error}`);
      t.log(err?.message);
      return;
    }
    if (c.refused) {
      // Refused when loaded, or (the dial rule) the host when it is selected.
      let loaded: Inventory;
      try {
        loaded = ours(c.sources);
      } catch (err) {
        t.true(err instanceof InventoryError, String(err));
        t.regex((err as Error).message, c.refused);
        return;
      }
      t.true(
        [...loaded.hosts.values()].some((h) => c.refused!.test(h.refused ?? '')),
        'a host is refused',
      );
      return;
    }
    // Where Ansible's values are not an address and port distrun can dial (a number as
    // ansible_host, a template), distrun refuses: the load, or that host.
    const undialable = Object.entries(expected.dial)
      .filter(([, d]) => !dialable(d))
      .map(([h]) => h);
    let inv: Inventory;
    try {
      inv = ours(c.sources);
    } catch (err) {
      t.true(err instanceof InventoryError && undialable.length > 0, String(err));
      return;
    }
    const view = inv.ansible!;
    t.truthy(view, 'an Ansible view');
    if (view.hostsOrdered === false) t.deepEqual([...view.hosts].sort(), [...expected.hosts].sort(), 'the hosts (order unknown through --list)');
    else t.deepEqual(view.hosts, expected.hosts, 'hosts in the order Ansible added them');
    const groups = Object.fromEntries(view.groups.map((g) => [g.name, g]));
    t.deepEqual(Object.keys(groups).sort(), Object.keys(expected.groups).sort(), 'the same groups');
    for (const [name, hosts] of Object.entries(expected.groups)) {
      const mine = groups[name]!;
      if (mine.ordered) t.deepEqual(mine.hosts, hosts, `group ${name}, in order`);
      else t.deepEqual([...mine.hosts].sort(), [...hosts].sort(), `group ${name} (Ansible's order is a set's)`);
    }
    for (const [host, dial] of Object.entries(expected.dial)) {
      const entry = inv.hosts.get(host)!;
      if (undialable.includes(host)) {
        t.truthy(entry.refused, `${host} is refused`);
        continue;
      }
      // The dial rule may refuse more (a connection other than ssh): never dial otherwise.
      if (entry.refused) {
        t.log(`refused: ${entry.refused}`);
        continue;
      }
      t.deepEqual(
        { address: entry.address ?? host, port: entry.port ?? DEFAULT_AGENT_PORT },
        { address: dial.address, port: port(dial.port) },
        `dial ${host}`,
      );
    }
  });
}

test('an executable inventory script is run only with --ansible-inventory', async (t) => {
  const script = at('scripts', 'inventory.py');
  const refused = await distrun(['hosts', '-i', script, 'all']);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /inventory\.py is an executable inventory script: distrun does not run it on its own; pass --ansible-inventory/);
  if (!python) return;
  const r = await distrun(['hosts', '-i', script, '--ansible-inventory', 'app', '--explain']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trim().split('\n');
  t.regex(lines[0]!, /^s2\s+s2:7700\s/);
  t.regex(lines[1]!, /^s1\s+10\.7\.0\.1:7700\s/);
  t.regex(r.stderr, /read by ansible-inventory --list \(asked with --ansible-inventory\)$/m);
  t.regex(r.stderr, /distrun: reading .*inventory\.py through ansible-inventory/);
});

test('distrun hosts --explain: INI, two -i, a directory and stdin, with the reader named', async (t) => {
  const ini = await distrun(['hosts', '-i', at('ini', 'basic.ini'), 'dbservers', '--explain']);
  t.is(ini.code, 0, ini.stderr);
  const lines = ini.stdout.toString().trim().split('\n');
  t.regex(lines[0]!, /^one\.example\.com\s+10\.0\.1\.1:7100\s+-g: group dbservers$/);
  t.regex(lines[2]!, /^three\.example\.com\s+three\.example\.com:7006\s/, "host:port is ssh's port, distrun_port wins");
  t.is(lines.length, 3);
  t.regex(ini.stderr, /^distrun: inventory .*basic\.ini: read by distrun's reader \(ini .*basic\.ini\)$/m);

  const two = await distrun(['hosts', '-i', at('ini', 'order.ini'), '-i', at('json', 'script.json'), 'a:web', '--explain']);
  t.is(two.code, 0, two.stderr);
  t.deepEqual(listedHosts(two.stdout), ['h2', 'h1', 'w2', 'w1', 'a1', 'd1']);
  t.regex(two.stderr, /read by distrun's readers \(ini .*order\.ini; script JSON .*script\.json\)/);

  const dir = await distrun(['hosts', '-i', at('dirs', 'site'), 'prod', '--explain']);
  t.is(dir.code, 0, dir.stderr);
  t.deepEqual(
    dir.stdout
      .toString()
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/).slice(0, 2).join(' ')),
    ['web2 10.6.0.2:6789', 'web1 10.6.0.1:7600', 'web3 10.6.0.3:6789', 'db1 10.6.1.1:7600'],
  );

  const list = spawnSync('ansible-inventory', ['-i', at('ini', 'basic.ini'), '--list'], { encoding: 'utf8' });
  const stdinInput = list.status === 0 ? list.stdout : readFileSync(at('json', 'basic-list.json'), 'utf8');
  const piped = await distrun(['hosts', '-i', '-', 'webservers:&prod', '--explain'], { input: stdinInput });
  t.is(piped.code, 0, piped.stderr);
  t.regex(piped.stdout.toString(), /^foo\.example\.com\s+10\.0\.0\.11:7100\s/);
  t.regex(piped.stderr, /inventory <stdin>: read by distrun's reader \(script JSON <stdin>\)/);

  const withStdin = await distrun(['-i', '-', '-t', '-g', 'all', 'cat'], { input: stdinInput });
  t.not(withStdin.code, 0);
  t.regex(withStdin.stderr, /-i - reads the inventory from stdin: it cannot go with -t/);
});

test('a directory with a script among what needs Ansible is refused without --ansible-inventory (ansible-inventory would run it)', async (t) => {
  const r = await distrun(['hosts', '-i', at('dirs', 'plugin-and-script'), 'all']);
  t.not(r.code, 0);
  t.regex(r.stderr, /20-script\.py is an executable inventory script: distrun does not run it on its own/);
  t.notRegex(r.stderr, /reading .* through ansible-inventory/);
});

test('a plugin configuration goes through ansible-inventory with a line on stderr, or is refused naming what it needs', async (t) => {
  const config = at('plugins', 'generator.yml');
  const without = await distrun(['hosts', '-i', config, 'all'], { env: { PATH: '/nonexistent' } });
  t.not(without.code, 0);
  t.regex(
    without.stderr,
    /generator\.yml is an inventory plugin configuration \(plugin: ansible\.builtin\.generator\): distrun reads it only through Ansible's ansible-inventory, which is not on PATH/,
  );
  if (!python) return;
  const r = await distrun(['hosts', '-i', config, 'dev', '--explain']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /^distrun: reading .*generator\.yml through ansible-inventory \(.*plugin configuration/);
  t.deepEqual(listedHosts(r.stdout), ['build-dev', 'launch-dev']);
  // Groups keep Ansible's order through --list; the order of all hosts (for a glob) is not known.
  const subscript = await distrun(['hosts', '-i', config, 'prod[1]']);
  t.is(subscript.stdout.toString().trim().split(/\s+/)[0], 'launch-prod', subscript.stderr);
  const glob = await distrun(['hosts', '-i', config, 'build*[0]']);
  t.not(glob.code, 0);
  t.regex(glob.stderr, /cannot take build\*\[0\]: this inventory was read through ansible-inventory --list/);
});

test('an ansible.cfg that changes inventory reading: the inventory goes through ansible-inventory, which applies it', async (t) => {
  if (!python) {
    t.pass();
    return;
  }
  const cfg = join(tempDir(), 'ansible.cfg');
  writeFileSync(cfg, '[defaults]\ninventory_ignore_extensions = .json, .ini\n');
  const r = await distrun(['hosts', '-i', at('dirs', 'site'), 'all', '--explain'], { env: { ANSIBLE_CONFIG: cfg } });
  t.is(r.code, 0, r.stderr);
  t.regex(
    r.stderr,
    /through ansible-inventory \(.*ansible\.cfg \[defaults\] inventory_ignore_extensions = ".*" changes which files of an inventory directory are read\)/,
  );
  // The setting replaces Ansible's whole list: 20-db.json is ignored now, and the .cfg, the
  // README.md (host "notes") and the backup~ are read.
  t.deepEqual(listedHosts(r.stdout).sort(), ['i2', 'i4', 'notes', 'web1', 'web2', 'web3', 'z1']);
});
