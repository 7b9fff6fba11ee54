// ansible-data.ts on its own: the calls Ansible's inventory plugins make, and what
// ansible-core's InventoryData gives for them (checked by hand against ansible-core 2.14;
// the differential tests compare whole inventories with the real thing).
import test from 'ava';
import { AnsibleInventoryData, hostVariables, viewOf } from '../src/cli/targeting/ansible-data.js';

function build(): AnsibleInventoryData {
  const data = new AnsibleInventoryData('inv.yml');
  for (const g of ['web', 'db', 'prod', 'edge']) data.addGroup(g);
  data.addHost('db2', 'db');
  data.addHost('db1', 'db');
  data.addHost('db0', 'db');
  data.addHost('w1', 'web');
  data.addHost('lone');
  data.addChild('prod', 'web');
  data.addChild('prod', 'db');
  data.addChild('web', 'edge');
  data.addHost('e1', 'edge');
  data.setVariable('all', 'x', 'all');
  data.setVariable('prod', 'x', 'prod');
  data.setVariable('web', 'x', 'web');
  data.setVariable('db', 'x', 'db');
  data.reconcile();
  return data;
}

test('hosts of a group in Ansible order: its own, its children in list order, then deeper; ungrouped and all', (t) => {
  const view = viewOf(build(), 'test');
  const hostsOf = (name: string) => view.groups.find((g) => g.name === name);
  t.deepEqual(hostsOf('db'), { name: 'db', hosts: ['db2', 'db1', 'db0'], ordered: true });
  t.deepEqual(hostsOf('prod'), { name: 'prod', hosts: ['w1', 'db2', 'db1', 'db0', 'e1'], ordered: true });
  t.deepEqual(hostsOf('ungrouped')!.hosts, ['lone']);
  t.deepEqual(
    view.groups.map((g) => g.name),
    ['all', 'ungrouped', 'web', 'db', 'prod', 'edge'],
  );
});

test('depth decides variable precedence, then priority, then name; host vars and files come last', (t) => {
  const data = build();
  // edge is deepest (all > prod > web > edge): e1 gets web's x over prod's.
  t.is(hostVariables(data, data.hosts.get('e1')!).x, 'web');
  t.is(hostVariables(data, data.hosts.get('db0')!).x, 'db');
  t.is(hostVariables(data, data.hosts.get('lone')!).x, 'all');
  data.setVariable('prod', 'ansible_group_priority', 10);
  data.addGroup('late');
  data.addChild('all', 'late');
  data.addChild('late', 'db0');
  data.setVariable('late', 'x', 'late');
  // db (depth 2) beats late (depth 1) whatever late's name.
  t.is(hostVariables(data, data.hosts.get('db0')!).x, 'db');
  data.setVariable('db0', 'x', 'host');
  t.is(hostVariables(data, data.hosts.get('db0')!).x, 'host');
  const files = {
    group: (g: string) => (g === 'db' ? { x: 'group_vars/db', y: 1 } : undefined),
    host: (h: string) => (h === 'db1' ? { x: 'host_vars/db1' } : undefined),
  };
  t.is(hostVariables(data, data.hosts.get('db2')!, files).x, 'group_vars/db');
  t.is(hostVariables(data, data.hosts.get('db1')!, files).x, 'host_vars/db1');
  t.is(hostVariables(data, data.hosts.get('db0')!, files).x, 'host', 'inventory host vars beat group_vars files');
});

test('a group whose deeper hosts come in an order Ansible leaves to a Python set is marked unordered', (t) => {
  const data = new AnsibleInventoryData('inv.yml');
  for (const g of ['top', 'a', 'b', 'a1', 'b1']) data.addGroup(g);
  data.addChild('top', 'a');
  data.addChild('top', 'b');
  data.addChild('a', 'a1');
  data.addChild('b', 'b1');
  data.addHost('h1', 'a1');
  data.addHost('h2', 'b1');
  data.reconcile();
  const top = viewOf(data, 'test').groups.find((g) => g.name === 'top')!;
  t.false(top.ordered);
  t.deepEqual(new Set(top.hosts), new Set(['h1', 'h2']));
  // One branch only: still ordered.
  t.true(viewOf(data, 'test').groups.find((g) => g.name === 'a')!.ordered);
});

test('a loop between groups is an error naming the file', (t) => {
  const data = new AnsibleInventoryData('inv.yml');
  data.addGroup('a');
  data.addGroup('b');
  data.addChild('a', 'b');
  t.throws(() => data.addChild('b', 'a'), { message: /inv\.yml.*makes a loop/ });
});

test('ansible_group_priority goes through Python int(): floats truncate, what int() refuses is an error', (t) => {
  const data = new AnsibleInventoryData('inv.yml');
  data.addGroup('g');
  data.setVariable('g', 'ansible_group_priority', 7.9);
  t.is(data.groups.get('g')!.priority, 7);
  data.setVariable('g', 'ansible_group_priority', ' 1_0 ');
  t.is(data.groups.get('g')!.priority, 10);
  data.setVariable('g', 'ansible_group_priority', true);
  t.is(data.groups.get('g')!.priority, 1);
  t.throws(() => data.setVariable('g', 'ansible_group_priority', 'high'), { message: /ansible_group_priority must be an integer/ });
  t.throws(() => data.setVariable('g', 'ansible_group_priority', null), { message: /ansible_group_priority must be an integer/ });
  t.false('ansible_group_priority' in data.groups.get('g')!.vars);
});

test('vars files next to the inventory, then next to the playbook, stage by stage (all, then the groups, then the host)', (t) => {
  const data = new AnsibleInventoryData('inv.yml');
  for (const g of ['g1', 'g2']) data.addGroup(g);
  data.addHost('h', 'g1');
  data.addChild('g2', 'h');
  data.reconcile();
  const inventory = {
    group: (g: string) => (g === 'g2' ? { x: 'inventory g2' } : g === 'all' ? { y: 'inventory all' } : undefined),
    host: () => ({ z: 'inventory host' }),
  };
  const play = { group: (g: string) => (g === 'g1' ? { x: 'play g1' } : g === 'all' ? { y: 'play all' } : undefined), host: () => undefined };
  // g1 sorts before g2, but every inventory-adjacent group file comes before every play-adjacent one.
  t.deepEqual(hostVariables(data, data.hosts.get('h')!, [inventory, play]), { x: 'play g1', y: 'play all', z: 'inventory host' });
  t.deepEqual(hostVariables(data, data.hosts.get('h')!, inventory), { x: 'inventory g2', y: 'inventory all', z: 'inventory host' });
});
