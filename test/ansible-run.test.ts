// A run, not only a listing: hand-made Ansible inventories in each shape of issue 15
// (YAML with merge keys, host:port keys, group_vars/ and host_vars/, INI with inline
// variables, a directory of both), patterns with subscripts, globs and exclusions, and
// real agents, one per port. Which agents ran the command must be exactly the hosts
// `ansible PATTERN --list-hosts` lists, each reached on the distrun_port ansible-core
// resolves for it. Skipped with one line without ansible-core.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ansiblePython, askAnsible } from './helpers/ansible-python.js';
import { listedHosts, cleanupAll, distrun, makePki, startAgent, tempDir, waitFor, type Pki, type RunningAgent } from './helpers/fleet.js';

const python = ansiblePython();
const ansibleTest = python ? test.serial : test.serial.skip;
if (!python) console.log('ansible-run: skipped: ansible-core is not installed (apt-get install ansible-core)');

const PATTERN_ORACLE = fileURLToPath(new URL('../../test/helpers/ansible-pattern-oracle.py', import.meta.url));
const NAMES = ['db0', 'db1', 'db2', 'web1', 'web2', 'edge1'];

let pki: Pki;
/** One agent per inventory host; the host's name is the key. */
const agents = new Map<string, RunningAgent>();

test.before(async () => {
  if (!python) return;
  pki = await makePki(['agent1']);
  for (const name of NAMES) agents.set(name, await startAgent(pki, 'agent1'));
});
test.after.always(cleanupAll);

const port = (name: string): number => agents.get(name)!.port;

/** The inventory shapes, each written into its own directory; the file or directory is -i. */
function shapes(dir: string): Array<{ shape: string; source: string }> {
  const yamlDir = join(dir, 'yaml');
  mkdirSync(join(yamlDir, 'group_vars'), { recursive: true });
  mkdirSync(join(yamlDir, 'host_vars'), { recursive: true });
  // Merge keys, a host:port key (ssh's port: never dialled), ports from group_vars and
  // host_vars, db listed as db2, db1, db0 (db[0] is db2).
  writeFileSync(
    join(yamlDir, 'inventory.yml'),
    `
all:
  vars:
    ansible_host: 127.0.0.1
  children:
    db:
      hosts:
        db2: &base { distrun_port: ${port('db2')} }
        db1:
        db0: { <<: *base, distrun_port: ${port('db0')} }
    web:
      children:
        edge:
          hosts:
            edge1:
      hosts:
        web1:2222:
        web2: { ansible_port: 22 }
`,
  );
  writeFileSync(join(yamlDir, 'group_vars', 'edge.yml'), `distrun_port: ${port('edge1')}\n`);
  writeFileSync(join(yamlDir, 'host_vars', 'db1.yml'), `distrun_port: ${port('db1')}\n`);
  writeFileSync(join(yamlDir, 'host_vars', 'web1'), `distrun_port: ${port('web1')}\n`);
  writeFileSync(join(yamlDir, 'host_vars', 'web2.json'), JSON.stringify({ distrun_port: port('web2') }));

  const ini = join(dir, 'hosts.ini');
  writeFileSync(
    ini,
    [
      '[db]',
      ...['db2', 'db1', 'db0'].map((h) => `${h} ansible_host=127.0.0.1 distrun_port=${port(h)}`),
      '[edge]',
      `edge1:2200 ansible_ssh_host=127.0.0.1 distrun_port=${port('edge1')}`,
      '[web:children]',
      'edge',
      '[web]',
      // web1's port from web:vars, web2's own over it.
      `web[1:2] ansible_host=127.0.0.1`,
      `web2 distrun_port=${port('web2')}`,
      '[web:vars]',
      `distrun_port=${port('web1')}`,
      '',
    ].join('\n'),
  );

  // A directory: the INI file for db, a YAML file for web; group_vars/ beside them.
  const both = join(dir, 'both');
  mkdirSync(join(both, 'host_vars'), { recursive: true });
  writeFileSync(join(both, '01-db'), `[db]\ndb2\ndb1\ndb0\n[db:vars]\nansible_host=127.0.0.1\n`);
  writeFileSync(join(both, '02-web.yml'), `web:\n  hosts:\n    web1: { ansible_host: 127.0.0.1 }\n    web2: { ansible_host: 127.0.0.1 }\n`);
  for (const name of ['db0', 'db1', 'db2', 'web1', 'web2']) writeFileSync(join(both, 'host_vars', `${name}.yml`), `distrun_port: ${port(name)}\n`);
  return [
    { shape: 'yaml', source: yamlDir + '/inventory.yml' },
    { shape: 'ini', source: ini },
    { shape: 'directory', source: both },
  ];
}

