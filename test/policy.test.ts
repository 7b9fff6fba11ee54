import test from 'ava';
import { authorize, isClientAllowed, type PolicyRule } from '../src/agent/policy.js';
import { matchesWildcard as matchesPattern } from '../src/wildcard.js';

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
  t.true(isClientAllowed([], 'anyone'));
  t.true(isClientAllowed(['admin', 'ops-*'], 'ops-1'));
  t.false(isClientAllowed(['ops-*'], 'admin'));
});

const rules: PolicyRule[] = [
  { clients: ['admin'], commands: ['uptime', '/usr/bin/*'], shell: false },
  { clients: ['admin'], commands: ['systemctl'], shell: false, runAs: 'root' },
  { clients: ['deploy-*'], commands: [], shell: true, runAs: 'deploy' },
];

test('authorize: no policy allows everything', (t) => {
  t.like(authorize(undefined, 'x', ['rm', '-rf', '/'], { shell: false, envNames: [] }), { allowed: true, program: 'rm' });
});

test('authorize: first matching rule wins and names the run-as user', (t) => {
  t.like(authorize(rules, 'admin', ['uptime'], { shell: false, envNames: [] }), { allowed: true, runAs: undefined, rule: 0 });
  t.like(authorize(rules, 'admin', ['systemctl', 'restart', 'x'], { shell: false, envNames: [] }), { allowed: true, runAs: 'root', rule: 1 });
  t.like(authorize(rules, 'deploy-7', ['anything at all'], { shell: true, envNames: [] }), { allowed: true, runAs: 'deploy' });
});

test('authorize: --cwd and --env need the matching rule to allow them', (t) => {
  const withEnv: PolicyRule[] = [
    { clients: ['admin'], commands: ['make'], shell: false, cwd: true, env: ['MAKEFLAGS', 'CI_*'] },
    { clients: ['admin'], commands: ['uptime'], shell: false },
  ];
  t.like(authorize(withEnv, 'admin', ['make'], { shell: false, cwd: '/srv', envNames: ['MAKEFLAGS', 'CI_JOB'] }), { allowed: true, rule: 0 });
  t.like(authorize(withEnv, 'admin', ['make'], { shell: false, envNames: ['LD_PRELOAD'] }), {
    allowed: false,
    reason: '--env LD_PRELOAD is not allowed for this client and command',
  });
  t.like(authorize(withEnv, 'admin', ['uptime'], { shell: false, cwd: '/tmp', envNames: [] }), {
    allowed: false,
    reason: '--cwd is not allowed for this client and command',
  });
  t.like(authorize(undefined, 'anyone', ['x'], { shell: false, cwd: '/', envNames: ['ANY'] }), { allowed: true });
});

test('authorize: denials say why', (t) => {
  t.like(authorize(rules, 'admin', ['bash'], { shell: false, envNames: [] }), {
    allowed: false,
    reason: 'command "bash" is not allowed for this client',
  });
  t.like(authorize(rules, 'admin', ['echo hi'], { shell: true, envNames: [] }), {
    allowed: false,
    reason: 'shell commands are not allowed for this client',
  });
  t.like(authorize(rules, 'deploy-7', ['ls'], { shell: false, envNames: [] }), { allowed: false });
  t.like(authorize(rules, 'nobody', ['uptime'], { shell: false, envNames: [] }), { allowed: false, reason: 'no policy rule for client nobody' });
  t.like(authorize(rules, 'admin', ['/usr/bin/../../bin/sh'], { shell: false, envNames: [] }), {
    allowed: false,
    reason: 'command "/bin/sh" is not allowed for this client',
  });
  t.like(authorize(rules, 'admin', ['/usr/bin//df'], { shell: false, envNames: [] }), { allowed: true, program: '/usr/bin/df' });
});
