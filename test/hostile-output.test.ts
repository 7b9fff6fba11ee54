// Output as an attack on the operator's terminal: a host's output, and what an agent
// says about itself, must not set the title, write the clipboard, move the cursor or
// rewrite a line (and so forge another host's line). Real agents (and an agent that
// lies, with a genuine certificate), the real distrun, real terminals: script(1) for the
// bytes a terminal gets, tmux for what it then shows.
import test from 'ava';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeExit, encodeFailure, encodePong, encodeVersionChoice } from '../src/protocol/messages.js';
import { DISTRUN, cleanupAll, distrun, loopbackFleet, tempDir, distrunEnv, testCacheHome, type Pki, type RunningAgent } from './helpers/fleet.js';
import { startHostileAgent } from './helpers/hostile-agent.js';
import { assertStillServing } from './helpers/serving.js';
import { TmuxServer, hasTmux } from './helpers/tmux.js';

let pki: Pki;
let agent: RunningAgent;
let inventory: string;
/** A host's output with every kind of attack in it, one per line; `cat`ted byte for byte. */
let attackFile: string;

const ATTACK = Buffer.concat([
  Buffer.from('ok\x1b]0;TITLE\x07\r\x1b[2Kweb2: deploy OK\n', 'latin1'),
  Buffer.from('clip\x1b]52;c;cm0gLXJmIH4=\x07\n', 'latin1'),
  Buffer.from('dcs\x1bP+q544e\x1b\\\n', 'latin1'),
  Buffer.from('up\x1b[1A\x1b[2K\bx\n', 'latin1'),
  Buffer.from([0x38, 0x62, 0x69, 0x74, 0x9b, 0x32, 0x4a, 0x0a]), // "8bit" + an 8-bit CSI
  Buffer.from('c1\u009b2J bidi\u202eKO\n', 'utf8'),
]);
/** ATTACK as a terminal must get it (no colours: NO_COLOR). */
const SHOWN = [
  'ok^[]0;TITLE^G^M^[[2Kweb2: deploy OK',
  'clip^[]52;c;cm0gLXJmIH4=^G',
  'dcs^[P+q544e^[\\',
  'up^[[1A^[[2K^Hx',
  '8bit\\x9b2J',
  'c1<U+009B>2J bidi<U+202E>KO',
];
/**
 * SHOWN under a host's prefix: where a line had a carriage return (^M above), the prefix
 * is written again after it (prefixed-line.ts), so the row still starts with it.
 */
const prefixedShown = (host: string) => SHOWN.map((line) => `${host}: ${line.replace('^M', `\r${host}: `)}`);

test.before(async () => {
  ({ pki, agent, inventory } = await loopbackFleet((port) => `hosts:\n  web[1-2]: {address: 127.0.0.1, port: ${port}}\n`));
  attackFile = join(tempDir(), 'attack');
  writeFileSync(attackFile, ATTACK);
});
test.after.always(cleanupAll);

const on = (hosts: string, ...rest: string[]) => ['-i', inventory, '--pki', pki.dir, '-H', hosts, ...rest];
const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
const distrunLine = (args: string[]) => [process.execPath, DISTRUN, ...args].map(quote).join(' ');

