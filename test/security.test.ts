// Refusals: wrong CA, no certificate, tokens, and protocol violations from a
// client holding a valid certificate. Each ends only its own session.
import test from 'ava';
import { readFileSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { FrameDecoder, type Frame } from '../src/protocol/frame-decoder.js';
import { encodeCommand, encodeFrame, encodeVersionOffer } from '../src/protocol/messages.js';
import {
  cleanupAll, connectRaw, distrun, makePki, startAgent, tempDir, type Pki, type RunningAgent,
} from './helpers/fleet.js';

let pki: Pki;
let agent: RunningAgent;
let tokenAgent: RunningAgent;
const TOKEN = 'correct-horse-battery-staple';

test.before(async () => {
  pki = await makePki(['agent1']);
  const tokenFile = join(tempDir(), 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  [agent, tokenAgent] = await Promise.all([
    startAgent(pki, 'agent1'),
    startAgent(pki, 'agent1', { config: { tokenFile } }),
  ]);
});

test.after.always(cleanupAll);

const target = (a: RunningAgent) => ['-H', `127.0.0.1:${a.port}`];

/** A raw protocol client with the admin identity: sends frames, returns what the agent sent. */
function rawSession(port: number, frames: Buffer[]): Promise<{ frames: Frame[]; error?: string }> {
  return new Promise((resolve) => {
    const socket = connectRaw(port, pki.dir);
    const decoder = new FrameDecoder();
    const got: Frame[] = [];
    let error: string | undefined;
    socket.on('data', (c: Buffer) => got.push(...decoder.push(c)));
    socket.on('error', (err: NodeJS.ErrnoException) => { error = err.code ?? err.message; });
    socket.on('close', () => resolve({ frames: got, error }));
    socket.write(Buffer.concat(frames));
  });
}

const hello = encodeVersionOffer({ versions: [1], software: 'test' });
const failureOf = (frames: Frame[]) => {
  const fai = frames.find((f) => f.token === 'FAI');
  return fai ? (JSON.parse(fai.payload.toString()) as { code: string; reason: string }) : undefined;
};

test('a client certificate from another CA is refused by the agent', async (t) => {
  const other = await makePki([]);
  // Trust our agent's CA so that the refusal comes from the agent, not from our own check.
  const mixed = join(tempDir(), 'mixed');
  mkdirSync(mixed);
  copyFileSync(join(pki.dir, 'ca.crt'), join(mixed, 'ca.crt'));
  copyFileSync(join(other.dir, 'client.crt'), join(mixed, 'client.crt'));
  copyFileSync(join(other.dir, 'client.key'), join(mixed, 'client.key'));
  const r = await distrun([...target(agent), '--pki', mixed, 'true']);
  t.is(r.code, 255);
  t.regex(r.stderr, /does not trust our client certificate|rejected our client certificate|may not accept our certificate/);
  t.true(agent.logs.some((l) => l.msg === 'tls handshake failed'));
});

test('an agent certificate from another CA is refused by distrun', async (t) => {
  const other = await makePki([]);
  const r = await distrun([...target(agent), '--pki', other.dir, 'true']);
  t.is(r.code, 255);
  t.regex(r.stderr, /agent certificate is not signed by our CA|chains to a CA we do not trust/);
});

test('the agent certificate must name the address dialled', async (t) => {
  // The bundle names 127.0.0.1 only; dialling "localhost" must fail verification.
  const r = await distrun(['-H', `localhost:${agent.port}`, '--pki', pki.dir, 'true']);
  t.is(r.code, 255);
  t.regex(r.stderr, /does not name the address we dialled/);
});

test('a client without a certificate is refused at the handshake', async (t) => {
  const result = await new Promise<string>((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: agent.port, ca: readFileSync(join(pki.dir, 'ca.crt')) });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    socket.on('close', () => resolve('closed'));
    socket.write(hello);
  });
  t.regex(result, /CERTIFICATE_REQUIRED|ECONNRESET|closed/);
  const empty = tempDir();
  const r = await distrun([...target(agent), '--pki', empty, 'true']);
  t.is(r.code, 255);
  t.regex(r.stderr, /certs init/);
});

