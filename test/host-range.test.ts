import test from 'ava';
import fc from 'fast-check';
import { UsageError } from '../src/errors.js';
import { expandHostList, expandHostPattern, foldHosts, splitHostList } from '../src/cli/targeting/host-range.js';

test('ranges expand with padding kept, in order', (t) => {
  t.deepEqual(expandHostPattern('web[01-03]'), ['web01', 'web02', 'web03']);
  t.deepEqual(expandHostPattern('web[1-3,7,10-12].example.com'), [
    'web1.example.com',
    'web2.example.com',
    'web3.example.com',
    'web7.example.com',
    'web10.example.com',
    'web11.example.com',
    'web12.example.com',
  ]);
  t.deepEqual(expandHostPattern('web[8-10]'), ['web8', 'web9', 'web10']);
  t.deepEqual(expandHostPattern('web[008-010]'), ['web008', 'web009', 'web010']);
  t.deepEqual(expandHostPattern('plain.example.com'), ['plain.example.com']);
});

test('several ranges in one name expand as a product', (t) => {
  t.deepEqual(expandHostPattern('rack[1-2]-node[01-02]'), ['rack1-node01', 'rack1-node02', 'rack2-node01', 'rack2-node02']);
});

test("Ansible's start:end:step ranges", (t) => {
  t.deepEqual(expandHostPattern('www[01:09:4]'), ['www01', 'www05', 'www09']);
  t.deepEqual(expandHostPattern('db[1:3]'), ['db1', 'db2', 'db3']);
});

test('brackets that are not ranges (IPv6) are left alone', (t) => {
  t.deepEqual(expandHostPattern('[::1]'), ['[::1]']);
  t.deepEqual(expandHostPattern('[2001:db8::1]:7000'), ['[2001:db8::1]:7000']);
});

test('lists split on commas outside brackets', (t) => {
  t.deepEqual(splitHostList('a,web[1,3],b'), ['a', 'web[1,3]', 'b']);
  t.deepEqual(expandHostList('web[1-2], web2 ,db1'), ['web1', 'web2', 'db1']);
});

test('bad ranges are clear errors', (t) => {
  t.throws(() => expandHostPattern('web[3-1]'), { instanceOf: UsageError, message: /goes backwards/ });
  t.throws(() => expandHostPattern('web[1-3'), { instanceOf: UsageError, message: /unclosed/ });
  t.throws(() => expandHostPattern('web[1-9999999]'), { instanceOf: UsageError, message: /more than 100000 names/ });
  t.throws(() => expandHostPattern('a[1-1000]b[1-1000]'), { instanceOf: UsageError, message: /more than 100000 names/ });
  t.throws(() => expandHostPattern('web[1:5:0]'), { instanceOf: UsageError, message: /step/ });
  t.throws(() => expandHostPattern('web[1-5/0]'), { instanceOf: UsageError, message: /step/ });
  t.throws(() => expandHostPattern('web[5/2]'), { instanceOf: UsageError, message: /a step needs a range/ });
  t.throws(() => expandHostPattern('web[1,,2]'), { instanceOf: UsageError, message: /empty range/ });
  t.throws(() => expandHostPattern('web[3-]'), { instanceOf: UsageError, message: /invalid range '3-'/ });
  t.throws(() => expandHostPattern('web[-5]'), { instanceOf: UsageError, message: /invalid range '-5'/ });
  t.throws(() => expandHostPattern('web[1-5:2]'), { instanceOf: UsageError, message: /invalid range/ });
});

test("ClusterShell's steps and spaces", (t) => {
  t.deepEqual(expandHostPattern('n[1-10/3]'), ['n1', 'n4', 'n7', 'n10']);
  t.deepEqual(expandHostPattern('n[01-09/4,12]'), ['n01', 'n05', 'n09', 'n12']);
  t.deepEqual(expandHostPattern('n[ 1 - 3 ]'), ['n1', 'n2', 'n3']);
  t.deepEqual(expandHostPattern('n[0-00]'), ['n0'], 'an end of zeros is not padded, as ClusterShell reads it');
  t.deepEqual(expandHostPattern('n[12345678901234567890-12345678901234567891]'), ['n12345678901234567890', 'n12345678901234567891']);
});

