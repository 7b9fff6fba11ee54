import test from 'ava';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InventoryError, UsageError } from '../src/errors.js';
import { findInventoryFile, loadInventory, parseInventory } from '../src/cli/targeting/inventory.js';
import { parseHostList, selectTargets } from '../src/cli/targeting/select.js';
import { cleanupAll, tempDir } from './helpers/fleet.js';

test.after.always(cleanupAll);

const FILE = 'hosts.yaml';
const sample = `
defaults:
  port: 7000
hosts:
  web1: { address: 10.0.0.1 }
  web2: { address: 10.0.0.2, port: 7002 }
  db1:
groups:
  web: [web1, web2, 'web9:7009']
  db: [db1]
  prod: ['@web', '@db', extra]
  none: []
`;
const inv = parseInventory(sample, FILE);
const select = (groups: string[], hosts: string[] = [], exclude: string[] = []) =>
  selectTargets(inv, { groups, hosts, exclude }).map((t) => `${t.name}=${t.address}:${t.port}`);

test('groups expand to hosts with their address and port, defaults applied', (t) => {
  t.deepEqual(select(['web']), ['web1=10.0.0.1:7000', 'web2=10.0.0.2:7002', 'web9=web9:7009']);
  t.deepEqual(select(['db']), ['db1=db1:7000']);
});

test('nested groups, implicit all, order of first appearance, no duplicates', (t) => {
  t.deepEqual(select(['prod']), ['web1=10.0.0.1:7000', 'web2=10.0.0.2:7002', 'web9=web9:7009', 'db1=db1:7000', 'extra=extra:7000']);
  t.deepEqual(select(['db', 'web', 'db']), ['db1=db1:7000', 'web1=10.0.0.1:7000', 'web2=10.0.0.2:7002', 'web9=web9:7009']);
  t.deepEqual(select(['all']).length, 5);
});

test('-H takes names, host:port and [v6]:port; inventory names keep their address', (t) => {
  t.deepEqual(select([], ['web1, other:9000', '[::1]:7100', '127.0.0.1']), [
    'web1=10.0.0.1:7000',
    'other=other:9000',
    '::1=::1:7100',
    '127.0.0.1=127.0.0.1:7000',
  ]);
  t.deepEqual(select([], ['web2:8000']), ['web2=10.0.0.2:8000']);
  t.deepEqual(
    parseHostList('a,,b', 6789).map((x) => x.name),
    ['a', 'b'],
  );
});

test('one name selected with two ports: each is named with its port (distinct prefixes, summary entries, files)', (t) => {
  t.deepEqual(select([], ['127.0.0.1:6790,127.0.0.1:6791,127.0.0.2']), [
    '127.0.0.1:6790=127.0.0.1:6790',
    '127.0.0.1:6791=127.0.0.1:6791',
    '127.0.0.2=127.0.0.2:7000',
  ]);
  t.deepEqual(select(['web'], ['web1:7001', '[::1]:1', '[::1]:2']), [
    'web1:7000=10.0.0.1:7000',
    'web2=10.0.0.2:7002',
    'web9=web9:7009',
    'web1:7001=10.0.0.1:7001',
    '[::1]:1=::1:1',
    '[::1]:2=::1:2',
  ]);
  // The same host and port twice is one host.
  t.deepEqual(select([], ['web1', 'web1:7000']), ['web1=10.0.0.1:7000']);
});

test('-x removes hosts by name or name:port', (t) => {
  t.deepEqual(select(['web'], [], ['web1']), ['web2=10.0.0.2:7002', 'web9=web9:7009']);
  t.deepEqual(select(['web'], [], ['web9:1', 'web2:7002']), ['web1=10.0.0.1:7000', 'web9=web9:7009']);
});