const PATTERNS = ['all', 'db[0]', 'db[0:1]', 'db[-1]', 'db[1:]', 'web', 'web:!edge', 'db:web1', '*1', '~(db|web)[12]', '!db', 'all:&web'];

/** Waits until each of these agents has logged a command after its mark. */
async function commandsLogged(names: string[], marks: Map<string, number>): Promise<boolean> {
  return waitFor(() =>
    names.every((name) =>
      agents
        .get(name)!
        .logs.slice(marks.get(name))
        .some((l) => l.msg === 'command'),
    ),
  );
}

ansibleTest('a run on an Ansible inventory reaches exactly the hosts Ansible selects, each on the port Ansible resolves', async (t) => {
  const dir = tempDir();
  for (const { shape, source } of shapes(dir)) {
    const dial = askAnsible<{ ok: boolean; dial: Record<string, { address: string; port: number | null }>; error?: string }>(python!, [
      { id: shape, sources: [source] },
    ])[shape]!;
    t.true(dial.ok, `${shape}: ${dial.error}`);
    // Every host the inventory names is reached on its own agent's port, as Ansible resolves it.
    for (const name of Object.keys(dial.dial)) t.is(dial.dial[name]!.port, port(name), `${shape}: ${name}'s distrun_port`);
    const oracle = spawnSync(python!, [PATTERN_ORACLE, source], { input: JSON.stringify(PATTERNS), encoding: 'utf8' });
    t.is(oracle.status, 0, oracle.stderr);
    const { results } = JSON.parse(oracle.stdout) as { results: Array<{ hosts?: string[] }> };
    for (const [i, pattern] of PATTERNS.entries()) {
      const expected = results[i]!.hosts!;
      if (shape === 'directory' && pattern.includes('edge')) continue; // no edge there (an unknown name is an error)
      const marks = new Map(NAMES.map((name) => [name, agents.get(name)!.logs.length]));
      const r = await distrun(['-i', source, '--pki', pki.dir, '-g', pattern, '--json', '--', 'true']);
      t.is(r.code, 0, `${shape} ${pattern}: ${r.stderr}`);
      const events = r.stdout
        .toString()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; host: string; port: number; status?: string });
      // Dialled: exactly Ansible's hosts, each at its own agent's port; every one answered ok.
      const dialled = events.filter((e) => e.type === 'start');
      t.deepEqual(dialled.map((e) => e.host).sort(), [...expected].sort(), `${shape} ${pattern}: ansible lists ${expected.join(',')}`);
      for (const e of dialled) t.is(e.port, port(e.host), `${shape} ${pattern}: ${e.host}`);
      t.true(events.filter((e) => e.type === 'exit').every((e) => e.status === 'ok'));
      // And the command really ran on those agents.
      t.true(await commandsLogged(expected, marks), `${shape} ${pattern}`);
      // And in Ansible's order, as `distrun hosts` lists them.
      const listed = await distrun(['hosts', '-i', source, '-g', pattern]);
      t.deepEqual(listedHosts(listed.stdout), expected, `${shape} ${pattern}`);
    }
  }
});