test('mixed widths are refused as ClusterShell and Ansible refuse them, with the fix', (t) => {
  t.throws(() => expandHostPattern('n[01-100]'), { instanceOf: UsageError, message: /mixes widths.*write 01-99,100$/ });
  t.throws(() => expandHostPattern('n[001-1500]'), { instanceOf: UsageError, message: /write 001-999,1000-1500$/ });
  t.throws(() => expandHostPattern('n[01:100]'), { instanceOf: UsageError, message: /mixes widths/ });
  t.throws(() => expandHostPattern('n[1-010]'), { instanceOf: UsageError, message: /\(ClusterShell refuses this too\); write 001-010 or 1-10$/ });
  t.throws(() => expandHostPattern('n[010-9]'), { instanceOf: UsageError, message: /goes backwards/ });
  t.throws(() => expandHostPattern('n[00-0]'), { instanceOf: UsageError, message: /mixes widths/ });
  // Ansible pads only from the start: 1:010 is 1…10 there.
  t.deepEqual(expandHostPattern('n[9:010]'), ['n9', 'n10']);
});

test('folding: like clush -b host lists', (t) => {
  t.is(foldHosts(['web01', 'web02', 'web03', 'web05', 'web07', 'web06']), 'web[01-03,05-07]');
  t.is(foldHosts(['web7', 'db1', 'web8', 'web9', 'web10']), 'db1,web[7-10]');
  t.is(foldHosts(['web09', 'web10', 'web1']), 'web[1,09-10]');
  t.is(foldHosts(['a.example.com', 'b.example.com']), 'a.example.com,b.example.com');
  t.is(foldHosts(['n1.dc2', 'n2.dc2', 'n1.dc3']), 'n1.dc[2-3],n2.dc2', 'as nodeset -f');
  t.is(foldHosts(['solo7']), 'solo7');
});

test('folding on every digit group, as nodeset -f', (t) => {
  const grid = ['rack2-node02', 'rack1-node01', 'rack1-node02', 'rack2-node01', 'rack1-node03', 'rack2-node03', 'rack1-node04', 'rack2-node04'];
  t.is(foldHosts(grid), 'rack[1-2]-node[01-04]');
  t.is(foldHosts([...grid, 'rack3-node01']), 'rack[1-2]-node[01-04],rack3-node01');
  t.is(foldHosts(['10.0.0.1', '10.0.0.2', '10.0.1.7']), '10.0.0.[1-2],10.0.1.7');
  t.is(foldHosts(['web1:7001', 'web2:7001']), 'web[1-2]:7001', 'labels with a port fold like any other name');
});

test('mixed padding is grouped by width, and folds only to what ClusterShell and Ansible read', (t) => {
  const names = [...expandHostPattern('node[001-010]'), ...expandHostPattern('node[1-10]')];
  t.is(foldHosts(names), 'node[1-10,001-010]');
  t.is(foldHosts(expandHostPattern('n[01-99,100]')), 'n[01-99,100]');
  t.is(foldHosts(['n9', 'n08', 'n10']), 'n[9,08,10]', "ClusterShell's order: by length, then as text");
  t.is(foldHosts(['n0', 'n00', 'n000', 'n1']), 'n[0-1,00,000]');
});

test('names ClusterShell cannot read back are written as they are', (t) => {
  t.is(foldHosts(['[::1]', '::1', '::2', 'a b1', 'a b2']), '::1,::2,[::1],a b1,a b2');
});

test('fold then expand gives back the same set of names (property)', (t) => {
  const name = fc
    .tuple(fc.constantFrom('web', 'db', 'n', 'rack1-node'), fc.nat(120), fc.constantFrom(0, 2, 3), fc.constantFrom('', '.example.com'))
    .map(([prefix, n, width, suffix]) => `${prefix}${String(n).padStart(width, '0')}${suffix}`);
  fc.assert(
    fc.property(fc.array(name, { maxLength: 40 }), (names) => {
      const folded = foldHosts(names);
      const back = folded === '' ? [] : expandHostList(folded);
      return back.length === new Set(names).size && back.every((n) => names.includes(n));
    }),
    { numRuns: 500 },
  );
  t.pass();
});
