// Attacks on the token (AUTH) and checks that no secret ever reaches a log.
import test from 'ava';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeCommand, encodeFrame, encodeVersionOffer } from '../src/protocol/messages.js';
import {
  AGENT,
  cleanupAll,
  distrun,
  failureIn,
  makePki,
  rawExchange,
  run,
  startAgent,
  tempDir,
  writeAgentConfig,
  type Pki,
  type RunningAgent,
} from './helpers/fleet.js';
import { assertStillServing } from './helpers/serving.js';

const TOKEN = 'correct-horse-battery-staple-7f3a9c';
let pki: Pki;
let agent: RunningAgent;
let tokenFile: string;
let audit: string;

test.before(async () => {
  pki = await makePki(['agent1']);
  const dir = tempDir();
  tokenFile = join(dir, 'token');
  audit = join(dir, 'audit.jsonl');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  agent = await startAgent(pki, 'agent1', { config: { tokenFile, auditLog: audit } });
});
test.after.always(cleanupAll);

const target = () => ['-H', `127.0.0.1:${agent.port}`];
const withToken = (value: string) => {
  const file = join(tempDir(), 'client-token');
  writeFileSync(file, value);
  return ['--token-file', file];
};

const hello = encodeVersionOffer({ versions: [1], software: 'attacker' });

test('no token: refused before anything runs', async (t) => {
  const r = await distrun([...target(), '--pki', pki.dir, 'echo', 'x']);
  t.is(r.code, 255);
  t.regex(r.stderr, /this agent requires an authentication token/);
  await assertStillServing(t, agent, pki.dir, ['--token-file', tokenFile]);
});

test('a wrong token is refused', async (t) => {
  const r = await distrun([...target(), '--pki', pki.dir, ...withToken('guess\n'), 'echo', 'x']);
  t.is(r.code, 255);
  t.regex(r.stderr, /authentication token rejected/);
  t.is(r.stdout.toString(), '');
  await assertStillServing(t, agent, pki.dir, ['--token-file', tokenFile]);
});

test('a token that is a prefix of the right one is refused', async (t) => {
  const r = await distrun([...target(), '--pki', pki.dir, ...withToken(TOKEN.slice(0, -1)), 'echo', 'x']);
  t.is(r.code, 255);
  t.regex(r.stderr, /authentication token rejected/);
});

test('an empty AUTH message is refused', async (t) => {
  const failure = failureIn(await rawExchange(agent.port, pki.dir, [hello, encodeFrame('AUT', Buffer.alloc(0)), encodeCommand(['echo', 'x'])]));
  t.is(failure?.code, 'E_AUTH');
  t.regex(failure!.reason, /token rejected/);
  const emptyFile = await distrun([...target(), '--pki', pki.dir, ...withToken('\n'), 'echo', 'x']);
  t.is(emptyFile.code, 255);
  t.regex(emptyFile.stderr, /token file .* is empty/);
});

test('an over-long token is refused by the pre-authentication frame limit', async (t) => {
  const failure = failureIn(await rawExchange(agent.port, pki.dir, [hello, encodeFrame('AUT', Buffer.alloc(100_000, 0x41))]));
  t.is(failure?.code, 'E_FRAME_TOO_LARGE');
  t.regex(failure!.reason, /limit of 4096 bytes/);
  await assertStillServing(t, agent, pki.dir, ['--token-file', tokenFile]);
});

test('a large command is refused until the token has been checked', async (t) => {
  const failure = failureIn(await rawExchange(agent.port, pki.dir, [hello, encodeCommand(['echo', 'x'.repeat(10_000)])]));
  t.is(failure?.code, 'E_FRAME_TOO_LARGE');
});

test('the right token works; no secret appears in the log or the audit trail', async (t) => {
  const secretInput = 'stdin-secret-5d1e0b';
  const r = await distrun([...target(), '--pki', pki.dir, '-t', 'cat'], { input: secretInput, env: { DISTRUN_TOKEN_FILE: tokenFile } });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), `127.0.0.1: ${secretInput}\n`);
  await distrun([...target(), '--pki', pki.dir, ...withToken('wrong-token-4c2d'), 'true']);
  const keyBody = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))[1]!;
  const secrets = [TOKEN, 'wrong-token-4c2d', secretInput, keyBody(join(pki.agent('agent1'), 'agent.key')), keyBody(join(pki.dir, 'client.key'))];
  const logText = agent.rawLog();
  const auditText = readFileSync(audit, 'utf8');
  t.true(logText.length > 0 && auditText.length > 0);
  for (const secret of secrets) {
    t.false(logText.includes(secret), 'log is free of secrets');
    t.false(auditText.includes(secret), 'audit is free of secrets');
  }
});

test('the agent refuses to start with a token file or key readable by others, naming the file', async (t) => {
  const loose = join(tempDir(), 'loose-token');
  writeFileSync(loose, 'x');
  chmodSync(loose, 0o644);
  const config = writeAgentConfig(pki, 'agent1', { tokenFile: loose });
  const r = await run(AGENT, ['--config', config]);
  t.is(r.code, 78);
  t.regex(r.stderr, new RegExp(`token file ${loose} is readable by group or others \\(mode 644\\); run: chmod 600`));
  const looseKey = join(tempDir(), 'agent.key');
  writeFileSync(looseKey, readFileSync(join(pki.agent('agent1'), 'agent.key')));
  chmodSync(looseKey, 0o640);
  const r2 = await run(AGENT, ['--config', writeAgentConfig(pki, 'agent1', { key: looseKey })]);
  t.is(r2.code, 78);
  t.regex(r2.stderr, /private key .*agent\.key is readable by group or others \(mode 640\)/);
  t.notRegex(r2.stderr, /\n\s+at /);
});
