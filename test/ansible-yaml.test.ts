// Ansible YAML inventories, case by case (issue 15): each expectation here is what
// ansible-core 2.14 gives for the same file (test/ansible-yaml-differential.test.ts checks
// the fixtures against the real thing where it is installed; these run without it).
import test from 'ava';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InventoryError } from '../src/errors.js';
import { ansibleSettingProblems } from '../src/cli/targeting/ansible-config.js';
import { inventoryFormat } from '../src/cli/targeting/ansible-inventory.js';
import { expandAnsibleHostPattern } from '../src/cli/targeting/ansible-host-pattern.js';
import { loadAnsibleYaml, PyDict } from '../src/cli/targeting/ansible-yaml-load.js';
import { loadInventory, parseInventory } from '../src/cli/targeting/inventory.js';
import { selectTargets } from '../src/cli/targeting/select.js';
import type { Inventory } from '../src/cli/targeting/model.js';
import { cleanupAll, tempDir } from './helpers/fleet.js';

test.after.always(cleanupAll);

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/ansible/yaml/', import.meta.url));
const cacheDir = tempDir();

function load(name: string, warnings: string[] = []): Inventory {
  return loadInventory(join(FIXTURES, name), cacheDir, (m) => warnings.push(m));
}

/** `name=address:port` of the hosts a pattern selects. */
const dial = (inv: Inventory, ...groups: string[]): string[] =>
  selectTargets(inv, { groups, hosts: [], exclude: [] }).map((t) => `${t.name}=${t.address}:${t.port}`);

const groupHosts = (inv: Inventory, name: string): string[] | undefined => inv.ansible!.groups.find((g) => g.name === name)?.hosts;

test("a host key's :port is ssh's: the host is named without it and dialled on distrun_port or the default", (t) => {
  const inv = load('ports.yaml');
  t.deepEqual(dial(inv, 'web1'), ['web1=web1:6789']);
  t.deepEqual(dial(inv, 'db2'), ['db2=db2:7006']);
  t.deepEqual(dial(inv, '10.0.0.7'), ['10.0.0.7=192.0.2.7:6789']);
  t.deepEqual([...inv.hosts.keys()], ['web1', 'db2', '10.0.0.7', '2001:db8::5', 'web4', 'web5']);
  t.deepEqual(inv.hosts.get('web4'), { port: 7010 });
  t.deepEqual(expandAnsibleHostPattern('[2001:db8::5]:2201'), { hosts: ['2001:db8::5'], port: 2201 });
  // A key parse_address does not accept is kept whole, port and all, as Ansible keeps it.
  t.deepEqual(expandAnsibleHostPattern('web_:22'), { hosts: ['web_:22'], port: undefined });
});

test("YAML merge keys at host and group level, with PyYAML's order: own keys win, the first of a list wins", (t) => {
  const warnings: string[] = [];
  const inv = load('merge.yaml', warnings);
  t.deepEqual(dial(inv, 'web'), ['web1=192.0.2.10:7100', 'web2=192.0.2.12:7100', 'web3=192.0.2.10:7301']);
  t.deepEqual(dial(inv, 'db'), ['db1=db1:7200'], 'the group merges vars; its own hosts replace the merged ones');
  // Every top-level key is a group in Ansible, the anchors' holders too.
  t.deepEqual(groupHosts(inv, '.group'), ['shared1']);
  t.true(warnings.includes('Skipping key (ansible_host) in group (.defaults) as it is not a mapping, it is a str'));
  const children = load('merge-children.yaml');
  t.deepEqual(groupHosts(children, 'web'), ['shared1', 'shared2', 'web1']);
  t.deepEqual(dial(children, 'shared1', 'db1'), ['shared1=shared1:7200', 'db1=db1:7301']);
});

