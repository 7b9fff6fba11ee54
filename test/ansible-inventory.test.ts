import test from 'ava';
import { fileURLToPath } from 'node:url';
import { InventoryError } from '../src/errors.js';
import { loadInventory, parseInventory } from '../src/cli/targeting/inventory.js';
import { selectTargets } from '../src/cli/targeting/select.js';
import { cleanupAll, tempDir } from './helpers/fleet.js';

test.after.always(cleanupAll);
const fixture = fileURLToPath(new URL('../../test/fixtures/ansible/site.yaml', import.meta.url));
const inv = loadInventory(fixture, tempDir());
const pick = (...groups: string[]) => selectTargets(inv, { groups, hosts: [], exclude: [] }).map((t) => `${t.name}=${t.address}:${t.port}`);

test('the format is detected from the file; ranges with steps expand', (t) => {
  t.deepEqual(pick('web'), [
    'www01.example.com=www01.example.com:7100',
    'www03.example.com=www03.example.com:7100',
    'www05.example.com=www05.example.com:7100',
    'special.example.com=192.0.2.50:7200',
  ]);
});

test('vars precedence: all < parent group < child group < host; ansible_port is ignored', (t) => {
  t.deepEqual(pick('db'), ['db1.example.com=db1.example.com:7300', 'db2.example.com=db2.example.com:7000']);
  t.deepEqual(pick('db_primary'), ['db1.example.com=db1.example.com:7300']);
});

test('nested children, implicit all and ungrouped, set algebra over Ansible groups', (t) => {
  t.is(pick('prod').length, 6);
  t.deepEqual(pick('ungrouped'), ['bastion.example.com=192.0.2.1:7000']);
  t.is(pick('all').length, 7);
  t.deepEqual(pick('prod:&db:!db_primary'), ['db2.example.com=db2.example.com:7000']);
});

test('Ansible inventory errors name the file and the entry; what Ansible skips is skipped with its warning', (t) => {
  const warnings: string[] = [];
  const skipped = parseInventory('all:\n  hostz: {}\n', 'inv.yaml', { warnings });
  t.deepEqual([...skipped.hosts.keys()], []);
  t.deepEqual(warnings, ['Skipping unexpected key (hostz) in group (all), only "vars", "children" and "hosts" are valid']);
  const port = parseInventory('all:\n  hosts:\n    a:\n      distrun_port: 99999\n', 'inv.yaml');
  t.throws(() => selectTargets(port, { groups: ['all'], hosts: [], exclude: [] }), {
    instanceOf: InventoryError,
    message: /inv\.yaml: host a: distrun_port must be an integer from 1 to 65535, got 99999/,
  });
  t.throws(() => parseInventory('all:\n  children:\n    g:\n      hosts: [a, b]\n', 'inv.yaml'), {
    instanceOf: InventoryError,
    message: /all\.children\.g\.hosts: Invalid "hosts" entry for "g" group, requires a dictionary, found "list" instead/,
  });
  const backwards: string[] = [];
  t.deepEqual([...parseInventory('all:\n  hosts:\n    web[9:1]:\n', 'inv.yaml', { warnings: backwards }).hosts.keys()], []);
  t.regex(backwards[0]!, /web\[9:1\] in group all names no host/);
  t.throws(() => parseInventory('all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n', 'inv.yaml'), {
    instanceOf: InventoryError,
    message: /makes a loop/,
  });
});
