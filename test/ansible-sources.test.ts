// Which reader takes which Ansible inventory source, without Ansible installed: what
// distrun reads natively, and what it refuses naming the file and what it needs.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InventoryError } from '../src/errors.js';
import { loadInventories } from '../src/cli/targeting/inventory.js';
import { cleanupAll, tempDir } from './helpers/fleet.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/ansible/', import.meta.url));
const at = (...parts: string[]): string => join(FIXTURES, ...parts);
test.after.always(cleanupAll);

const cacheDir = join(tempDir(), 'cache');
const noAnsible = { cacheDir, env: { PATH: '/nonexistent' }, warn: () => {} };
const stdin = (text: string) => ({ ...noAnsible, stdin: () => Buffer.from(text) });

test('without ansible-inventory, what needs Ansible is refused, naming the file and what it needs', (t) => {
  for (const [file, what] of [
    [at('needs', 'vaulted'), /vaulted is vault-encrypted: distrun reads it only through Ansible's ansible-inventory, which is not on PATH/],
    [at('needs', 'inventory.toml'), /inventory\.toml is a TOML inventory: .*not on PATH/],
    [at('plugins', 'generator.yml'), /generator\.yml is an inventory plugin configuration \(plugin: ansible\.builtin\.generator\)/],
  ] as const) {
    t.throws(() => loadInventories([file], noAnsible), { instanceOf: InventoryError, message: what });
  }
});

test('an executable script is refused whatever is installed, and -i - cannot go through ansible-inventory', (t) => {
  t.throws(() => loadInventories([at('scripts', 'inventory.py')], { cacheDir, warn: () => {} }), { message: /pass --ansible-inventory/ });
  t.throws(() => loadInventories(['-'], { ...stdin('[w]\nw1\n'), throughAnsible: true }), { message: /--ansible-inventory reads files/ });
  t.throws(() => loadInventories(['-', '-'], stdin('')), { message: /stdin can be given only once/ });
  t.throws(() => loadInventories([at('ini', 'order.ini')], { ...noAnsible, throughAnsible: true }), {
    message: /--ansible-inventory: Ansible's ansible-inventory is not on PATH/,
  });
});

test('stdin is told by its content: --list JSON, INI, or a YAML inventory', (t) => {
  const json = loadInventories(
    ['-'],
    stdin('{"10": ["b", "a"], "web": {"hosts": ["w1"]}, "_meta": {"hostvars": {"w1": {"ansible_host": "10.0.0.1"}}}}'),
  );
  // Key order is the text's (JSON.parse would put the group "10" first anyway, and host order follows it).
  t.deepEqual(json.ansible!.hosts, ['b', 'a', 'w1']);
  t.is(json.hosts.get('w1')?.address, '10.0.0.1');
  t.regex(json.ansible!.reader, /script JSON <stdin>/);
  const ini = loadInventories(['-'], stdin('[web]\nw1 distrun_port=7001\n'));
  t.is(ini.hosts.get('w1')?.port, 7001);
  t.regex(ini.ansible!.reader, /ini <stdin>/);
  const yaml = loadInventories(['-'], stdin('hosts:\n  h1: { address: 10.0.0.9 }\n'));
  t.is(yaml.hosts.get('h1')?.address, '10.0.0.9');
});

test('several -i merge into one inventory in order: a host keeps its first position, later vars win', (t) => {
  const inv = loadInventories([at('ini', 'order.ini'), at('json', 'script.json'), at('dirs', 'site')], noAnsible);
  t.deepEqual(inv.ansible!.hosts.slice(0, 4), ['h3', 'h1', 'h2', 'n10a']);
  t.deepEqual(inv.groups.get('web'), ['w2', 'w1', 'web2', 'web1', 'web3', 'a1', 'd1']);
  t.regex(
    inv.ansible!.reader,
    /^distrun's readers \(ini .*order\.ini; script JSON .*script\.json; ini .*10-web; script JSON .*20-db\.json; ini .*Zeta; ini .*extra\)$/,
  );
});

test('an inventory directory with nothing Ansible would read is an error', (t) => {
  t.throws(() => loadInventories([at('dirs', 'ignored-only')], noAnsible), {
    message: /ignored-only: this inventory directory has no inventory file/,
  });
});

test('Ansible settings that change how it reads inventories send them to ansible-inventory, or are refused without it', (t) => {
  const ini = at('ini', 'order.ini');
  t.throws(() => loadInventories([ini], { ...noAnsible, env: { PATH: '/nonexistent', ANSIBLE_HASH_BEHAVIOUR: 'merge' } }), {
    message:
      /order\.ini is to be read under Ansible settings distrun's readers do not apply \(\$ANSIBLE_HASH_BEHAVIOUR = "merge" changes how variables of several sources combine\): .*not on PATH/,
  });
  const dir = tempDir();
  const cfg = join(dir, 'ansible.cfg');
  const withCfg = { ...noAnsible, env: { PATH: '/nonexistent', ANSIBLE_CONFIG: cfg } };
  writeFileSync(cfg, '[defaults]\nforks = 5\n# inventory_ignore_extensions = .json\n\n[inventory]\nEnable_Plugins = yaml\n');
  t.throws(() => loadInventories([ini], withCfg), {
    message: /ansible\.cfg \[inventory\] enable_plugins = "yaml" changes which inventory plugins read the file/,
  });
  // Only the plugins the sources need count: INI alone is read as the ini plugin reads it.
  writeFileSync(cfg, '[inventory]\nenable_plugins = host_list, ini\n');
  t.deepEqual(loadInventories([ini], withCfg).ansible!.hosts, ['h3', 'h1', 'h2']);
  t.throws(() => loadInventories([ini, at('site.yaml')], withCfg), { message: /enable_plugins/ });
  // Ignored extensions matter only where a directory is walked.
  writeFileSync(cfg, '[defaults]\nforks = 5\ninventory_ignore_extensions = .json\n');
  t.deepEqual(loadInventories([ini], { ...noAnsible, env: { PATH: '/nonexistent', ANSIBLE_CONFIG: dir } }).ansible!.hosts, ['h3', 'h1', 'h2']);
  t.throws(() => loadInventories([at('dirs', 'site')], withCfg), {
    message: /inventory_ignore_extensions = "\.json" changes which files of an inventory directory are read/,
  });
});

test('a default connection other than ssh is refused even through ansible-inventory (its JSON does not carry it)', (t) => {
  t.throws(() => loadInventories([at('plugins', 'generator.yml')], { ...noAnsible, env: { PATH: '/nonexistent', ANSIBLE_TRANSPORT: 'local' } }), {
    message: /\$ANSIBLE_TRANSPORT = "local" changes the default connection/,
  });
});
