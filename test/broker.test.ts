// Sessions through a real 3-node nats-server cluster on loopback, configured by
// `distrun broker config`, against the real agent and the real distrun: the same output,
// exit codes and refusals as a direct connection, hosts that are not there named at once,
// and what the generated broker configuration lets each identity do.
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, startBrokerFleet, startNatsServer, type BrokerFleet } from './helpers/broker.js';
import { cleanupAll, DISTRUN, distrun, distrunEnv, makePki, startAgent, tempDir, waitFor, type Pki } from './helpers/fleet.js';

let pki: Pki;
let fleet: BrokerFleet;

test.before(async () => {
  // agent3: started by the discovery test, with allowedClients of its own.
  pki = await makePki(['agent1', 'agent2', 'agent3']);
  // A second client, for what one client may do to another's sessions.
  const ops = await distrun(['certs', 'client', 'ops', '--dir', pki.dir]);
  if (ops.code !== 0) throw new Error(ops.stderr);
  // Each agent on a node of its own, and listening directly too: the same agent both ways.
  fleet = await startBrokerFleet(pki, [0, 1], { pair: ['agent1', 'agent2'] });
});
test.after.always(cleanupAll);

const viaBroker = (...args: string[]) => fleet.viaBroker(...args);
const direct = (...args: string[]) => fleet.direct(...args);