test('selection errors', (t) => {
  t.throws(() => select([]), { instanceOf: UsageError, message: /no hosts selected/ });
  t.throws(() => select(['web'], [], ['web1,web2,web9']), { instanceOf: UsageError, message: /selection is empty/ });
  t.throws(() => select(['none']), { instanceOf: UsageError, message: /the selection is empty: 'none' names only groups without hosts/ });
  t.throws(() => select(['web:&db:!web1']), { instanceOf: UsageError, message: /the selection is empty: the intersection web:&db is empty/ });
  t.throws(() => select(['db:!db1']), { instanceOf: UsageError, message: /the selection is empty: db:!db1 excluded every host/ });
  t.throws(() => select(['db'], [], ['db1']), { instanceOf: UsageError, message: /the selection is empty: -x db1 excluded every selected host/ });
  t.deepEqual(select(['none', 'db']), ['db1=db1:7000'], 'an empty group among others is no error');
  t.throws(() => select(['webz']), {
    instanceOf: InventoryError,
    message: /hosts\.yaml: unknown group or host 'webz' \(known groups: db, none, prod, web\)/,
  });
  t.throws(() => select([], ['web1:99999']), { instanceOf: UsageError, message: /port must be/ });
  t.throws(() => select([], ['bad/name']), { instanceOf: UsageError, message: /invalid host/ });
  t.throws(() => selectTargets(undefined, { groups: ['web'], hosts: [], exclude: [] }), {
    instanceOf: InventoryError,
    message: /no inventory found/,
  });
});

const bad: Array<[string, string, RegExp]> = [
  ['bad YAML', 'hosts:\n  web1: {address: [\n', /hosts\.yaml: line \d+, column \d+: invalid YAML: (?!.*at line)/],
  ['unknown top-level key', 'hosts: {}\nhostz: {}\n', /hosts\.yaml: hostz: unknown key/],
  ['unknown host key', 'hosts:\n  web1: { adress: x }\n', /hosts\.yaml: hosts\.web1\.adress: unknown key/],
  ['port 0', 'hosts:\n  web1: { port: 0 }\n', /hosts\.yaml: hosts\.web1\.port: port must be an integer from 1 to 65535, got 0/],
  ['port 70000', 'hosts:\n  web1: { port: 70000 }\n', /hosts\.web1\.port: .*got 70000/],
  ['port abc', 'defaults: { port: abc }\n', /defaults\.port: .*got "abc"/],
  ['bad host name', 'hosts:\n  "web 1": {}\n', /hosts\.web 1: invalid host name/],
  ['bad member', 'groups:\n  g: ["a/b"]\n', /groups\.g\[0\]: invalid host name/],
  ['unknown group reference', 'groups:\n  web: [a, "@dbb"]\n', /hosts\.yaml: groups\.web\[1\]: unknown group 'dbb'/],
  ['include cycle', 'groups:\n  a: ["@b"]\n  b: ["@a"]\n', /groups\.a: groups include each other in a cycle: a -> b -> a/],
  ['defining all', 'groups:\n  all: [a]\n', /groups\.all: 'all' is implicit/],
  ['group not a list', 'groups:\n  g: web1\n', /groups\.g: must be a list/],
  ['not a mapping', '- a\n- b\n', /hosts\.yaml: the inventory must be a mapping/],
];
for (const [name, text, message] of bad) {
  test(`inventory error names file and entry: ${name}`, (t) => {
    t.throws(() => parseInventory(text, FILE), { instanceOf: InventoryError, message });
  });
}

test('an empty file is an empty inventory', (t) => {
  t.is(parseInventory('', FILE).groups.size, 0);
});

