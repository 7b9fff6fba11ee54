// The messages people read first: counts, file errors in words, option values checked
// before the PKI, host labels with the port dialled, and a silent listener told apart
// from a host that cannot be reached.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { hostLabel } from '../src/cli/targeting/host-label.js';
import { count } from '../src/cli/plural.js';
import { describeSystemError } from '../src/system-errors.js';
import { cleanupAll, distrun, makePki, startAgent, tempDir, type Pki } from './helpers/fleet.js';

let pki: Pki;
test.before(async () => {
  pki = await makePki(['agent1']);
});
test.after.always(cleanupAll);

const systemError = (code: string, message = `${code}: some text, open 'x'`) => Object.assign(new Error(message), { code });

test('counts are singular for one', (t) => {
  t.is(count(1, 'host'), '1 host');
  t.is(count(0, 'host'), '0 hosts');
  t.is(count(2, 'running command'), '2 running commands');
});

test('system errors are said in words', (t) => {
  t.is(describeSystemError(systemError('ENOENT')), 'no such file or directory');
  t.is(describeSystemError(systemError('EACCES')), 'permission denied');
  t.is(describeSystemError(systemError('EISDIR')), 'is a directory');
  t.is(describeSystemError(systemError('ENOTDIR')), 'not a directory');
  t.is(describeSystemError(systemError('ELOOP')), 'too many levels of symbolic links');
  t.is(describeSystemError(systemError('EMFILE')), 'too many open files');
  // A code not in the table: Node's own words, else the code.
  t.is(describeSystemError(systemError('ENOSR', "ENOSR: out of streams resources, open 'x'")), 'out of streams resources');
  t.is(describeSystemError(systemError('EWHATEVER', 'odd')), 'EWHATEVER');
  t.is(describeSystemError(new Error('plain')), 'plain');
});

test('a host is labelled with the address and port dialled when its name does not say them', (t) => {
  t.is(hostLabel({ name: 'web1', address: 'web1', port: 6789 }), 'web1');
  t.is(hostLabel({ name: '127.0.3.1', address: '127.0.3.1', port: 6790 }), '127.0.3.1:6790');
  t.is(hostLabel({ name: 'web1', address: '10.0.0.5', port: 6789 }), 'web1 (10.0.0.5:6789)');
  t.is(hostLabel({ name: 'v6', address: '2001:db8::5', port: 7000 }), 'v6 ([2001:db8::5]:7000)');
});

test('file errors of the CLI say what went wrong in words', async (t) => {
  const dir = tempDir();
  const missing = await distrun(['-H', 'h1', '--pki', pki.dir, '--script', join(dir, 'nonexist.sh')]);
  t.is(missing.code, 255);
  t.is(missing.stderr, `distrun: cannot read script ${join(dir, 'nonexist.sh')}: no such file or directory\n`);
  const directory = await distrun(['-H', 'h1', '--pki', pki.dir, '--script', dir]);
  t.is(directory.stderr, `distrun: cannot read script ${dir}: is a directory\n`);
  const token = await distrun(['-H', '127.0.0.1:1', '--pki', pki.dir, '--token-file', dir, 'true']);
  t.is(token.stderr, `distrun: cannot read token file ${dir}: is a directory\n`);
  // A directory is an Ansible inventory directory: an empty one is said to be so.
  const inventory = await distrun(['hosts', '-i', dir, '-g', 'all']);
  t.is(inventory.stderr, `distrun: ${dir}: this inventory directory has no inventory file\n`);
  const unreadable = await distrun(['hosts', '-i', join(dir, 'nonexist.ini'), '-g', 'all']);
  t.is(unreadable.stderr, `distrun: ${join(dir, 'nonexist.ini')}: no such file (from -i)\n`);
});