test('through the broker: output, stderr, exit codes and JSON events are those of a direct run', async (t) => {
  for (const command of [
    ['-g', 'pair', 'uname', '-n'],
    ['-g', 'pair', '--', 'sh', '-c', 'echo "out $0"; echo err >&2; exit 3', 'an argument with  spaces'],
    ['-g', 'pair', '--json', '--', 'sh', '-c', 'echo one; exit 7'],
    ['-H', 'agent1', '-N', '--', 'printf', '%s\\n', 'a', 'b c'],
  ]) {
    const [brokered, straight] = await Promise.all([distrun(viaBroker(...command)), distrun(direct(...command))]);
    const name = command.join(' ');
    t.is(brokered.code, straight.code, name);
    const normal = (text: string) =>
      text
        .split('\n')
        .map((l) => l.replace(/"(durationMs|time|startTime|endTime|elapsedMs|run|id)":("[^"]*"|[\d.]+)/g, '"$1":X'))
        .sort()
        .join('\n');
    t.is(normal(brokered.stdout.toString()), normal(straight.stdout.toString()), name);
    t.is(normal(brokered.stderr), normal(straight.stderr), name);
  }
});

test('a host whose agent is not connected is reported at once, by name, as offline; the others run', async (t) => {
  const r = await distrun(viaBroker('-H', 'agent1,ghost', 'echo', 'hi'));
  t.is(r.code, 255);
  t.is(r.stdout.toString(), 'agent1: hi\n');
  t.regex(r.stderr, /distrun: ghost( \(127\.0\.0\.1:1\))?: offline: no agent of this name is connected to the broker/);
  t.regex(r.stderr, /1 unreachable/);
});

test('stdin (-t), a 4 MiB output byte for byte, and --timeout through the broker', async (t) => {
  const input = Buffer.alloc(256 * 1024, 'x');
  const echoed = await distrun(viaBroker('-H', 'agent2', '-N', '-t', 'wc', '-c'), { input });
  t.is(echoed.code, 0, echoed.stderr);
  t.is(echoed.stdout.toString().trim(), String(input.length));
  const big = await distrun(viaBroker('-H', 'agent1', '-N', '--', 'head', '-c', '4194304', '/dev/urandom'));
  t.is(big.code, 0, big.stderr);
  t.is(big.stdout.length, 4 * 1024 * 1024);
  const slow = await distrun(viaBroker('-H', 'agent1', '--timeout', '1', 'sleep', '30'));
  t.is(slow.code, 124, slow.stderr);
  t.regex(slow.stderr, /timed out|time limit/);
});

test('distrun ping works through the broker', async (t) => {
  const r = await distrun(viaBroker('ping', '-g', 'pair', '--json'));
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout
    .toString()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { host: string; status?: string; agent?: string });
  t.deepEqual(lines.map((l) => l.host).sort(), ['agent1', 'agent2']);
});

test('no broker answering: distrun fails at once with the reason, and runs nothing', async (t) => {
  const [closed] = await freePorts(1);
  const r = await distrun(['--broker', `127.0.0.1:${closed}`, '--pki', pki.dir, '-i', fleet.inventory, '-g', 'pair', 'true']);
  t.is(r.code, 255);
  t.regex(r.stderr, new RegExp(`distrun: cannot connect to the broker \\(127\\.0\\.0\\.1:${closed}\\): connection refused`));
  t.is(r.stdout.toString(), '');
});

test("the broker configuration: a client cannot read another client's replies, an agent cannot read another agent's requests", async (t) => {
  const login = (dir: string, cert: string, key: string) => ({
    servers: fleet.cluster.nodes[0]!.url,
    tls: {
      ca: readFileSync(join(pki.dir, 'ca.crt'), 'utf8'),
      cert: readFileSync(join(dir, cert), 'utf8'),
      key: readFileSync(join(dir, key), 'utf8'),
      checkServerIdentity: () => undefined,
    } as object,
  });
  const denied = async (options: ReturnType<typeof login>, subject: string): Promise<string> => {
    const nc = await connect(options);
    const error = new Promise<string>((resolve) => {
      nc.subscribe(subject, {
        callback: (err) => {
          if (err) resolve(err.message);
        },
      });
    });
    await nc.flush();
    const reason = await Promise.race([error, new Promise<string>((resolve) => setTimeout(() => resolve('allowed'), 2000))]);
    await nc.close();
    return reason;
  };
  const ops = login(join(pki.dir, 'clients', 'ops'), 'client.crt', 'client.key');
  t.regex(await denied(ops, 'distrun.client.admin.>'), /Permissions Violation for Subscription/i);
  t.regex(await denied(ops, '>'), /Permissions Violation for Subscription/i);
  const agent1 = login(pki.agent('agent1'), 'agent.crt', 'agent.key');
  t.regex(await denied(agent1, 'distrun.agent.agent2.>'), /Permissions Violation for Subscription/i);
  // A certificate the configuration does not list (issued after it was written) cannot log in at all.
  const late = await distrun(['certs', 'client', 'latecomer', '--dir', pki.dir]);
  t.is(late.code, 0);
  const error = await connect(login(join(pki.dir, 'clients', 'latecomer'), 'client.crt', 'client.key')).then(
    (nc) => nc.close().then(() => 'connected'),
    (err: Error) => err.message,
  );
  t.regex(error, /authorization violation/i);
});

test("distrun refuses a broker whose certificate is not a broker's, and one without TLS", async (t) => {
  const [port] = await freePorts(1);
  const dir = tempDir();
  const bundle = pki.agent('agent1');
  // An agent's certificate (of the right CA) on a nats-server: not a broker.
  const config = join(dir, 'fake.conf');
  writeFileSync(
    config,
    `listen: "127.0.0.1:${port}"\ntls { cert_file: "${join(bundle, 'agent.crt')}", key_file: "${join(bundle, 'agent.key')}", ca_file: "${join(bundle, 'ca.crt')}", verify: true }\n`,
  );
  const fake = await startNatsServer(['-c', config]);
  const r = await distrun(['--broker', `127.0.0.1:${port}`, '--pki', pki.dir, '-H', 'agent1', 'true']);
  t.is(r.code, 255);
  t.regex(r.stderr, /the broker's certificate is an agent's certificate, not a broker's; refusing to use it/);
  fake.kill('SIGKILL');
  // No TLS at all.
  const [plainPort] = await freePorts(1);
  await startNatsServer(['-a', '127.0.0.1', '-p', String(plainPort)]);
  const p = await distrun(['--broker', `127.0.0.1:${plainPort}`, '--pki', pki.dir, '-H', 'agent1', 'true']);
  t.is(p.code, 255);
  t.regex(p.stderr, /cannot connect to the broker \(127\.0\.0\.1:\d+\): it does not offer TLS; refusing to use it/);
});

test('copy and fetch through the broker; a TLS session resumed directly resumes through the broker too', async (t) => {
  const dir = tempDir();
  const source = join(dir, 'motd');
  writeFileSync(source, 'through the broker\n');
  const dest = join(dir, 'dest');
  mkdirSync(dest);
  const copied = await distrun(viaBroker('-H', 'agent1', 'copy', source, `${dest}/`));
  t.is(copied.code, 0, copied.stderr);
  t.is(readFileSync(join(dest, 'motd'), 'utf8'), 'through the broker\n');
  const fetched = await distrun(viaBroker('-H', 'agent2', 'fetch', join(dest, 'motd'), join(dir, 'got')));
  t.is(fetched.code, 0, fetched.stderr);
  t.is(readFileSync(join(dir, 'got', 'agent2', dest.slice(1), 'motd'), 'utf8'), 'through the broker\n');
  // The same agent, directly and then through the broker: the second session resumes.
  await distrun(direct('-H', 'agent2', 'true'));
  const mark = fleet.agents[1]!.logs.length;
  const r = await distrun(viaBroker('-H', 'agent2', 'true'));
  t.is(r.code, 0, r.stderr);
  // The direct session's own line may be read after `mark`: the broker session's is the one named so.
  const brokered = () => fleet.agents[1]!.logs.slice(mark).find((l) => l.msg === 'session start' && l.peer === 'broker:admin');
  t.true(await waitFor(() => brokered() !== undefined));
  t.like(brokered(), { resumed: true });
});

test('--tty through the broker: the command has a terminal', async (t) => {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const line = [process.execPath, DISTRUN, ...viaBroker('-H', 'agent1', '--tty', '--', 'sh', '-c', 'tty; test -t 0 && echo interactive')]
    .map(quote)
    .join(' ');
  const child = spawn('script', ['-qec', line, '/dev/null'], { env: distrunEnv({ NO_COLOR: '1' }), stdio: ['pipe', 'pipe', 'inherit'] });
  let screen = '';
  child.stdout.on('data', (c: Buffer) => (screen += c.toString()));
  const status = await new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      child.stdin.destroy();
      resolve(code);
    }),
  );
  t.is(status, 0, screen);
  t.regex(screen, /\/dev\/pts\/\d+/);
  t.regex(screen, /interactive/);
});

