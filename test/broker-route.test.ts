// Which hosts a run reaches through the brokers: the inventory's `broker:` and `connect`
// keys (native), `distrun_connect` / `distrun_broker` (Ansible), --broker and
// $DISTRUN_BROKER, and the refusals when the way to a host cannot be told.
import test from 'ava';
import { InventoryError, UsageError } from '../src/errors.js';
import { routeTargets } from '../src/cli/execution/broker-route.js';
import { parseInventory } from '../src/cli/targeting/inventory.js';
import { selectTargets } from '../src/cli/targeting/select.js';
import type { Inventory } from '../src/cli/targeting/model.js';

const FILE = 'hosts.yaml';
const mixed = `
broker: [nats1.example.com:4222, 'tls://nats2.example.com']
defaults: { connect: direct }
hosts:
  web1: { address: 10.0.0.1 }
  edge1: { address: 10.9.0.1, connect: broker }
  edge2: { connect: direct }
groups:
  web: [web1, web2]
  edge: ['edge[1-3]']
  natted: ['@edge', lone]
connect:
  broker: ['@natted']
`;

/** `name=way` for each selected host, after routing. */
function ways(
  inv: Inventory | undefined,
  groups: string[],
  opts: { broker?: string } = {},
  env: NodeJS.ProcessEnv = {},
  hosts: string[] = [],
): string[] {
  const { targets } = routeTargets(selectTargets(inv, { groups, hosts, exclude: [] }), opts, env);
  return targets.map((t) => `${t.name}=${t.reach?.through === 'broker' ? `broker(${t.reach.urls!.join(',')})` : 'direct'}`);
}

test('a host, its groups and the defaults say how it is reached; the host itself first', (t) => {
  const inv = parseInventory(mixed, FILE);
  const brokers = 'broker(nats1.example.com:4222,nats2.example.com:4222)';
  t.deepEqual(ways(inv, ['all']), [
    'web1=direct',
    `edge1=${brokers}`,
    // Its own `connect: direct` wins over its group's list.
    'edge2=direct',
    'web2=direct',
    `edge3=${brokers}`,
    `lone=${brokers}`,
  ]);
  // A host the inventory does not know: the defaults.
  t.deepEqual(ways(inv, [], {}, {}, ['other']), ['other=direct']);
  // What said so, for `distrun hosts --explain`.
  const edge3 = selectTargets(inv, { groups: ['edge'], hosts: [], exclude: [] }).find((x) => x.name === 'edge3');
  t.is(edge3?.reach?.by, 'hosts.yaml: connect.broker[0] (@natted)');
});

test('--broker and $DISTRUN_BROKER name the brokers, and take the hosts nothing is said of', (t) => {
  const plain = parseInventory('hosts:\n  a: {}\n  b: { connect: direct }\n', FILE);
  t.deepEqual(ways(plain, ['all']), ['a=direct', 'b=direct']);
  t.deepEqual(ways(plain, ['all'], { broker: 'n1:4000' }), ['a=broker(n1:4000)', 'b=direct']);
  t.deepEqual(ways(plain, ['all'], {}, { DISTRUN_BROKER: 'n2' }), ['a=broker(n2:4222)', 'b=direct']);
  // --broker over $DISTRUN_BROKER over the inventory's brokers.
  t.deepEqual(ways(plain, ['all'], { broker: 'n1:4000' }, { DISTRUN_BROKER: 'n2' }), ['a=broker(n1:4000)', 'b=direct']);
  const inv = parseInventory(mixed, FILE);
  t.deepEqual(ways(inv, ['edge'], { broker: 'n1:4000' }), ['edge1=broker(n1:4000)', 'edge2=direct', 'edge3=broker(n1:4000)']);
  // No inventory at all: -H hosts, through the broker when one is named.
  t.deepEqual(ways(undefined, [], { broker: 'n1' }, {}, ['x']), ['x=broker(n1:4222)']);
  t.deepEqual(ways(undefined, [], {}, {}, ['x']), ['x=direct']);
});

test("an inventory's broker: alone sends every host through it", (t) => {
  const inv = parseInventory('broker: n1:4000,n2:4001\nhosts:\n  a: {}\n  b: { connect: direct }\n', FILE);
  t.deepEqual(ways(inv, ['all']), ['a=broker(n1:4000,n2:4001)', 'b=direct']);
  const a = routeTargets(selectTargets(inv, { groups: ['all'], hosts: [], exclude: [] }), {}, {});
  t.deepEqual(a.urls, ['n1:4000', 'n2:4001']);
  t.is(a.targets[0]!.reach?.by, 'hosts.yaml: broker');
});

test('no brokered host: no brokers to open', (t) => {
  const inv = parseInventory(mixed, FILE);
  t.is(routeTargets(selectTargets(inv, { groups: ['web'], hosts: [], exclude: [] }), {}, {}).urls, undefined);
});

