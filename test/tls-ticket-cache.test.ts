// The TLS ticket cache's file: what a save writes, how it merges with a run that saved
// in between, and what it keeps when nothing else wrote (read once, not again).
import test from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TlsTicketCache } from '../src/cli/execution/tls-ticket-cache.js';

const CLIENT = Buffer.from('client certificate');
const CA = Buffer.from('fleet CA');
const agent = (serial: string) => ({ serial, notBefore: 0, notAfter: 8e15 });
const ticket = (text: string) => ({ ticket: Buffer.from(text), agent: agent(text) });

function cacheDir(t: { teardown(fn: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), 'distrun-ticket-cache-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'tls');
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

// One cache file per client identity: the only one in the directory.
const fileOf = (dir: string) => join(dir, readdirSync(dir).filter((name) => name.startsWith('sessions-'))[0]);

test('a save writes every ticket as a JSON line, 0600, and the next run resumes from it', (t) => {
  const dir = cacheDir(t);
  const first = TlsTicketCache.open(dir, CLIENT, CA);
  for (let i = 0; i < 3000; i += 1) first.remember(`10.0.${i >> 8}.${i & 255}`, 6789, ticket(`t${i}`));
  first.save();
  const file = fileOf(dir);
  t.is(statSync(file).mode & 0o777, 0o600);
  t.regex(file, /\.jsonl$/);
  // A header, then one ticket a line.
  const lines = readFileSync(file, 'utf8').split('\n');
  t.is(lines.pop(), '');
  t.deepEqual(JSON.parse(lines[0]!), { version: 3 });
  t.is(lines.length, 3001);
  // KEY, the time it was saved, then the ticket: a run reads only the keys of agents it does not contact.
  const [keyText, savedAt, entryText, ...rest] = lines[1]!.split('\t');
  t.deepEqual(rest, []);
  t.is(JSON.parse(keyText!), '10.0.0.0 6789');
  t.true(Math.abs(Number(savedAt) - Date.now()) < 3_600_000);
  const entry = JSON.parse(entryText!);
  t.deepEqual(Object.keys(entry).sort(), ['agent', 'ticket']);
  t.is(Buffer.from(entry.ticket, 'base64').toString(), 't0');
  const next = TlsTicketCache.open(dir, CLIENT, CA);
  t.deepEqual(next.ticketFor('10.0.11.183', 6789), ticket(`t${(11 << 8) + 183}`));
  t.is(next.ticketFor('10.0.11.183', 22), undefined);
});

test('a save keeps what the file held when nobody else wrote it, and merges what another run saved since', (t) => {
  const dir = cacheDir(t);
  const seed = TlsTicketCache.open(dir, CLIENT, CA);
  seed.remember('a', 6789, ticket('a-old'));
  seed.remember('b', 6789, ticket('b-old'));
  seed.save(Date.now());

  // Two runs start from the same file; one saves before the other.
  const early = TlsTicketCache.open(dir, CLIENT, CA);
  const late = TlsTicketCache.open(dir, CLIENT, CA);
  late.remember('c', 6789, ticket('c-late'));
  early.remember('b', 6789, ticket('b-early'));
  early.forget('a', 6789);
  early.save();
  late.save();

  const after = TlsTicketCache.open(dir, CLIENT, CA);
  t.is(after.ticketFor('a', 6789), undefined, 'the early run forgot a, and the late run did not write it back');
  t.deepEqual(after.ticketFor('b', 6789), ticket('b-early'), 'the early run renewed b; the late run did not undo it');
  t.deepEqual(after.ticketFor('c', 6789), ticket('c-late'));

  // Nothing else wrote since this run read the file: what it read is kept.
  const alone = TlsTicketCache.open(dir, CLIENT, CA);
  alone.remember('d', 6789, ticket('d'));
  alone.save();
  const last = TlsTicketCache.open(dir, CLIENT, CA);
  for (const name of ['b', 'c', 'd']) t.truthy(last.ticketFor(name, 6789), name);
});

test('a damaged key, a file cut short, or a file of format 2 read as an empty cache; a damaged ticket loses only itself', (t) => {
  const dir = cacheDir(t);
  const cache = TlsTicketCache.open(dir, CLIENT, CA);
  cache.remember('a', 6789, ticket('a'));
  cache.save();
  const file = fileOf(dir);
  const good = readFileSync(file, 'utf8');
  writeFileSync(file, `${good}"b 6789"\tgarbage\t{}\n`);
  t.is(TlsTicketCache.open(dir, CLIENT, CA).ticketFor('a', 6789), undefined, 'a damaged key or time: nothing is trusted');
  writeFileSync(file, `${good}"b 6789"\t${Date.now()}\t{"ticket": garbage\n`);
  const partly = TlsTicketCache.open(dir, CLIENT, CA);
  t.deepEqual(partly.ticketFor('a', 6789), ticket('a'), 'a damaged ticket loses only itself');
  t.is(partly.ticketFor('b', 6789), undefined);
  writeFileSync(file, good.slice(0, -1));
  t.is(TlsTicketCache.open(dir, CLIENT, CA).ticketFor('a', 6789), undefined, 'a file cut short');

  const legacy = file.replace(/\.jsonl$/, '.json');
  rmSync(file);
  writeFileSync(legacy, JSON.stringify({ version: 2, sessions: { 'a 6789': { ticket: 'YQ==', savedAt: Date.now(), agent: agent('a') } } }), {
    mode: 0o600,
  });
  const next = TlsTicketCache.open(dir, CLIENT, CA);
  t.is(next.ticketFor('a', 6789), undefined);
  next.remember('b', 6789, ticket('b'));
  next.save();
  t.deepEqual(readdirSync(dir), [file.slice(dir.length + 1)], 'the format-2 file is gone');
});