test('a certificate for agent use does not work as a client certificate', async (t) => {
  const asClient = join(tempDir(), 'as-client');
  mkdirSync(asClient);
  copyFileSync(join(pki.dir, 'ca.crt'), join(asClient, 'ca.crt'));
  copyFileSync(join(pki.agent('agent1'), 'agent.crt'), join(asClient, 'client.crt'));
  copyFileSync(join(pki.agent('agent1'), 'agent.key'), join(asClient, 'client.key'));
  const r = await distrun([...target(agent), '--pki', asClient, 'true']);
  t.is(r.code, 255);
  t.regex(r.stderr, /certificate/);
});

test('token: missing and wrong tokens are refused, the right one works, and it is never logged', async (t) => {
  const dir = tempDir();
  const wrong = join(dir, 'wrong');
  const right = join(dir, 'right');
  writeFileSync(wrong, 'guess\n');
  writeFileSync(right, `${TOKEN}\n`);
  const missing = await distrun([...target(tokenAgent), '--pki', pki.dir, 'echo', 'x']);
  t.is(missing.code, 255);
  t.regex(missing.stderr, /requires an authentication token/);
  const bad = await distrun([...target(tokenAgent), '--pki', pki.dir, '--token-file', wrong, 'echo', 'x']);
  t.is(bad.code, 255);
  t.regex(bad.stderr, /authentication token rejected/);
  t.is(bad.stdout.toString(), '');
  const good = await distrun([...target(tokenAgent), '--pki', pki.dir, 'echo', 'x'], { env: { DISTRUN_TOKEN_FILE: right } });
  t.is(good.code, 0, good.stderr);
  t.is(good.stdout.toString(), `127.0.0.1: x\n`);
  t.false(tokenAgent.rawLog().includes(TOKEN));
  t.false(tokenAgent.rawLog().includes('guess'));
});

const violations: Array<[string, Buffer[], RegExp]> = [
  ['CMD twice', [hello, encodeCommand(['sleep', '5']), encodeCommand(['true'])], /CMD is not allowed after CMD/],
  ['INP before CMD', [hello, encodeFrame('INP', 'x')], /INP is not allowed before CMD/],
  ['an agent-only token from the client', [hello, encodeFrame('OUT', 'x')], /agent-only/],
  ['an unknown token', [hello, encodeFrame('ZZZ', 'x')], /unknown message ZZZ/],
  ['CMD before VER', [encodeCommand(['true'])], /expected VER first/],
  ['INP without the stdin option', [hello, encodeCommand(['sleep', '5']), encodeFrame('INP', 'x')], /INP without the stdin option/],
  ['a malformed token', [hello, Buffer.from('a\x00b\x00\x00\x00\x00')], /malformed frame token/],
];

for (const [name, frames, reason] of violations) {
  test(`protocol violation ends only that session: ${name}`, async (t) => {
    const { frames: got } = await rawSession(agent.port, frames);
    const failure = failureOf(got);
    t.truthy(failure, `got ${got.map((f) => f.token).join(',')}`);
    t.is(failure!.code, 'E_PROTOCOL');
    t.regex(failure!.reason, reason);
    const after = await distrun([...target(agent), '--pki', pki.dir, 'echo', 'still-serving']);
    t.is(after.stdout.toString(), '127.0.0.1: still-serving\n');
  });
}

test('an oversized frame is refused from its header', async (t) => {
  const header = Buffer.from('CMD\x7f\xff\xff\xff', 'latin1');
  const { frames } = await rawSession(agent.port, [hello, header]);
  t.is(failureOf(frames)?.code, 'E_FRAME_TOO_LARGE');
});

test('a protocol version mismatch is a clear error, not a hang', async (t) => {
  const { frames } = await rawSession(agent.port, [encodeVersionOffer({ versions: [99], software: 'future' })]);
  const failure = failureOf(frames);
  t.is(failure?.code, 'E_VERSION');
  t.regex(failure!.reason, /client speaks protocol 99; this agent speaks 1/);
});

test('violations are logged by the agent', async (t) => {
  await rawSession(agent.port, [hello, encodeFrame('ZZZ', '')]);
  t.true(agent.logs.some((l) => l.msg === 'session refused' && l.code === 'E_PROTOCOL'));
});