test('a quoted << is a key, not a merge; a merge of a scalar is an error', (t) => {
  const quoted = loadAnsibleYaml('a: &x {k: 1}\nb:\n  "<<": *x\n', 'f.yml', () => undefined) as PyDict;
  t.deepEqual((quoted.get('b') as PyDict).keys(), ['<<']);
  t.throws(() => loadAnsibleYaml('a: &x 1\nb:\n  <<: *x\n', 'f.yml', () => undefined), {
    instanceOf: InventoryError,
    message: /expected a mapping or list of mappings for merging/,
  });
});

test('group_vars/ and host_vars/ next to the inventory: names with and without extensions, directories, what Ansible skips', (t) => {
  const inv = load('vars-dirs/hosts.yml');
  // host_vars/web1.yml's address; group_vars/web (no extension) found before web.yml.
  t.deepEqual(dial(inv, 'web'), ['web1=192.0.2.11:7101', 'web2=192.0.2.250:7101']);
  // host_vars/db1.json over group_vars/db.json; db2's empty host_vars file is skipped.
  t.deepEqual(dial(inv, 'db'), ['db1=192.0.2.21:7299', 'db2=192.0.2.250:7201']);
  // group_vars/app/: 20-second.yaml after 10-first.yml, sub/ read too; .md, hidden and ~ files skipped.
  t.deepEqual(dial(inv, 'app'), ['app1=192.0.2.30:7302']);
});

test('a vars file that is not a mapping is an error; group_vars that is a file is skipped with a warning', (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'hosts.yml'), 'all:\n  hosts:\n    a:\n');
  mkdirSync(join(dir, 'group_vars'));
  writeFileSync(join(dir, 'group_vars', 'all.yml'), '- 1\n- 2\n');
  t.throws(() => loadInventory(join(dir, 'hosts.yml'), tempDir(), () => undefined), {
    instanceOf: InventoryError,
    message: /all\.yml: failed to combine variables/,
  });
  rmSync(join(dir, 'group_vars'), { recursive: true });
  writeFileSync(join(dir, 'host_vars'), 'x\n');
  const warnings: string[] = [];
  t.deepEqual(
    dial(
      loadInventory(join(dir, 'hosts.yml'), tempDir(), (m) => warnings.push(m)),
      'a',
    ),
    ['a=a:6789'],
  );
  t.regex(warnings.join('\n'), /Found host_vars that is not a directory, skipping/);
});

test('a change in group_vars/ or host_vars/ is never served from the inventory cache', (t) => {
  const dir = tempDir();
  cpSync(join(FIXTURES, 'vars-dirs'), dir, { recursive: true });
  const cache = tempDir();
  const file = join(dir, 'hosts.yml');
  t.deepEqual(dial(loadInventory(file, cache), 'web2'), ['web2=192.0.2.250:7101']);
  writeFileSync(join(dir, 'group_vars', 'web'), 'distrun_port: 7777\n');
  t.deepEqual(dial(loadInventory(file, cache), 'web2'), ['web2=192.0.2.250:7777']);
  writeFileSync(join(dir, 'host_vars', 'web2.yaml'), 'ansible_host: 192.0.2.12\n');
  t.deepEqual(dial(loadInventory(file, cache), 'web2'), ['web2=192.0.2.12:7777']);
  rmSync(join(dir, 'host_vars', 'web2.yaml'));
  t.deepEqual(dial(loadInventory(file, cache), 'web2'), ['web2=192.0.2.250:7777']);
  // The playbook directory's (the current directory for ansible): read after the inventory's, keyed too.
  const play = tempDir();
  const quiet = (): void => undefined;
  t.deepEqual(dial(loadInventory(file, cache, quiet, play), 'web2'), ['web2=192.0.2.250:7777']);
  mkdirSync(join(play, 'group_vars'));
  writeFileSync(join(play, 'group_vars', 'all.yml'), 'distrun_port: 7900\n');
  t.deepEqual(
    dial(loadInventory(file, cache, quiet, play), 'web2'),
    ['web2=192.0.2.250:7777'],
    'group_vars/web (inventory) beats all (playbook): all comes first',
  );
  writeFileSync(join(play, 'group_vars', 'web.yml'), 'distrun_port: 7901\n');
  t.deepEqual(dial(loadInventory(file, cache, quiet, play), 'web2'), ['web2=192.0.2.250:7901']);
});