/** distrun under script(1): stdout and stderr are a terminal; the bytes the terminal got. */
function onTerminal(args: string[], env: NodeJS.ProcessEnv = { NO_COLOR: '1' }): Promise<{ status: number | null; screen: Buffer }> {
  const child = spawn('script', ['-qec', distrunLine(args), '/dev/null'], {
    // stdin stays open and silent: at the end of its input script(1) would type into the
    // terminal (a NUL that --tty forwards to the hosts, whose terminals echo it as ^@).
    env: distrunEnv(env),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const screen: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => screen.push(c));
  return new Promise((resolve) =>
    child.on('close', (status) => {
      child.stdin.destroy();
      resolve({ status, screen: Buffer.concat(screen) });
    }),
  );
}

/** What no terminal may get from a host: a CR that is not before LF or a real prefix, BEL, an 8-bit CSI, or ESC other than SGR. */
function terminalAttacks(screen: Buffer): string[] {
  const text = screen.toString('latin1');
  const found: string[] = [];
  // CR CR LF is harmless (nothing is printed between the CRs): under --tty the host's
  // terminal sends CR LF and the local one, raw as Node makes it, still turns LF into CR LF.
  if (/\r(?!\r*\n|web[12]: )/.test(text)) found.push('a carriage return');
  if (text.includes('\x07')) found.push('BEL');
  if (/[\x80-\x9f]/.test(screen.toString('utf8'))) found.push('a C1 control');
  if (text.includes('\x9b')) found.push('a lone 0x9b');
  if (/\x1b(?!\[[0-9;:]*m)/.test(text)) found.push('an escape sequence other than SGR');
  return found;
}

const lines = (screen: Buffer) =>
  screen
    .toString('utf8')
    .split('\r\n')
    .filter((l) => l !== '');

test('on a terminal a host cannot set the title, write the clipboard, move the cursor or forge a line: controls are shown', async (t) => {
  // Output on stdout and on stderr, from two hosts at once.
  const r = await onTerminal(on('web1,web2', '-q', 'sh', '-c', `cat ${attackFile}; cat ${attackFile} >&2`));
  t.is(r.status, 0, r.screen.toString());
  t.deepEqual(terminalAttacks(r.screen), [], JSON.stringify(r.screen.toString('latin1')));
  const shown = lines(r.screen);
  for (const host of ['web1', 'web2']) {
    for (const line of prefixedShown(host)) t.is(shown.filter((l) => l === line).length, 2, `${line} (stdout and stderr)`);
  }
  t.true(
    shown.every((l) => l.split('\r').every((row) => /^web[12]: /.test(row))),
    'every line, and every return to its start, begins with a real prefix',
  );
  // -N on several hosts: no prefixes, but still a terminal's output.
  const unprefixed = await onTerminal(on('web1,web2', '-q', '-N', 'cat', attackFile));
  t.deepEqual(terminalAttacks(unprefixed.screen), []);
  t.is(lines(unprefixed.screen).filter((l) => l === SHOWN[0]).length, 2);
  // --tty --broadcast: the hosts' terminals, prefixed, are neutralised the same way.
  const broadcast = await onTerminal(on('web1,web2', '--tty', '--broadcast', 'cat', attackFile));
  t.is(broadcast.status, 0, broadcast.screen.toString());
  t.deepEqual(terminalAttacks(broadcast.screen), [], JSON.stringify(broadcast.screen.toString('latin1')));
  const broadcastLines = broadcast.screen
    .toString('utf8')
    .split(/\r*\n/)
    .filter((l) => l !== '');
  const expected = ['web1', 'web2'].flatMap(prefixedShown);
  t.deepEqual([...broadcastLines].sort(), expected.sort(), 'every line of both hosts, each under its own prefix, and nothing else');
  await assertStillServing(t, agent, pki.dir);
});

test('--tty --broadcast: a carriage return from a host (a progress bar, a CR LF) writes its prefix again, never over it', async (t) => {
  const r = await onTerminal(on('web1,web2', '--tty', '--broadcast', 'sh', '-c', `printf '12%%\\r50%%\\r100%%\\n'; printf 'exit\\r\\n'`));
  t.is(r.status, 0, r.screen.toString());
  const text = r.screen.toString('latin1');
  t.deepEqual(terminalAttacks(r.screen), [], JSON.stringify(text));
  for (const host of ['web1', 'web2']) {
    // The pty turns each LF into CR LF (so the program's CR LF arrives as CR CR LF): one line end each.
    t.true(text.includes(`${host}: 12%\r${host}: 50%\r${host}: 100%\r\r\n`), JSON.stringify(text));
    t.regex(text, new RegExp(`(^|\n)${host}: (\\^@)?exit\r\r\n`), JSON.stringify(text));
  }
  t.false(text.includes('^M'), 'no CR is shown as ^M');
  // The same on a plain prefixed run, and into a pipe the bytes are left as they are.
  const plain = await onTerminal(on('web1', '-q', 'sh', '-c', `printf 'a\\rb\\n'`));
  t.true(plain.screen.toString('latin1').includes('web1: a\rweb1: b\r\n'), JSON.stringify(plain.screen.toString('latin1')));
  const piped = await distrun(on('web1', 'sh', '-c', `printf 'a\\rb\\n'`));
  t.is(piped.stdout.toString('latin1'), 'web1: a\rb\n');
});

test("on a colour terminal: the host's colours stay and end with their line; shown controls are in reverse video", async (t) => {
  const file = join(tempDir(), 'colours');
  writeFileSync(file, 'a \x1b[31mred\x1b[8m concealed\nb\x07\n');
  const r = await onTerminal(on('web1', '-q', 'cat', file), { TERM: 'xterm' });
  t.is(r.status, 0);
  const text = r.screen.toString('latin1');
  t.true(text.includes('\x1b[36mweb1: \x1b[0ma \x1b[31mred\x1b[8m concealed\x1b[0m\r\n'), JSON.stringify(text));
  t.true(text.includes('\x1b[36mweb1: \x1b[0mb\x1b[7m^G\x1b[27m\r\n'), JSON.stringify(text));
  await assertStillServing(t, agent, pki.dir);
});

(hasTmux ? test.serial : test.serial.skip)(
  'in a real terminal (tmux): title and clipboard unchanged, the forged line shows under its real host; --raw-control-chars lets it through',
  async (t) => {
    const tmux = TmuxServer.start('distrun-hostile-output', [['set-clipboard', 'on']]);
    const runIn = (session: string, extra: string[]) =>
      tmux.open(
        session,
        `env XDG_CACHE_HOME=${quote(testCacheHome())} NO_COLOR=1 ${distrunLine(on('web1', '-q', ...extra, 'cat', attackFile))}; echo distrun-exit=$?; exec sleep 600`,
      );
    runIn('safe', []);
    t.true(await tmux.shows('safe', /^distrun-exit=0$/m), tmux.screen('safe'));
    const screen = tmux.screen('safe').split('\n');
    // The CR returns to the start of the row, and the prefix written after it covers what was there.
    t.true(screen.includes('web1: ^[[2Kweb2: deploy OK'), screen.join('\n'));
    t.false(
      screen.some((l) => l.startsWith('web2:')),
      "no line shows as web2's",
    );
    t.not(tmux.paneTitle('safe'), 'TITLE');
    t.is(tmux.buffers(), '', 'nothing reached the clipboard');
    // The same bytes passed raw do what the issue says: this is what the defence stops.
    runIn('raw', ['--raw-control-chars']);
    t.true(await tmux.shows('raw', /^distrun-exit=0$/m), tmux.screen('raw'));
    t.true(tmux.screen('raw').split('\n').includes('web2: deploy OK'), tmux.screen('raw'));
    t.is(tmux.paneTitle('raw'), 'TITLE');
    t.regex(tmux.buffers(), /rm -rf ~/, 'OSC 52 wrote the clipboard');
    await assertStillServing(t, agent, pki.dir);
  },
);

test('byte-exact on a terminal: --raw-control-chars, -N to one host, --json and --outdir', async (t) => {
  // The terminal's own output processing turns LF into CR LF; nothing else changes.
  const asTerminalShows = (bytes: Buffer) => Buffer.from(bytes.toString('latin1').replace(/\n/g, '\r\n'), 'latin1');
  const raw = await onTerminal(on('web1', '-q', '--raw-control-chars', 'cat', attackFile));
  const prefixed = Buffer.from(
    ATTACK.toString('latin1')
      .split('\n')
      .slice(0, -1)
      .map((l) => `web1: ${l}\n`)
      .join(''),
    'latin1',
  );
  t.true(raw.screen.equals(asTerminalShows(prefixed)), JSON.stringify(raw.screen.toString('latin1')));
  const single = await onTerminal(on('web1', '-q', '-N', 'cat', attackFile));
  t.true(single.screen.equals(asTerminalShows(ATTACK)), JSON.stringify(single.screen.toString('latin1')));

  const json = await onTerminal(on('web1', '--json', 'cat', attackFile));
  const events = lines(json.screen)
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, string>);
  const data = Buffer.concat(events.filter((e) => e.type === 'stdout').map((e) => Buffer.from(e.data!, e.encoding === 'base64' ? 'base64' : 'utf8')));
  t.true(data.equals(ATTACK), 'the JSON events carry the bytes');

  const outdir = join(tempDir(), 'out');
  const both = await onTerminal(on('web1', '-q', '--outdir', outdir, 'cat', attackFile));
  t.true(readFileSync(join(outdir, 'web1.out')).equals(ATTACK), 'the file has the bytes');
  t.true(lines(both.screen).includes(prefixedShown('web1')[0]!), 'while the terminal shows them neutralised');
  // Into a pipe, prefixed output is the bytes as well.
  const piped = await distrun(on('web1', 'cat', attackFile));
  t.true(piped.stdout.equals(prefixed));
  await assertStillServing(t, agent, pki.dir);
});

test('--gather on a terminal is neutralised like the line output', async (t) => {
  // -q: on a slow machine the progress line would show, and its erase (CR, ESC [K) with it.
  const r = await onTerminal(on('web1,web2', '-q', '-b', 'cat', attackFile));
  t.is(r.status, 0);
  t.deepEqual(terminalAttacks(r.screen), []);
  const shown = lines(r.screen);
  t.true(shown.includes('web[1-2] (2)'), shown.join('\n'));
  for (const line of SHOWN) t.true(shown.includes(line), line);
  await assertStillServing(t, agent, pki.dir);
});

// ---- what an agent says about itself --------------------------------------------

const EVIL_REASON = 'denied\x1b]0;PWNED\x07\x1b[2K\rdistrun: web2: all fine\n  exit code 0: web[1-9]\u009b';
const SHOWN_REASON = 'denied^[]0;PWNED^G^[[2K^Mdistrun: web2: all fine^J  exit code 0: web[1-9]<U+009B>';
const EVIL_VERSION = 'agent/6.6\x1b]52;c;cm0gLXJmIH4=\x07\x1b[1A';
const SHOWN_VERSION = 'agent/6.6^[]52;c;cm0gLXJmIH4=^G^[[1A';

const version = (software: string) => encodeVersionChoice({ version: 1, software, keepaliveSeconds: 0 });

test("an agent's failure reason is shown as one visible line: on a terminal, into a pipe, in --json and in the run record", async (t) => {
  const liar = await startHostileAgent(pki, 'agent1', [version(EVIL_VERSION), encodeFailure({ code: 'E_DENIED', reason: EVIL_REASON })]);
  const target = ['--pki', pki.dir, '-H', `127.0.0.1:${liar}`];
  const piped = await distrun([...target, 'true']);
  t.is(piped.code, 255);
  t.true(piped.stderr.split('\n').includes(`distrun: 127.0.0.1:${liar}: ${SHOWN_REASON}`), piped.stderr);
  t.true(piped.stderr.split('\n').includes(`  ${SHOWN_REASON}: 127.0.0.1`), 'the summary folds host names');
  t.false(/[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f]/.test(piped.stderr), JSON.stringify(piped.stderr));

  const terminal = await onTerminal([...target, '-q', 'true']); // -q: no progress line (and its erase) on a slow machine
  t.deepEqual(terminalAttacks(terminal.screen), []);
  t.true(lines(terminal.screen).includes(`distrun: 127.0.0.1:${liar}: ${SHOWN_REASON}`));

  const json = await distrun([...target, '--json', 'true']);
  const error = json.stdout
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((e) => e.type === 'error');
  t.is(error?.message, SHOWN_REASON);

  // (Other tests of this file record their runs meanwhile: find this agent's.)
  const runs = join(testCacheHome(), 'distrun', 'runs');
  // Records only: a run saving meanwhile has a half-written `.ID.json.HEX.tmp` there (renamed when complete).
  const records = readdirSync(runs)
    .filter((f) => !f.startsWith('.'))
    .map((f) => JSON.parse(readFileSync(join(runs, f), 'utf8')) as { hosts: Array<{ port: number; reason: string }> });
  const reasons = records
    .flatMap((r) => r.hosts)
    .filter((h) => h.port === liar)
    .map((h) => h.reason);
  t.deepEqual([...new Set(reasons)], [SHOWN_REASON]);
  await assertStillServing(t, agent, pki.dir);
});

test("an agent's version string is shown visibly: distrun ping (text and --json) and --json exit events", async (t) => {
  const pinged = await startHostileAgent(pki, 'agent1', [version(EVIL_VERSION), encodePong({ time: Date.now() })]);
  const ping = await distrun(['ping', '--pki', pki.dir, '-H', `127.0.0.1:${pinged}`]);
  t.is(ping.code, 0, ping.stderr);
  t.true(ping.stdout.toString().includes(`  ${SHOWN_VERSION}  protocol 1  `), ping.stdout.toString());
  t.false(ping.stdout.toString().includes('\x1b'));
  const pingOnTerminal = await onTerminal(['ping', '--pki', pki.dir, '-H', `127.0.0.1:${pinged}`]);
  t.deepEqual(terminalAttacks(pingOnTerminal.screen), []);
  const pingJson = await distrun(['ping', '--json', '--pki', pki.dir, '-H', `127.0.0.1:${pinged}`]);
  t.is((JSON.parse(pingJson.stdout.toString()) as { agent: string }).agent, SHOWN_VERSION);

  const ran = await startHostileAgent(pki, 'agent1', [version(EVIL_VERSION), encodeExit({ code: 0, timedOut: false })]);
  const json = await distrun(['--pki', pki.dir, '-H', `127.0.0.1:${ran}`, '--json', 'true']);
  const exit = json.stdout
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((e) => e.type === 'exit');
  t.is(exit?.agent, SHOWN_VERSION);
  const failing = await startHostileAgent(pki, 'agent1', [version('v'), encodeFailure({ code: 'E_DENIED', reason: EVIL_REASON })]);
  const pingFailure = await distrun(['ping', '--pki', pki.dir, '-H', `127.0.0.1:${failing}`]);
  t.true(pingFailure.stderr.split('\n').includes(`distrun: 127.0.0.1:${failing}: ${SHOWN_REASON}`), pingFailure.stderr);
  await assertStillServing(t, agent, pki.dir);
});
