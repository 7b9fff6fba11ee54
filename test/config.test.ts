import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../src/errors.js';
import { listenAddresses, loadAgentConfig, readConfigFile } from '../src/agent/config.js';
import { cleanupAll, tempDir } from './helpers/fleet.js';

test.after.always(cleanupAll);
const example = new URL('../../config/agent.yaml', import.meta.url).pathname;

test('the example configuration is valid, and so is every commented-out setting in it', (t) => {
  t.is(readConfigFile(example).port, 6789);
  // Uncomment every "# key: value" line and the policy block under it.
  const uncommented = readFileSync(example, 'utf8')
    .split('\n')
    .map((line) => (/^# (\w+:( |$)| +(\w+:( |$)|- ))/.test(line) ? line.slice(2) : line))
    .join('\n');
  const file = join(tempDir(), 'agent.yaml');
  writeFileSync(file, uncommented);
  const config = readConfigFile(file);
  t.is(config.crl, '/etc/distrunner/crl.pem');
  t.deepEqual(config.allowedClients, ['admin', 'ops-*']);
  t.is(config.policy?.length, 2);
  t.deepEqual(config.policy?.[1], {
    clients: ['monitor-*'],
    commands: ['uptime', '/usr/bin/df', '/usr/bin/systemctl'],
    shell: false,
    runAs: undefined,
    cwd: false,
    env: [],
    pty: false,
  });
  t.deepEqual(config.policy?.[0], { clients: ['admin'], commands: ['*'], shell: true, runAs: 'root', cwd: true, env: ['*'], pty: true });
  t.is(config.runAs, 'distrunner');
});

const bad: Array<[string, RegExp]> = [
  ['prot: 1\n', /agent\.yaml: unknown setting 'prot'/],
  ['port: 70000\n', /agent\.yaml: port must be an integer from 0 to 65535, got 70000/],
  ['policy: [{ clients: [a], commands: [b], sudo: true }]\n', /policy rule 1: unknown key 'sudo'/],
  ['policy: [{ clients: a }]\n', /policy rule 1: clients must be a list of non-empty strings/],
  ['runAs: "root; rm"\n', /runAs must be a user name/],
  ['port: [\n', /agent\.yaml: line \d+, column \d+: invalid YAML: [^\n]*[^:]$/],
  ['host: [127.0.0.1, 127.0.0.1]\n', /host must be an address or a list of different addresses/],
  ['host: "127.0.0.1,,10.0.0.1"\n', /host must be an address or a list of different addresses/],
  ['tlsSessionSeconds: 700000\n', /tlsSessionSeconds must be an integer from 0 to 604800/],
  ['broker: nats1:4222\n', /agent\.yaml: broker must be a mapping \(urls, names, ca, cert, key\)/],
  ['broker: { url: nats1 }\n', /broker has an unknown key 'url'/],
  ['broker: { urls: [] }\n', /broker urls must name at least one broker/],
  [
    'broker: { urls: "nats://user:pw@nats1:4222" }\n',
    /broker urls: broker address "nats:\/\/user:pw@nats1:4222" must be host\[:port\] \(credentials come from the certificate/,
  ],
  ['broker: { urls: "nats1:99999" }\n', /broker urls: invalid broker address "nats1:99999"/],
  ['broker: { urls: [nats1], names: ["web 1"] }\n', /broker names must be a list of plain names/],
  ['listen: "no"\n', /listen must be true or false/],
];
for (const [text, message] of bad) {
  test(`configuration errors name the file and the setting: ${JSON.stringify(text.trim())}`, (t) => {
    const file = join(tempDir(), 'agent.yaml');
    writeFileSync(file, text);
    t.throws(() => readConfigFile(file), { instanceOf: ConfigError, message });
  });
}

test('host takes one address, a comma-separated list or a YAML list', (t) => {
  const dir = tempDir();
  const file = join(dir, 'agent.yaml');
  for (const [text, expected] of [
    ['host: 10.0.0.5', '10.0.0.5'],
    ['host: "10.0.0.5, 127.0.0.1"', '10.0.0.5,127.0.0.1'],
    ['host: [10.0.0.5, "::1"]', '10.0.0.5,::1'],
  ]) {
    writeFileSync(file, `${text}\n`);
    t.is(readConfigFile(file).host, expected);
  }
  t.deepEqual(listenAddresses({ host: '10.0.0.5,::1' }), ['10.0.0.5', '::1']);
});

test('flags override the file; relative paths are relative to the file', (t) => {
  const dir = tempDir();
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, 'ca: ca.crt\ncert: a.crt\nkey: a.key\nport: 7000\n');
  const config = loadAgentConfig(file, { port: 7100, key: '/x/other.key' });
  t.is(config.port, 7100);
  t.is(config.ca, join(dir, 'ca.crt'));
  t.is(config.key, '/x/other.key');
  t.throws(() => loadAgentConfig(undefined, {}), { instanceOf: ConfigError, message: /no ca file configured/ });
});

test('broker: URLs as a list or comma separated, default port 4222, paths relative to the file; --broker and --no-listen', (t) => {
  const dir = tempDir();
  const file = join(dir, 'agent.yaml');
  writeFileSync(
    file,
    'ca: ca.crt\ncert: a.crt\nkey: a.key\nbroker:\n  urls: "tls://nats1.example.com, nats2:4333, [::1]:4444"\n  names: [web1]\n  key: broker.key\n',
  );
  const config = loadAgentConfig(file, {});
  t.deepEqual(config.broker, {
    urls: ['nats1.example.com:4222', 'nats2:4333', '[::1]:4444'],
    names: ['web1'],
    ca: undefined,
    cert: undefined,
    key: join(dir, 'broker.key'),
  });
  t.true(config.listen);
  const flagged = loadAgentConfig(file, { brokerUrls: 'other:5000', listen: false });
  t.deepEqual(flagged.broker?.urls, ['other:5000']);
  t.deepEqual(flagged.broker?.names, ['web1'], 'the rest of the section stays');
  t.false(flagged.listen);
  t.throws(() => loadAgentConfig(undefined, { ca: 'a', cert: 'b', key: 'c', listen: false }), {
    instanceOf: ConfigError,
    message: /listen is false and no broker is configured: the agent could not be reached at all/,
  });
});