test('ansible_ssh_host wins over ansible_host where both are set, as in the ssh connection; null is unset', (t) => {
  t.deepEqual(dial(load('ssh-host.yaml'), 'all'), ['a=192.0.2.99:6789', 'b=192.0.2.2:6789', 'c=192.0.2.4:6789']);
});

test('a templated address is refused, naming the file, host and variable; the other hosts stay usable', (t) => {
  const inv = parseInventory('all:\n  hosts:\n    web1:\n      ansible_host: "{{ inventory_hostname }}.lan"\n    web2:\n', 'inv.yaml');
  t.throws(() => dial(inv, 'web1'), {
    instanceOf: InventoryError,
    message: /inv\.yaml: host web1: ansible_host is a Jinja template \("\{\{ inventory_hostname \}\}\.lan"\), which distrun does not evaluate/,
  });
  t.deepEqual(dial(inv, 'web2'), ['web2=web2:6789']);
  const port = parseInventory('all:\n  hosts:\n    a:\n      distrun_port: "{% if x %}1{% endif %}"\n', 'inv.yaml');
  t.throws(() => dial(port, 'a'), { message: /host a: distrun_port is a Jinja template/ });
  const vault = parseInventory(
    'all:\n  hosts:\n    a:\n      ansible_host: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        6162\n    b:\n      secret: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n',
    'inv.yaml',
  );
  t.throws(() => dial(vault, 'a'), { message: /host a: ansible_host is a YAML !vault value/ });
  t.deepEqual(dial(vault, 'b'), ['b=b:6789'], 'an encrypted variable distrun does not need is no obstacle');
});

test('ansible_group_priority orders groups of one depth before their names', (t) => {
  t.deepEqual(dial(load('priority.yaml'), 'all'), ['h1=h1:7002', 'h2=h2:7004']);
});

test('vars of a host given in two groups: the last parsed wins, whatever the depth (they live on the host)', (t) => {
  t.deepEqual(dial(load('two-groups.yaml'), 'h1'), ['h1=192.0.2.1:7002']);
});

test('ranges as Ansible expands them: alphabetic, stepped, several in one key, across the case boundary', (t) => {
  const inv = load('alpha-ranges.yaml');
  t.deepEqual(groupHosts(inv, 'db')!.slice(0, 10), ['db-a', 'db-b', 'db-c', 'db-d', 'db-e', 'db-f', 'web01', 'web04', 'web07', 'web10']);
  t.deepEqual(groupHosts(inv, 'db')!.slice(-5), ['rackx', 'racky', 'rackz', 'rackA', 'rackB']);
});

test("Ansible's range errors are refused with its message: web[1-3], web[01:100]", (t) => {
  t.throws(() => load('bad-range-dash.yaml'), {
    instanceOf: InventoryError,
    message: /all\.hosts\.web\[1-3\]: host range must be begin:end or begin:end:step; Ansible's yaml plugin fails on this file too/,
  });
  t.throws(() => load('bad-range-width.yaml'), {
    instanceOf: InventoryError,
    message: /web\[01:100\]: host range must specify equal-length begin and end formats/,
  });
});

test('integer and boolean host keys are refused as Ansible refuses them (YAML 1.1: on is True, 010 is 8)', (t) => {
  t.throws(() => load('int-key.yaml'), { message: /Host pattern 1234 must be a string/ });
  t.throws(() => load('bool-key.yaml'), { message: /Host pattern True must be a string/ });
  t.throws(() => load('octal-key.yaml'), { message: /Host pattern 8 must be a string/ });
  t.throws(() => parseInventory('on:\n  hosts:\n    a:\n', 'inv.yaml'), {
    message: /Unable to add group True: Invalid group name supplied, expected a string but got bool/,
  });
});

