// Every Ansible YAML inventory of test/fixtures/ansible/yaml/ read by distrun and by the
// real ansible-core (test/helpers/ansible-inventory-oracle.py, one process for them all):
// the same groups with the same hosts in the same order, and for every host the address
// and port Ansible's rule gives (ansible_host/ansible_ssh_host, distrun_port); where the
// yaml plugin fails on a file, distrun refuses it; a templated address is refused. The
// real binary's `distrun hosts --explain` prints the same address:port.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InventoryError } from '../src/errors.js';
import { DEFAULT_AGENT_PORT } from '../src/protocol/constants.js';
import { joinHostPort } from '../src/cli/targeting/host-address.js';
import { loadInventory } from '../src/cli/targeting/inventory.js';
import type { Inventory } from '../src/cli/targeting/model.js';
import { cleanupAll, distrun, tempDir } from './helpers/fleet.js';
import { writeInventory, writeOddInventory, writeScalarInventory } from './helpers/ansible-yaml-generator.js';
import { ansiblePython } from './helpers/ansible-python.js';

test.after.always(cleanupAll);

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/ansible/yaml/', import.meta.url));
const ORACLE = fileURLToPath(new URL('../../test/helpers/ansible-inventory-oracle.py', import.meta.url));

interface OracleHost {
  address: unknown;
  distrun_port: unknown;
  connection: unknown;
  templated: string[];
}
interface OracleResult {
  yaml: string | null;
  warnings: string[];
  groups: Array<[string, string[]]>;
  hosts: Array<[string, OracleHost]>;
}

/** The inventories: files of the directory, and `hosts.yml` of its subdirectories (with their group_vars/). */
const fixtures = readdirSync(FIXTURES)
  .sort()
  .flatMap((name) => {
    const path = join(FIXTURES, name);
    if (statSync(path).isDirectory())
      return readdirSync(path)
        .filter((f) => /^hosts\.ya?ml$/.test(f))
        .map((f) => join(path, f));
    return /\.(ya?ml|json)$/.test(name) ? [path] : [];
  });

/** Generated inventories: DISTRUN_ANSIBLE_SEED=N checks N's alone (to look into a failure). */
const GENERATED = 60;
const generatedDir = tempDir();
const seeds = process.env.DISTRUN_ANSIBLE_SEED ? [Number(process.env.DISTRUN_ANSIBLE_SEED)] : Array.from({ length: GENERATED }, (_, i) => 1000 + i);
const generated = new Map([
  ...seeds.map(
    (seed) => [writeInventory(join(generatedDir, String(seed)), seed), `generated inventory ${seed} (DISTRUN_ANSIBLE_SEED=${seed})`] as const,
  ),
  // Odd shapes: values where mappings are expected, unknown keys, hosts named as groups.
  ...seeds
    .slice(0, 40)
    .map((seed) => [writeOddInventory(join(generatedDir, `odd-${seed}`), seed), `odd inventory ${seed} (writeOddInventory, seed ${seed})`] as const),
]);
/** Every kind of YAML 1.1 scalar as a distrun_port: the port is the integer PyYAML makes of it, or the host is refused. */
const scalars = writeScalarInventory(join(generatedDir, 'scalars'), 7);