test('files: missing file, -i and $DISTRUN_INVENTORY precedence', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'distrun-inv-'));
  try {
    t.throws(() => loadInventory(join(dir, 'nope.yaml'), join(dir, 'cache')), { instanceOf: InventoryError, message: /nope\.yaml: no such file/ });
    const home = join(dir, 'home');
    const cwd = join(dir, 'cwd');
    mkdirSync(join(home, '.config', 'distrun'), { recursive: true });
    mkdirSync(cwd);
    t.is(findInventoryFile(undefined, {}, cwd, home), undefined);
    writeFileSync(join(home, '.config', 'distrun', 'hosts.yaml'), '');
    t.is(findInventoryFile(undefined, {}, cwd, home), join(home, '.config', 'distrun', 'hosts.yaml'));
    writeFileSync(join(cwd, 'hosts.yaml'), '');
    t.is(findInventoryFile(undefined, {}, cwd, home), join(cwd, 'hosts.yaml'));
    writeFileSync(join(dir, 'env.yaml'), '');
    t.is(findInventoryFile(undefined, { DISTRUN_INVENTORY: join(dir, 'env.yaml') }, cwd, home), join(dir, 'env.yaml'));
    t.is(findInventoryFile('../env.yaml', { DISTRUN_INVENTORY: '/nope' }, cwd, home), join(dir, 'env.yaml'));
    t.throws(() => findInventoryFile('missing.yaml', {}, cwd, home), {
      instanceOf: InventoryError,
      message: /missing\.yaml: no such file \(from -i\)/,
    });
    // Ansible's `-i 'web1,web2:22,'` (its host_list plugin) is refused, pointing to -H.
    t.throws(() => findInventoryFile('web1,web2:22,', {}, cwd, home), {
      instanceOf: InventoryError,
      message: /^web1,web2:22,: no such file; Ansible would read it as a list of hosts .*give the hosts with -H/,
    });
    t.throws(() => findInventoryFile(undefined, { DISTRUN_INVENTORY: '/nope.yaml' }, cwd, home), {
      instanceOf: InventoryError,
      message: /DISTRUN_INVENTORY/,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the example hosts.yaml at the top of the repository is valid', (t) => {
  const example = loadInventory(new URL('../../hosts.yaml', import.meta.url).pathname, tempDir());
  t.deepEqual(selectTargets(example, { groups: ['production'], hosts: [], exclude: [] }).length, 5);
});

const ranged = parseInventory(
  `
hosts:
  web[01-04]: { port: 7000 }
  db1: {}
groups:
  web: ['web[01-04]']
  prod: [web01, web02, db1]
  canary: ['web[03-04]', 'www[01:05:2]']
`,
  FILE,
);
const pick = (groups: string[], hosts: string[] = [], exclude: string[] = []) =>
  selectTargets(ranged, { groups, hosts, exclude }).map((t) => `${t.name}:${t.port}`);

test('ranges in host keys and group members expand, settings and padding kept', (t) => {
  t.deepEqual(pick(['web']), ['web01:7000', 'web02:7000', 'web03:7000', 'web04:7000']);
  t.deepEqual(pick(['canary']), ['web03:7000', 'web04:7000', 'www01:6789', 'www03:6789', 'www05:6789']);
});

test('-H and -x take ranges; IPv6 brackets still mean addresses', (t) => {
  t.deepEqual(pick([], ['web[01-02],db1']), ['web01:7000', 'web02:7000', 'db1:6789']);
  t.deepEqual(pick([], ['new[1-3]:9000'], ['new2']), ['new1:9000', 'new3:9000']);
  t.deepEqual(pick(['web'], [], ['web[02-03]']), ['web01:7000', 'web04:7000']);
  t.deepEqual(pick([], ['[::1]:7100']), ['::1:7100']);
});

test('brackets after a group name are refused: a host range here, a position in the group in Ansible', (t) => {
  t.throws(() => pick(['web[03-04],db1']), {
    instanceOf: InventoryError,
    message: /'web\[03-04\]': web is a group, and in this inventory format brackets after a name are a host range \(web03, web04\)/,
  });
  t.throws(() => pick(['prod:!web[0]']), { instanceOf: InventoryError, message: /'web\[0\]': web is a group/ });
  t.throws(() => pick(['all[1:2]']), { instanceOf: InventoryError, message: /all is a group/ });
  // No collision: web0[1-2] is not a group's name with a subscript, www is no group.
  t.deepEqual(pick(['web0[1-2]']), ['web01:7000', 'web02:7000']);
  t.deepEqual(pick(['www[01-05]']), ['www01:6789', 'www03:6789', 'www05:6789']);
});

test('target expressions: union, intersection, difference, ranges and wildcards', (t) => {
  t.deepEqual(pick(['web:&prod']), ['web01:7000', 'web02:7000']);
  t.deepEqual(pick(['web:&prod:!web02']), ['web01:7000']);
  t.deepEqual(pick(['prod:!web*']), ['db1:6789']);
  // `?` is one character, as in the agent's policy patterns (one wildcard module).
  t.deepEqual(pick(['web0?']), ['web01:7000', 'web02:7000', 'web03:7000', 'web04:7000']);
  t.deepEqual(pick(['web0?:&prod']), ['web01:7000', 'web02:7000']);
  t.deepEqual(pick(['prod:!web0?']), ['db1:6789']);
  t.deepEqual(pick(['www[01-03],db1']), ['www01:6789', 'www03:6789', 'db1:6789']);
  t.deepEqual(pick(['all:!web:!canary']), ['db1:6789']);
  t.deepEqual(pick(['db1', 'web01']), ['db1:6789', 'web01:7000'], 'several -g expressions are a union');
  t.throws(() => pick(['web:&nosuch']), { instanceOf: InventoryError, message: /unknown group or host 'nosuch'/ });
  t.throws(() => pick(['!web']), { instanceOf: UsageError, message: /no group or host to start from/ });
  t.throws(() => pick(['web:!web']), { instanceOf: UsageError, message: /selection is empty/ });
});

test('a bad range in the inventory names the file and entry', (t) => {
  t.throws(() => parseInventory('hosts:\n  web[5-1]: {}\n', FILE), {
    instanceOf: InventoryError,
    message: /hosts\.yaml: hosts\.web\[5-1\]: range '5-1' .* goes backwards/,
  });
});

test('a parsed inventory is cached by content: an edit is parsed again; a shared cache directory is not used', (t) => {
  const dir = tempDir();
  const file = join(dir, 'hosts.yaml');
  const cache = join(dir, 'cache');
  writeFileSync(file, 'hosts:\n  a: { address: 10.0.0.1 }\n');
  t.is(loadInventory(file, cache).hosts.get('a')?.address, '10.0.0.1');
  const [entry] = readdirSync(cache);
  t.regex(entry!, /^[0-9a-f]{64}\.json$/);
  t.is(statSync(cache).mode & 0o777, 0o700);
  t.is(statSync(join(cache, entry!)).mode & 0o777, 0o600);
  // The cached copy is what a second load returns (proved by altering it) ...
  writeFileSync(join(cache, entry!), JSON.stringify({ file, defaults: { port: 6789 }, hosts: [['a', { address: '10.9.9.9' }]], groups: [] }));
  t.is(loadInventory(file, cache).hosts.get('a')?.address, '10.9.9.9');
  // ... until the file changes.
  writeFileSync(file, 'hosts:\n  a: { address: 10.0.0.2 }\n');
  t.is(loadInventory(file, cache).hosts.get('a')?.address, '10.0.0.2');
  // Errors are not cached: the file is parsed (and rejected) every time.
  writeFileSync(file, 'hosts:\n  a: { addr: 10.0.0.2 }\n');
  t.throws(() => loadInventory(file, cache), { instanceOf: InventoryError });
  t.throws(() => loadInventory(file, cache), { instanceOf: InventoryError });

  const shared = join(dir, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  writeFileSync(file, 'hosts:\n  a: { address: 10.0.0.3 }\n');
  t.is(loadInventory(file, shared).hosts.get('a')?.address, '10.0.0.3');
  t.deepEqual(readdirSync(shared), []);
});