test('YAML 1.1 values as PyYAML gives them: hex, octal, underscores; a quoted "010" stays a name; a key given twice keeps its last value', (t) => {
  const warnings: string[] = [];
  const inv = load('scalars.yaml', warnings);
  t.deepEqual(dial(inv, 'hex', 'octal', 'underscore', '010', 'dup'), [
    'hex=hex:7006',
    'octal=octal:3590',
    'underscore=underscore:7007',
    '010=192.0.2.10:6789',
    'dup=dup:7002',
  ]);
  t.deepEqual(warnings, ['found a duplicate dict key (distrun_port): using the last value only']);
  const values = loadAnsibleYaml('a: [yes, No, ~, 1:30, 0b11, .5, 2001-12-14, "on", =x]\n', 'f.yml', () => undefined) as PyDict;
  t.deepEqual(
    (values.get('a') as unknown[]).map((v) => (typeof v === 'object' && v !== null ? String((v as { text: string }).text) : v)),
    [true, false, null, 90, 3, 0.5, '2001-12-14', 'on', '=x'],
  );
  t.throws(() => loadAnsibleYaml('a: =\n', 'f.yml', () => undefined), { message: /could not determine a constructor/ });
  // What PyYAML refuses and the yaml package would read: a plain << as a value, an anchor defined twice, an empty key.
  t.throws(() => loadAnsibleYaml('a: <<\n', 'f.yml', () => undefined), {
    message: /could not determine a constructor for the tag 'tag:yaml.org,2002:merge'/,
  });
  t.throws(() => loadAnsibleYaml('a: &x 1\nb: &x 2\n', 'f.yml', () => undefined), { message: /found duplicate anchor &x \(line 2\)/ });
  t.throws(() => loadAnsibleYaml('a: [b, c]: d\n', 'f.yml', () => undefined), { message: /a mapping key is missing/ });
  t.deepEqual((loadAnsibleYaml('? \n: c\n=: 1\n', 'f.yml', () => undefined) as PyDict).keys(), [null, '=']);
});

test("hosts: NAME as a string is one host, children: NAME one child (the yaml plugin's own example)", (t) => {
  const inv = load('string-hosts.yaml');
  t.deepEqual(dial(inv, 'last_group'), ['test5=test5:7005']);
  t.deepEqual(groupHosts(inv, 'other'), ['test5']);
  t.deepEqual(groupHosts(load('plugin-example.yaml'), 'group_x'), ['test5']);
});

test("the format: all, or top-level groups without our keys, is Ansible (kubespray's old sample with an empty group)", (t) => {
  const inv = load('kubespray-old.yaml');
  t.is(inv.ansible?.reader, 'ansible yaml');
  t.deepEqual(groupHosts(inv, 'etcd'), []);
  t.deepEqual(dial(inv, 'k8s-cluster'), ['node1=95.54.0.12:6789', 'node2=95.54.0.13:6789']);
  t.is(inventoryFormat(['defaults', 'hosts', 'groups']), 'native');
  t.is(inventoryFormat(['hosts', 'typo']), 'native', 'our own keys decide: the native parser names the unknown one');
  t.is(inventoryFormat(['all', 'hosts']), 'ansible');
  t.is(inventoryFormat(['kube-master', 'etcd']), 'ansible');
  t.is(inventoryFormat([]), 'native');
  t.is(parseInventory('hosts:\n  web1: {port: 7000}\n', 'hosts.yaml').ansible, undefined);
  t.throws(() => parseInventory('all:\n  hosts:\n    a:\n', 'inventory.txt'), {
    instanceOf: InventoryError,
    message: /yaml plugin reads only files named \*\.yaml, \*\.yml, \*\.json or without an extension/,
  });
});