const python = ansiblePython();
if (python === undefined) {
  console.log('ansible-yaml-differential: skipped: ansible-core is not installed (python3 -c "import ansible" fails)');
  test('ansible-core is not installed: nothing to compare with', (t) => t.pass());
} else {
  /** One oracle process for many inventories, run from `cwd` (Ansible reads the playbook directory's group_vars/ there). */
  const ask = (files: string[], cwd: string): Record<string, OracleResult> => {
    const run = spawnSync(python, [ORACLE, ...files], { encoding: 'utf8', cwd, maxBuffer: 64 << 20 });
    if (run.status !== 0) throw new Error(`the oracle failed: ${run.stderr}`);
    return JSON.parse(run.stdout) as Record<string, OracleResult>;
  };
  // Asked in a hook: a failing oracle fails the tests, and the temporary directories still go.
  let oracle: Record<string, OracleResult> = {};
  test.before(() => {
    oracle = ask([...fixtures, ...generated.keys(), scalars], FIXTURES);
  });
  const cacheDir = tempDir();
  const expectedPort = (value: unknown): number => (value === null ? DEFAULT_AGENT_PORT : Number(value));

  const cases = [...fixtures.map((file) => [file, file.slice(FIXTURES.length)] as const), ...generated];
  for (const [file, name] of cases) {
    test(`${name}: as ansible-core reads it`, (t) => {
      const expected = oracle[file]!;
      if (generated.has(file)) t.log(readFileSync(file, 'utf8'));
      const warnings: string[] = [];
      const read = (): Inventory => loadInventory(file, cacheDir, (m) => warnings.push(m), FIXTURES);
      if (expected.yaml !== null) {
        t.throws(read, { instanceOf: InventoryError }, `Ansible's yaml plugin fails: ${expected.yaml}`);
        return;
      }
      const inventory = read();
      // Where Ansible's own order is a Python set's accident (ansible-data.ts allHosts), only membership is compared.
      const ordered = new Map(inventory.ansible!.groups.map((g) => [g.name, g.ordered]));
      const sorted = (groups: Array<[string, string[]]>) => groups.map(([g, hosts]) => [g, ordered.get(g) === false ? [...hosts].sort() : hosts]);
      t.deepEqual(sorted(inventory.ansible!.groups.map((g) => [g.name, g.hosts])), sorted(expected.groups));
      t.deepEqual(
        [...inventory.hosts.keys()],
        expected.hosts.map(([host]) => host),
      );
      for (const [host, want] of expected.hosts) {
        const entry = inventory.hosts.get(host)!;
        if (want.connection !== null && want.connection !== 'ssh' && want.connection !== 'smart') {
          t.regex(entry.refused ?? '', /ansible_connection is/, `${host}: connection ${String(want.connection)}`);
          continue;
        }
        if (want.templated.length > 0) {
          t.regex(entry.refused ?? '', /is a Jinja template/, `${host}: ${want.templated.join(', ')} templated`);
          continue;
        }
        t.is(entry.refused, undefined, host);
        t.deepEqual([entry.address ?? host, entry.port ?? DEFAULT_AGENT_PORT], [want.address, expectedPort(want.distrun_port)], host);
      }
      // What the plugin skips, distrun skips with the same warning.
      for (const warning of expected.warnings.filter((w) => /^Skipping (unexpected key|'.*' as this is not a valid group)/.test(w))) {
        t.true(warnings.includes(warning), warning);
      }
    });
  }

  test('distrun_port given as every kind of YAML 1.1 scalar: the integer PyYAML makes of it, else a refusal', (t) => {
    const inventory = loadInventory(scalars, cacheDir, () => undefined, FIXTURES);
    for (const [host, want] of oracle[scalars]!.hosts) {
      const value = want.distrun_port;
      const port = typeof value === 'number' ? value : typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : NaN;
      const entry = inventory.hosts.get(host)!;
      if (value === null) t.deepEqual(entry, {}, `${host}: null is no port (the default)`);
      else if (Number.isInteger(port) && port >= 1 && port <= 65535) t.deepEqual(entry, { port }, `${host}: ${JSON.stringify(value)}`);
      else
        t.regex(
          entry.refused ?? '',
          /distrun_port (must be an integer from 1 to 65535|is a YAML tag:yaml.org,2002:timestamp value)/,
          `${host}: ${JSON.stringify(value)}`,
        );
    }
  });

  // group_vars/ and host_vars/ next to the playbook, which for `ansible` and
  // `ansible-inventory` is the current directory: the oracle and distrun run from it.
  const PROJECT = fileURLToPath(new URL('../../test/fixtures/ansible/playbook-dir-yaml/', import.meta.url));
  const projectInventory = join(PROJECT, 'inventory', 'hosts.yml');
  for (const cwd of [PROJECT, join(PROJECT, 'inventory')]) {
    const where = cwd === PROJECT ? 'the project directory' : 'the inventory directory';
    test(`group_vars/ and host_vars/ of the playbook directory too, run from ${where}`, async (t) => {
      const want = ask([projectInventory], cwd)[projectInventory]!.hosts.map(([host, v]) => [
        host,
        joinHostPort(String(v.address), expectedPort(v.distrun_port)),
      ]);
      const inventory = loadInventory(projectInventory, tempDir(), () => undefined, cwd);
      t.deepEqual(
        [...inventory.hosts].map(([host, e]) => [host, joinHostPort(e.address ?? host, e.port ?? DEFAULT_AGENT_PORT)]),
        want,
      );
      const result = await distrun(['hosts', '-i', projectInventory, '-g', 'all'], { cwd });
      t.is(result.code, 0, result.stderr);
      t.deepEqual(
        result.stdout
          .toString()
          .trim()
          .split('\n')
          .map((line) => line.split(/\s+/)),
        want,
      );
    });
  }

  // The real binary, for inventories whose addresses and ports come from everywhere
  // (host keys with ports, merge keys, group_vars/ and host_vars/).
  for (const name of ['ports.yaml', 'merge.yaml', 'vars-dirs/hosts.yml', 'ssh-host.yaml']) {
    test(`distrun hosts -i ${name} -g all --explain dials what Ansible resolves`, async (t) => {
      const file = join(FIXTURES, name);
      const result = await distrun(['hosts', '-i', file, '-g', 'all', '--explain']);
      t.is(result.code, 0, result.stderr.toString());
      const dialled = result.stdout
        .toString()
        .trim()
        .split('\n')
        .map((line) => line.split(/\s+/).slice(0, 2));
      const all = oracle[file]!.groups.find(([group]) => group === 'all')![1];
      const hosts = new Map(oracle[file]!.hosts);
      // Which hosts and how each is dialled; their order is the pattern code's (ansible-pattern.ts).
      const byName = (a: string[], b: string[]) => (a[0]! < b[0]! ? -1 : 1);
      t.deepEqual(
        dialled.sort(byName),
        all.map((host) => [host, joinHostPort(String(hosts.get(host)!.address), expectedPort(hosts.get(host)!.distrun_port))]).sort(byName),
      );
    });
  }
}
