// Ansible host patterns on their own (ansible-pattern.ts, python-regex.ts): what the port
// gives, and the errors distrun gives where Ansible would warn, guess or run locally. The
// differential test (ansible-patterns-differential.test.ts) compares the port with ansible-core.
import test from 'ava';
import { AnsibleInventoryData, viewOf, type AnsibleView } from '../src/cli/targeting/ansible-data.js';
import { evaluatePattern, orderPatterns, PatternError, selectAnsibleHosts, splitHostPattern } from '../src/cli/targeting/ansible-pattern.js';
import { fnmatchRegExp, pythonRegExp, RegexProblem } from '../src/cli/targeting/python-regex.js';
import { selectTargets } from '../src/cli/targeting/select.js';
import type { Inventory } from '../src/cli/targeting/model.js';
import { EmptySelectionError } from '../src/errors.js';
import { plainAnsibleYaml } from './helpers/ansible-plain-yaml.js';

function build(): AnsibleInventoryData {
  const data = new AnsibleInventoryData('inv.yml');
  for (const g of ['web', 'db', 'prod', 'empty', 'mail']) data.addGroup(g);
  for (const h of ['web1', 'web2', 'web3']) data.addHost(h, 'web');
  for (const h of ['db1', 'db2', 'db3']) data.addHost(h, 'db');
  data.addHost('mx1', 'mail');
  data.addHost('mail');
  data.addChild('prod', 'web');
  data.addHost('db1', 'prod');
  data.addHost('lone');
  data.reconcile();
  return data;
}
const view: AnsibleView = viewOf(build(), 'test');
const hosts = (pattern: string) => selectAnsibleHosts(view, pattern, 'inv.yml').map((h) => h.host);
const fails = (pattern: string, message: RegExp, kind?: PatternError['kind']) => {
  const err = (() => {
    try {
      hosts(pattern);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  if (!(err instanceof PatternError || err instanceof EmptySelectionError))
    return { ok: false, why: `no PatternError for ${pattern}: ${String(err)}` };
  if (!message.test(err.message)) return { ok: false, why: `${pattern}: ${err.message}` };
  if (kind && !(err instanceof PatternError && err.kind === kind)) return { ok: false, why: `${pattern}: not of kind ${kind}` };
  return { ok: true, why: '' };
};

test('split_host_pattern: commas win over colons; a single address stays whole', (t) => {
  t.deepEqual(splitHostPattern('a,b[1], c[2:3] , d'), ['a', 'b[1]', 'c[2:3]', 'd']);
  t.deepEqual(splitHostPattern('web:&prod:!web1'), ['web', '&prod', '!web1']);
  t.deepEqual(splitHostPattern('web:&prod,db'), ['web:&prod', 'db']);
  t.deepEqual(splitHostPattern('web[1:3]'), ['web[1:3]']);
  t.deepEqual(splitHostPattern('web1:22'), ['web1:22']);
  t.deepEqual(splitHostPattern('fe80::1'), ['fe80::1']);
  t.deepEqual(splitHostPattern('web db'), ['web', 'db']);
  t.deepEqual(splitHostPattern('web[0]:db[1:]'), ['web[0]', 'db[1:]']);
});

test('order_patterns: plain first, then &, then !; all when there is no plain one', (t) => {
  t.deepEqual(orderPatterns(['!a', '&b', 'c', '!d', 'e']), ['c', 'e', '&b', '!a', '!d']);
  t.deepEqual(orderPatterns(['!a']), ['all', '!a']);
  // Host mail is in no group's hosts: reconcile put the group mail, not the host, under
  // ungrouped (add_child looks for a group first), so `all` does not reach it, as in Ansible.
  t.deepEqual(hosts('!web'), ['lone', 'db1', 'db2', 'db3', 'mx1']);
  t.deepEqual(hosts('!prod:db'), ['db2', 'db3'], 'the exclusion applies after the union, wherever it is written');
});

test('subscripts: inclusive slices, negative indexes, open ends, an end of 0', (t) => {
  t.deepEqual(hosts('web[0]'), ['web1']);
  t.deepEqual(hosts('web[-1]'), ['web3']);
  t.deepEqual(hosts('web[0:1]'), ['web1', 'web2'], '[x:y] includes y');
  t.deepEqual(hosts('web[1:]'), ['web2', 'web3']);
  t.deepEqual(hosts('web[1:0]'), ['web2'], "Ansible's `if end:` reads an end of 0 as none");
  t.deepEqual(hosts('web[1:9]'), ['web2', 'web3']);
  t.deepEqual(hosts('prod[1:2]'), ['web1', 'web2'], "a group's own hosts come before its children's");
  t.deepEqual(hosts('web*[3]'), ['web1'], 'a glob matching group and hosts indexes their concatenation, duplicates included');
});

test('globs and regexes match group names and host names', (t) => {
  t.deepEqual(hosts('we?'), ['web1', 'web2', 'web3']);
  t.deepEqual(hosts('*3'), ['web3', 'db3']);
  t.deepEqual(hosts('~db[12]'), ['db1', 'db2'], 're.match: anchored at the start');
  t.deepEqual(hosts('~web(?:1|3),'), ['web1', 'web3'], "with a ',' the ':' stays in the regex");
  t.deepEqual(evaluatePattern(view, '~b1').hosts, [], 're.match, not re.search: ~b1 matches nothing');
});

test('errors: unknown names, empty results, out of range, implicit localhost, ambiguous names', (t) => {
  const cases: Array<[string, RegExp, PatternError['kind']?]> = [
    ['webz', /unknown group or host 'webz' \(Ansible would warn and ignore it; known groups: db, empty, mail, prod, web\)/, 'strict'],
    ['web:&nosuch', /unknown group or host 'nosuch' in 'web:&nosuch'/],
    ['webx[0:2]', /unknown group or host 'webx'.*brackets are positions in a group/],
    ['web:&prod,db', /unknown group or host 'web:&prod'.*split on ',' only/],
    ['~zz.*', /no group or host matches '~zz\.\*' \(Ansible would warn and ignore it/],
    ['web:&zz*', /no group or host matches 'zz\*' in 'web:&zz\*'/],
    ['web:&db', /^inv\.yml: the selection is empty: the intersection web:&db is empty$/],
    ['web:!web1:!web2:!web3', /^inv\.yml: the selection is empty: web:!web1:!web2:!web3 excluded every host$/],
    [
      '!web1:web:!web2:!web3:&prod',
      /^inv\.yml: the selection is empty: web:&prod:!web1:!web2:!web3 excluded every host \(in '!web1:web:!web2:!web3:&prod'\)$/,
    ],
    ['db:&prod:!db1', /the intersection|excluded every host/],
    ['empty', /'empty' selects no host: group empty has no hosts/],
    ['db[5]', /pattern db\[5\] is out of range: db has 3 hosts \(positions 0 to 2, or -1 to -3\)/, 'ansible'],
    ['db[-4]', /out of range/, 'ansible'],
    ['db[5:7]', /pattern db\[5:7\] is out of range: db has 3 hosts/, 'strict'],
    ['web:db[3:]', /pattern db\[3:\] is out of range/],
    ['db[0-1]', /Ansible reads \[x-y\] as positions x to y of db.*write db\[0:1\]/],
    ['localhost', /localhost is not in the inventory: Ansible would use its implicit localhost.*add localhost to the inventory or use -H localhost/],
    ['web:127.0.0.1', /127\.0\.0\.1 is not in the inventory/],
    [
      'all:!localhost',
      /'!localhost': localhost is not in the inventory; for Ansible it names its implicit localhost, which no other pattern selects, so it excludes nothing/,
    ],
    ['all:!mail', /mail is both a host and a group/],
    ['~(web', /invalid host pattern '~\(web'/, 'ansible'],
    [
      '~web(?:1|2)',
      /^inv\.yml: invalid host pattern '~web\(\?'.*split on ':'.*add a ',' to keep the ':' in the regex: '~web\(\?:1\|2\),'\)$/,
      'ansible',
    ],
    ['~(?P<n>web)', /a named group in a ~regex/, 'refused'],
    ['!', /empty host pattern/, 'ansible'],
  ];
  for (const [pattern, message, kind] of cases) {
    const { ok, why } = fails(pattern, message, kind);
    t.true(ok, why);
  }
});

test('a subscript on a group whose order Ansible takes from a Python set is refused', (t) => {
  const yaml = [
    'site:',
    '  children:',
    '    east: { children: { ew: { hosts: { e1: } }, ed: { hosts: { d1: } } } }',
    '    west: { children: { ww: { hosts: { w1: } } } }',
  ].join('\n');
  const deep = viewOf(plainAnsibleYaml(yaml, 'deep.yml'), 'test');
  t.false(deep.groups.find((g) => g.name === 'site')!.ordered);
  t.throws(() => selectAnsibleHosts(deep, 'site[0]'), {
    instanceOf: PatternError,
    message: /cannot take site\[0\]: the order of the hosts in group site comes from a Python set/,
  });
  t.deepEqual(
    selectAnsibleHosts(deep, 'east[1]').map((h) => h.host),
    ['d1'],
  );
  const all = evaluatePattern(deep, 'site');
  t.false(all.exact, 'the order of site is not claimed to be exact');
  t.deepEqual([...all.hosts].sort(), ['d1', 'e1', 'w1']);
});

test('what chose each host, for distrun hosts --explain', (t) => {
  t.deepEqual(selectAnsibleHosts(view, 'web[0]:db*:&prod'), [
    { host: 'web1', via: "group web by 'web[0]' in 'web[0]:db*:&prod'" },
    { host: 'db1', via: "group db by 'db*' in 'web[0]:db*:&prod'" },
  ]);
  t.deepEqual(selectAnsibleHosts(view, 'db2'), [{ host: 'db2', via: 'host db2' }]);
  t.deepEqual(selectAnsibleHosts(view, 'db'), [
    { host: 'db1', via: 'group db' },
    { host: 'db2', via: 'group db' },
    { host: 'db3', via: 'group db' },
  ]);
});

test('-g on an Ansible inventory: Ansible patterns, dialled at the inventory address and port; -H and -x are host names', (t) => {
  const inv: Inventory = {
    file: 'inv.yml',
    defaults: { port: 6789 },
    hosts: new Map([...view.hosts].map((h) => [h, h === 'web1' ? { address: '10.0.0.1', port: 7000 } : {}])),
    groups: new Map(),
    ansible: view,
  };
  const pick = (groups: string[], hostLists: string[] = [], exclude: string[] = []) =>
    selectTargets(inv, { groups, hosts: hostLists, exclude }).map((x) => `${x.name}=${x.address}:${x.port} ${x.via}`);
  t.deepEqual(pick(['web[0:1]']), ["web1=10.0.0.1:7000 -g: group web by 'web[0:1]'", "web2=web2:6789 -g: group web by 'web[0:1]'"]);
  t.deepEqual(
    pick(['!prod'], [], ['db2']),
    ["lone=lone:6789 -g: group all in '!prod'", "db3=db3:6789 -g: group all in '!prod'", "mx1=mx1:6789 -g: group all in '!prod'"],
    'a leading ! starts from all',
  );
  t.deepEqual(pick([], ['web1,other']), ['web1=10.0.0.1:7000 -H web1,other', 'other=other:6789 -H web1,other']);
  // Ansible names a host `web_:22` (a key its address parser does not split): -H and -x take it whole.
  const odd: Inventory = { ...inv, hosts: new Map([...inv.hosts, ['web_:22', {}]]), ansible: { ...view, hosts: [...view.hosts, 'web_:22'] } };
  const oddPick = (hostLists: string[], exclude: string[] = []) =>
    selectTargets(odd, { groups: [], hosts: hostLists, exclude }).map((x) => `${x.name}=${x.address}:${x.port}`);
  t.deepEqual(oddPick(['web_:22', 'db1']), ['web_:22=web_:22:6789', 'db1=db1:6789']);
  t.deepEqual(oddPick(['web_:22', 'db1'], ['web_:22']), ['db1=db1:6789']);
  t.throws(() => pick(['webz']), { instanceOf: PatternError, message: /inv\.yml: unknown group or host 'webz'/ });
  // An expression that selects nothing is an error only when the whole selection is empty.
  t.deepEqual(pick(['db[0]', 'empty']), ["db1=db1:6789 -g: group db by 'db[0]'"]);
  t.deepEqual(pick(['empty'], ['other']), ['other=other:6789 -H other']);
  t.throws(() => pick(['empty', 'web:&db']), {
    instanceOf: EmptySelectionError,
    message: /the selection is empty: 'empty' selects no host: group empty has no hosts/,
  });
  t.throws(() => pick(['webz', 'web']), { instanceOf: PatternError }, 'an unknown name is an error whatever else is selected');
});

test('fnmatch: classes, negation, ] first, reversed ranges dropped, no escaping', (t) => {
  const m = (pat: string, name: string) => fnmatchRegExp(pat).test(name);
  t.true(m('w[!x]b*', 'web1'));
  t.true(m('[]]x', ']x'));
  t.false(m('[z-a]', 'a'));
  t.true(m('[!z-a]', 'q'), 'a negated empty range is any character');
  t.true(m('a[', 'a['));
  t.true(m('\\*', '\\x'), 'a backslash is a literal');
  t.true(m('?', '𝔘'), '? is one character, not one UTF-16 unit');
  t.false(m('web', 'web1'), 'the whole name must match');
});

test('Python regexes: re.match, Python-only syntax translated, differing constructs refused', (t) => {
  const names = ['web1', 'db-2'];
  const m = (src: string, name: string) => pythonRegExp(src, names).test(name);
  t.true(m('we', 'web1'), 'anchored at the start only');
  t.false(m('eb', 'web1'));
  t.true(m('w.{,2}1', 'web1'), '{,n} is {0,n}');
  t.true(m('a{', 'a{'), 'a brace that is no quantifier is literal');
  t.true(m('[]a]', ']'));
  t.true(m('web1$', 'web1\n'), '$ matches before a final newline');
  t.false(m('web1\\Z', 'web1\n'));
  t.true(m('(?i)WEB', 'web1'));
  const problem = (src: string, kind: 'invalid' | 'unsupported', on = names) =>
    t.throws(() => pythonRegExp(src, on), { instanceOf: RegexProblem, message: kind === 'invalid' ? /./ : /Python and JavaScript differ/ }, src);
  problem('*', 'invalid');
  problem('a**', 'invalid');
  problem('\\q', 'invalid');
  problem('[z-a]', 'invalid');
  problem('a{4294967295}', 'invalid');
  problem('(?P<n>a)', 'unsupported');
  problem('(a)\\1', 'unsupported');
  problem('(?<=a)b', 'unsupported');
  problem('(?s).', 'unsupported');
  problem('a*+', 'unsupported');
  problem('\\w', 'unsupported', ['café']);
  t.true(pythonRegExp('caf.', ['café']).test('café'), 'without class escapes any names are fine');
});
