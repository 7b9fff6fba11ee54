// The rules between a client's CMD and the spawn (src/agent/command-admission.ts), as
// pure decisions: their order, the run-as user, the program executed, the time limit.
import test from 'ava';
import { admitCommand, commandLengthFailure, type AdmissionRuntime, type CommandAsked } from '../src/agent/command-admission.js';
import { loadAgentConfig, type AgentConfig } from '../src/agent/config.js';
import type { LocalUser } from '../src/agent/local-users.js';
import { ProtocolError } from '../src/errors.js';
import { defaultSessionOptions, encodeCommand, type SessionOptions } from '../src/protocol/messages.js';

const root: LocalUser = { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh' };
const deploy: LocalUser = { name: 'deploy', uid: 1001, gid: 1001, home: '/home/deploy', shell: '/bin/sh' };
const nobody: LocalUser = { name: 'nobody', uid: 65534, gid: 65534, home: '/', shell: '/bin/false' };

function runtime(config: Partial<AgentConfig> = {}, agentUser: LocalUser = root): AdmissionRuntime {
  return {
    config: { ...loadAgentConfig(undefined, { ca: 'ca.crt', cert: 'agent.crt', key: 'agent.key' }), ...config },
    agentUser,
    users: new Map([
      ['deploy', deploy],
      ['nobody', nobody],
    ]),
  };
}

function asked(argv: string[], options: Partial<SessionOptions> = {}, more: Partial<CommandAsked> = {}): CommandAsked {
  return { command: encodeCommand(argv).subarray(7), options: { ...defaultSessionOptions(), ...options }, version: 4, authenticated: true, ...more };
}

const admin = { name: 'admin' };

test('authentication comes first: an unauthenticated client learns nothing about its CMD', (t) => {
  const garbage = { ...asked(['true']), command: Buffer.from([0, 0, 0, 9, 0x41]), authenticated: false };
  t.like(admitCommand(garbage, admin, runtime()), { admitted: false, failure: { code: 'E_AUTH' } });
  t.throws(() => admitCommand({ ...garbage, authenticated: true }, admin, runtime()), { instanceOf: ProtocolError, message: /overruns/ });
});

test('version rules come before policy, refused variables before the rules that would allow them', (t) => {
  const denyAll = runtime({ policy: [] });
  t.like(admitCommand(asked(['true'], { pty: { cols: 80, rows: 24 } }, { version: 2 }), admin, denyAll), {
    admitted: false,
    failure: { code: 'E_PROTOCOL', reason: 'options pty and term need protocol version 3' },
    denied: undefined,
  });
  t.like(admitCommand(asked(['true'], { term: 'xterm' }), admin, denyAll), {
    admitted: false,
    failure: { code: 'E_PROTOCOL', reason: 'option term needs the pty option' },
  });
  const anyEnv = runtime({ policy: [{ clients: ['*'], commands: ['*'], shell: false, env: ['*'] }] });
  const refused = admitCommand(asked(['true'], { env: { LD_PRELOAD: 'x.so' } }), admin, anyEnv);
  t.like(refused, { admitted: false, failure: { code: 'E_DENIED' }, denied: { argv: ['true'], envNames: ['LD_PRELOAD'] } });
  t.like(admitCommand(asked(['true'], { env: { MAKEFLAGS: '-j2' } }), admin, anyEnv), { admitted: true, spec: { env: { MAKEFLAGS: '-j2' } } });
});

test('a policy denial carries the request for the denied record', (t) => {
  const onlyUptime = runtime({ policy: [{ clients: ['admin'], commands: ['uptime'], shell: false }] });
  t.deepEqual(admitCommand(asked(['df', '-h'], { cwd: '/srv' }), admin, onlyUptime), {
    admitted: false,
    failure: { code: 'E_DENIED', reason: 'command "df" is not allowed for this client' },
    denied: { argv: ['df', '-h'], shell: false, cwd: '/srv', envNames: [], pty: false },
  });
});

test('run-as: the rule, else the agent default, else the agent itself; only when the agent is root', (t) => {
  const rules = runtime({
    runAs: 'nobody',
    policy: [
      { clients: ['admin'], commands: ['make'], shell: false, runAs: 'deploy' },
      { clients: ['admin'], commands: ['*'], shell: false },
    ],
  });
  t.like(admitCommand(asked(['make']), admin, rules), { spec: { user: deploy, switchUser: true }, audit: { runAs: 'deploy' } });
  t.like(admitCommand(asked(['ls']), admin, rules), { spec: { user: nobody, switchUser: true }, audit: { runAs: 'nobody' } });
  t.like(admitCommand(asked(['ls']), admin, runtime()), { spec: { user: root, switchUser: false }, audit: { runAs: 'root' } });
  t.like(admitCommand(asked(['make']), admin, { ...rules, agentUser: nobody }), {
    spec: { user: nobody, switchUser: false },
    audit: { runAs: 'nobody' },
  });
});

test('the program executed is the normalized path policy matched; a shell script runs as sent', (t) => {
  const admitted = admitCommand(asked(['/usr/lib/../bin/echo', 'a']), admin, runtime());
  t.like(admitted, { admitted: true, spec: { argv: ['/usr/bin/echo', 'a'], clientName: 'admin' }, audit: { argv: ['/usr/lib/../bin/echo', 'a'] } });
  t.like(admitCommand(asked(['echo /a/../b', 'x'], { shell: true }), admin, runtime()), { spec: { argv: ['echo /a/../b', 'x'], shell: true } });
});

test("time limit: the client's, capped by maxCommandSeconds; a terminal defaults to xterm", (t) => {
  const timeoutOf = (timeoutMs: number, maxCommandSeconds: number): unknown => {
    const admission = admitCommand(asked(['true'], { timeoutMs }), admin, runtime({ maxCommandSeconds }));
    return admission.admitted ? admission.spec.timeoutMs : admission.failure;
  };
  t.is(timeoutOf(0, 0), 0);
  t.is(timeoutOf(0, 10), 10_000);
  t.is(timeoutOf(5000, 10), 5000);
  t.is(timeoutOf(20_000, 10), 10_000);
  t.is(timeoutOf(20_000, 0), 20_000);
  t.like(admitCommand(asked(['top'], { pty: { cols: 80, rows: 24 } }), admin, runtime()), {
    spec: { pty: { cols: 80, rows: 24, term: 'xterm' }, killGraceMs: 5000 },
    audit: { pty: true },
  });
});

test('argv size: judged on the CMD header alone', (t) => {
  t.is(commandLengthFailure(100, 100), undefined);
  t.deepEqual(commandLengthFailure(101, 100), { code: 'E_LIMIT', reason: "command of 101 bytes exceeds the agent's limit of 100" });
});