test('distrun hosts --discover: who is connected now, by name, through any node; an agent answers only clients it serves', async (t) => {
  const lines = (r: { stdout: Buffer }) =>
    r.stdout
      .toString()
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/).join(' '));
  // The wait is a ceiling: a run ends as soon as every selected host has answered.
  const [all, pair] = await Promise.all([
    distrun(viaBroker('hosts', '--discover', '--wait', '10', '-g', 'all')),
    distrun(viaBroker('hosts', '--discover', '--wait', '60', '-g', 'pair')),
  ]);
  t.deepEqual(lines(all), ['agent1 broker connected', 'agent2 broker connected', 'ghost broker no answer']);
  t.is(all.code, 255, 'a selected host through the broker did not answer');
  t.regex(all.stderr, /^distrun: 2 of 3 hosts reached through the broker answered within \d+\.\d s; no answer: ghost \(best effort/);
  t.is(pair.code, 0, pair.stderr);
  t.regex(pair.stderr, /^distrun: 2 of 2 hosts reached through the broker answered within /);
  // A whole wait (ghost never answers): the agents that were not selected are counted apart.
  const one = await distrun(viaBroker('hosts', '--discover', '--wait', '10', '-H', 'agent1,ghost'));
  t.deepEqual(lines(one), ['agent1 broker connected', 'ghost broker no answer']);
  t.regex(one.stderr, /; no answer: ghost; \d+ other names? answered: [^(]*agent/);

  // agent3 serves only ops: it does not tell admin that it is there.
  const b3 = fleet.cluster.nodes[2]!;
  const guarded = await startAgent(pki, 'agent3', { config: { allowedClients: ['ops'], broker: { urls: [b3.url] } } });
  await guarded.waitForLog('connected to the broker');
  const ask = (pkiDir: string) => distrun(['hosts', '--discover', '--wait', '10', '--broker', b3.url, '--pki', pkiDir, '-H', 'agent1,agent3']);
  const [asAdmin, asOps] = await Promise.all([ask(pki.dir), ask(join(pki.dir, 'clients', 'ops'))]);
  t.deepEqual(lines(asAdmin), ['agent1 broker connected', 'agent3 broker no answer']);
  t.deepEqual(lines(asOps), ['agent1 broker connected', 'agent3 broker connected']);
  t.is(asOps.code, 0, asOps.stderr);
});

test('a broker configured before discovery existed: --discover says so, instead of finding nobody', async (t) => {
  const issued = await distrun(['certs', 'broker', 'solo', '--ip', '127.0.0.1', '--dir', pki.dir]);
  t.is(issued.code, 0, issued.stderr);
  const [port, clusterPort] = await freePorts(2);
  const out = join(tempDir(), 'conf');
  const written = await distrun(['broker', 'config', '--dir', pki.dir, '--out', out, `solo=127.0.0.1:${port}:${clusterPort}`]);
  t.is(written.code, 0, written.stderr);
  const file = join(out, 'solo.conf');
  const config = readFileSync(file, 'utf8');
  const withoutDiscovery = config.replaceAll(', "distrun.discover.admin.*"', '');
  t.not(withoutDiscovery, config, 'the permission is in the configuration we write');
  writeFileSync(file, withoutDiscovery);
  await startNatsServer(['-c', file]);
  const r = await distrun(['hosts', '--discover', '--broker', `127.0.0.1:${port}`, '--pki', pki.dir, '-H', 'agent1']);
  t.is(r.code, 255);
  t.regex(
    r.stderr,
    /^distrun: the broker does not let client admin ask who is connected \(.*\); write its configuration again with distrun broker config/m,
  );
  t.is(r.stdout.toString(), '');
});