test("an unknown group key such as host: is skipped with Ansible's warning, once per load", (t) => {
  const warnings: string[] = [];
  const inv = load('unknown-key.yaml', warnings);
  t.deepEqual(groupHosts(inv, 'web'), ['web1']);
  t.deepEqual(warnings, ['Skipping unexpected key (host) in group (web), only "vars", "children" and "hosts" are valid']);
  // The same warning twice (one group body aliased twice) is shown once; a cached copy still shows it.
  const twice: string[] = [];
  const text = 'all:\n  children:\n    a: &g\n      host: {x: }\n    b: *g\n';
  const again = parseInventory(text, 'inv.yaml', { warnings: twice });
  t.deepEqual(twice, [
    'Skipping unexpected key (host) in group (a), only "vars", "children" and "hosts" are valid',
    'Skipping unexpected key (host) in group (b), only "vars", "children" and "hosts" are valid',
  ]);
  t.deepEqual(again.warnings, twice);
  const cached: string[] = [];
  load('unknown-key.yaml', cached);
  t.deepEqual(cached, warnings);
});

test('non-ASCII host names are accepted, as Ansible accepts them', (t) => {
  t.deepEqual(dial(load('non-ascii.yaml'), 'all'), ['hôte1=192.0.2.1:6789', 'сервер=сервер:6789']);
});

test('Ansible settings that change what an inventory means are refused, from the environment or the ansible.cfg Ansible would read', (t) => {
  const dir = tempDir();
  const home = tempDir();
  t.deepEqual(ansibleSettingProblems({}, dir, home), []);
  t.deepEqual(
    ansibleSettingProblems(
      { ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS: 'ignore', ANSIBLE_DUPLICATE_YAML_DICT_KEY: 'warn', ANSIBLE_VARS_ENABLED: 'host_group_vars' },
      dir,
      home,
    ),
    [],
    'values that read as the defaults do',
  );
  t.deepEqual(ansibleSettingProblems({ ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS: 'always' }, dir, home), [
    '$ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS = "always" changes group names (invalid characters replaced)',
  ]);
  t.deepEqual(ansibleSettingProblems({ ANSIBLE_TRANSPORT: 'local' }, dir, home), [
    '$ANSIBLE_TRANSPORT = "local" changes the default connection (distrun dials as ssh would)',
  ]);
  writeFileSync(
    join(dir, 'ansible.cfg'),
    '[defaults]\n# a comment\nhost_key_checking = False\nprecedence = all_plugins_inventory, all_inventory\n[inventory]\nenable_plugins = ini\n',
  );
  t.deepEqual(ansibleSettingProblems({}, dir, home), [
    `${join(dir, 'ansible.cfg')} [defaults] precedence = "all_plugins_inventory, all_inventory" changes the order of variable sources`,
    `${join(dir, 'ansible.cfg')} [inventory] enable_plugins = "ini" changes which inventory plugins read the file`,
  ]);
  // $ANSIBLE_CONFIG comes first; the environment wins over the file.
  writeFileSync(join(home, 'other.cfg'), '[defaults]\nduplicate_dict_key: error\n');
  t.deepEqual(ansibleSettingProblems({ ANSIBLE_CONFIG: join(home, 'other.cfg') }, dir, home), [
    `${join(home, 'other.cfg')} [defaults] duplicate_dict_key = "error" changes whether a YAML key given twice is an error`,
  ]);
  t.deepEqual(ansibleSettingProblems({ ANSIBLE_CONFIG: join(home, 'other.cfg'), ANSIBLE_DUPLICATE_YAML_DICT_KEY: 'ignore' }, dir, home), []);
  // A native inventory does not care; an Ansible one is refused, naming the setting.
  t.throws(() => loadInventory(join(FIXTURES, 'ports.yaml'), tempDir(), () => undefined, dir), {
    instanceOf: InventoryError,
    message: /Ansible settings in effect change what Ansible makes of this inventory.*precedence/,
  });
});

test('a host Ansible does not reach by ssh (ansible_connection local, docker...) is refused when selected', (t) => {
  const inv = load('connections.yaml');
  t.throws(() => dial(inv, 'web1'), {
    instanceOf: InventoryError,
    message: /connections\.yaml: host web1: ansible_connection is local: Ansible does not reach this host by ssh/,
  });
  t.throws(() => dial(inv, 'box'), { message: /host box: ansible_connection is docker/ });
  t.deepEqual(dial(inv, 'db1', 'db2'), ['db1=192.0.2.5:6789', 'db2=db2:6789']);
});