test('option values are checked before the PKI is loaded', async (t) => {
  const noPki = ['-H', 'h1', '--pki', join(tempDir(), 'none')];
  for (const [args, message] of [
    [['--fanout', 'abc'], /^distrun: option '-f, --fanout <n>' argument 'abc' is invalid/],
    [['--timeout', '-1'], /^distrun: option '--timeout <sec>' argument '-1' is invalid/],
    [['--batch', 'abc'], /^distrun: --batch takes a whole number/],
    [['--max-fail', '0'], /^distrun: --max-fail takes a whole number/],
    [['--env', '1=2'], /^distrun: --env takes NAME=value/],
  ] as const) {
    const r = await distrun([...noPki, ...args, 'true']);
    t.is(r.code, 255);
    t.regex(r.stderr, message);
    t.notRegex(r.stderr, /client identity/);
  }
  // With good values, the missing PKI is what is reported.
  const good = await distrun([...noPki, '--batch', '1', 'true']);
  t.regex(good.stderr, /no usable client identity/);
});

test('errors about a host name the port dialled; the summary says "1 host"', async (t) => {
  const inventory = join(tempDir(), 'hosts.yaml');
  writeFileSync(inventory, 'hosts:\n  web1: { address: 127.0.0.1, port: 1 }\n');
  const byAddress = await distrun(['-H', '127.0.0.1:1', '--pki', pki.dir, 'true']);
  t.is(byAddress.code, 255);
  t.is(
    byAddress.stderr,
    [
      'distrun: 127.0.0.1:1: connection refused (is distrunner-agent running?)',
      'distrun: 1 host: 1 unreachable',
      '  connection refused (is distrunner-agent running?): 127.0.0.1',
      '',
    ].join('\n'),
  );
  const byName = await distrun(['-i', inventory, '-g', 'web1', '--pki', pki.dir, 'true']);
  t.regex(byName.stderr, /^distrun: web1 \(127\.0\.0\.1:1\): connection refused/);
  const ping = await distrun(['ping', '-i', inventory, '-g', 'web1', '--pki', pki.dir]);
  t.regex(ping.stderr, /^distrun: web1 \(127\.0\.0\.1:1\): connection refused/);
});

test('a listener that accepts TCP but never answers TLS is a handshake timeout, not a connect timeout', async (t) => {
  const sockets: Socket[] = [];
  const silent = createServer((socket) => {
    socket.on('error', () => {});
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const { port } = silent.address() as AddressInfo;
  const r = await distrun(['-H', `127.0.0.1:${port}`, '--pki', pki.dir, '--connect-timeout', '0.5', 'true']);
  t.is(r.code, 255);
  t.regex(
    r.stderr,
    new RegExp(
      `^distrun: 127\\.0\\.0\\.1:${port}: TCP connected but the TLS handshake did not complete within 0\\.5 s ` +
        `\\(is the service on port ${port} a DistRunner agent\\?\\)$`,
      'm',
    ),
  );
  t.notRegex(r.stderr, /connect timed out/);
  const json = await distrun(['-H', `127.0.0.1:${port}`, '--pki', pki.dir, '--connect-timeout', '0.5', '--json', 'true']);
  const events = json.stdout
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.like(
    events.find((e) => e.type === 'error'),
    { code: 'E_HANDSHAKE_TIMEOUT', status: 'error' },
  );

  // Nothing listening: the TCP connection itself fails, and says so.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const free = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const refused = await distrun(['-H', `127.0.0.1:${free}`, '--pki', pki.dir, '--connect-timeout', '0.5', '--json', 'true']);
  const failure = refused.stdout
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((e) => e.type === 'unreachable');
  t.like(failure, { code: 'E_CONNECT', message: 'connection refused (is distrunner-agent running?)' });
});

test('ping -q prints only the hosts that failed and the summary', async (t) => {
  const agent = await startAgent(pki, 'agent1');
  const args = ['ping', '-H', `127.0.0.1:${agent.port},127.0.0.1:1`, '--pki', pki.dir];
  const full = await distrun(args);
  t.is(full.code, 255);
  // One address, two ports: each host is named with its port.
  t.is(full.stdout.toString().split('\n')[0]!.split(': ok  rtt ')[0], `127.0.0.1:${agent.port}`);
  const quiet = await distrun([...args, '-q']);
  t.is(quiet.code, 255);
  t.is(quiet.stdout.toString(), '');
  t.is(quiet.stderr, full.stderr);
  t.regex(quiet.stderr, /^distrun: 127\.0\.0\.1:1: connection refused/m);
  t.regex(quiet.stderr, /^distrun: 2 hosts: 1 ok, 1 unreachable$/m);
});