test('a brokered host with no broker named, and hosts that name different brokers, are refused', (t) => {
  const inv = parseInventory('hosts:\n  a: { connect: broker }\n', FILE);
  const none = t.throws(() => ways(inv, ['all']), { instanceOf: UsageError });
  t.regex(
    none.message,
    /^a is reached through a broker \(hosts\.yaml: hosts\.a\.connect\), but no broker is named for it: add broker: to the inventory, or give --broker/,
  );
  t.deepEqual(ways(inv, ['all'], { broker: 'n1' }), ['a=broker(n1:4222)']);
  const targets = [
    { name: 'a', address: 'a', port: 6789, reach: { through: 'broker' as const, by: 'x', urls: ['n1:4222'] } },
    { name: 'b', address: 'b', port: 6789, reach: { through: 'broker' as const, by: 'y', urls: ['n2:4222'] } },
  ];
  t.throws(() => routeTargets(targets, {}, {}), { instanceOf: UsageError, message: /^a and b name different brokers \(n1:4222; n2:4222\)/ });
  t.deepEqual(
    routeTargets(targets, { broker: 'n3' }, {}).targets.map((x) => x.reach?.urls),
    [['n3:4222'], ['n3:4222']],
  );
});

test('bad broker and connect entries name the file and the entry', (t) => {
  const bad = (text: string, message: RegExp) => {
    const err = t.throws(() => parseInventory(text, FILE), { instanceOf: InventoryError });
    t.regex(err.message, message);
  };
  // With hosts: (or defaults:, groups:) a file is ours; `broker:` alone would be an Ansible group.
  bad('broker: user@n1:4222\nhosts: {}\n', /^hosts\.yaml: broker: broker address "user@n1:4222" must be host\[:port\]/);
  bad('broker: [n1, 3]\nhosts: {}\n', /^hosts\.yaml: broker: must be host:port of each broker/);
  bad('broker: []\nhosts: {}\n', /^hosts\.yaml: broker: must be host:port of each broker/);
  bad('hosts:\n  a: { connect: nats }\n', /^hosts\.yaml: hosts\.a\.connect: must be direct or broker, got "nats"/);
  bad('defaults: { connect: yes }\n', /^hosts\.yaml: defaults\.connect: must be direct or broker, got "yes"/);
  bad('hosts:\n  a: {}\nconnect:\n  relay: [a]\n', /^hosts\.yaml: connect\.relay: must be direct or broker/);
  bad('hosts:\n  a: {}\nconnect:\n  broker: a\n', /^hosts\.yaml: connect\.broker: must be a list of hosts and @groups/);
  bad('hosts:\n  a: {}\nconnect:\n  broker: [b]\n', /^hosts\.yaml: connect\.broker\[0\]: b is not a host of this inventory/);
  bad("hosts:\n  a: {}\nconnect:\n  broker: ['@g']\n", /^hosts\.yaml: connect\.broker\[0\]: unknown group 'g'/);
  bad(
    'hosts:\n  a: {}\ngroups:\n  g: [a]\nconnect:\n  broker: [a]\n  direct: ["@g"]\n',
    /^hosts\.yaml: connect\.direct\[0\]: a is listed both as direct and as broker \(connect\.broker\[0\]\); list it once/,
  );
});

test("an Ansible inventory says it with distrun_connect and distrun_broker, in Ansible's precedence", (t) => {
  const inv = parseInventory(
    `
all:
  vars:
    distrun_broker: [nats1:4222, nats2:4222]
    distrun_connect: direct
  children:
    shops:
      vars: { distrun_connect: broker }
      hosts:
        shop1:
        shop2: { distrun_connect: direct }
    office:
      hosts:
        desk1: { ansible_host: 10.0.0.5 }
`,
    'hosts.yml',
  );
  t.deepEqual(ways(inv, ['all']), ['shop1=broker(nats1:4222,nats2:4222)', 'shop2=direct', 'desk1=direct']);
  t.is(selectTargets(inv, { groups: ['shops'], hosts: [], exclude: [] })[0]!.reach?.by, 'hosts.yml: distrun_connect of shop1');
  // distrun_broker alone makes the brokers the way in, as the native broker: key does.
  const named = parseInventory('all:\n  vars: { distrun_broker: "n1:4000" }\n  hosts:\n    a:\n    b: { distrun_connect: direct }\n', 'hosts.yml');
  t.deepEqual(ways(named, ['all']), ['a=broker(n1:4000)', 'b=direct']);
  // A value distrun cannot read as Ansible would is refused when the host is selected.
  const bad = parseInventory('all:\n  hosts:\n    a: { distrun_connect: ssh }\n    b: { distrun_broker: "u@n1" }\n', 'hosts.yml');
  t.throws(() => ways(bad, ['a']), {
    instanceOf: InventoryError,
    message: /^hosts\.yml: host a: distrun_connect must be direct or broker, got ssh$/,
  });
  t.throws(() => ways(bad, ['b']), {
    instanceOf: InventoryError,
    message: /^hosts\.yml: host b: distrun_broker: broker address "u@n1" must be host\[:port\]/,
  });
});
