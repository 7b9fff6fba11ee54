import test from 'ava';
import { authorize, certificateNames, isClientAllowed, matchesPattern, type PolicyRule } from '../src/agent/policy.js';

test('patterns: * and ? wildcards, anchored, everything else literal', (t) => {
  t.true(matchesPattern('ops-*', 'ops-bot'));
  t.false(matchesPattern('ops-*', 'x-ops-bot'));
  t.true(matchesPattern('web?', 'web1'));
  t.false(matchesPattern('web?', 'web12'));
  t.true(matchesPattern('/usr/bin/*', '/usr/bin/df'));
  t.false(matchesPattern('a.b', 'axb'), 'a dot is literal');
  t.false(matchesPattern('(x)', 'x'));
  t.true(matchesPattern('*', ''));
});

test('allowedClients: empty means any certificate of the CA', (t) => {
  t.true(isClientAllowed([], ['anyone']));
  t.true(isClientAllowed(['ops-*'], ['admin', 'ops-1']));
  t.false(isClientAllowed(['ops-*'], ['admin']));
});

test('certificate names: DNS SANs, else the CN', (t) => {
  t.deepEqual(certificateNames('DNS:a, IP Address:1.2.3.4, DNS:b', 'cn'), ['a', 'b']);
  t.deepEqual(certificateNames(undefined, 'cn'), ['cn']);
  t.deepEqual(certificateNames('IP Address:1.2.3.4', undefined), []);
});

const rules: PolicyRule[] = [
  { clients: ['admin'], commands: ['uptime', '/usr/bin/*'], shell: false },
  { clients: ['admin'], commands: ['systemctl'], shell: false, runAs: 'root' },
  { clients: ['deploy-*'], commands: [], shell: true, runAs: 'deploy' },
];

test('authorize: no policy allows everything', (t) => {
  t.like(authorize(undefined, ['x'], ['rm', '-rf', '/'], false), { allowed: true, program: 'rm' });
});

test('authorize: first matching rule wins and names the run-as user', (t) => {
  t.like(authorize(rules, ['admin'], ['uptime'], false), { allowed: true, runAs: undefined, rule: 0 });
  t.like(authorize(rules, ['admin'], ['systemctl', 'restart', 'x'], false), { allowed: true, runAs: 'root', rule: 1 });
  t.like(authorize(rules, ['deploy-7'], ['anything at all'], true), { allowed: true, runAs: 'deploy' });
});

test('authorize: denials say why', (t) => {
  t.like(authorize(rules, ['admin'], ['bash'], false), { allowed: false, reason: 'command "bash" is not allowed for this client' });
  t.like(authorize(rules, ['admin'], ['echo hi'], true), { allowed: false, reason: 'shell commands are not allowed for this client' });
  t.like(authorize(rules, ['deploy-7'], ['ls'], false), { allowed: false });
  t.like(authorize(rules, ['nobody'], ['uptime'], false), { allowed: false, reason: 'no policy rule for client nobody' });
  t.like(authorize(rules, ['admin'], ['/usr/bin/../../bin/sh'], false), { allowed: false, reason: 'command "/bin/sh" is not allowed for this client' });
  t.like(authorize(rules, ['admin'], ['/usr/bin//df'], false), { allowed: true, program: '/usr/bin/df' });
});
