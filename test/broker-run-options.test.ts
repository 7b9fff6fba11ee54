// Run options through a real 3-node nats-server cluster behave as they do directly, on the
// same three agents (each listening directly too): --batch, --max-fail, -b (gather),
// --outdir and `distrun rerun`; and a NATS message above the broker's max_payload is
// refused by nats-server, while the agent it was meant for keeps serving.
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { startBrokerFleet, type BrokerFleet } from './helpers/broker.js';
import { addCleanup, cleanupAll, distrun, makePki, spawnDistrun, tempDir, waitFor, type Pki, type RunningAgent } from './helpers/fleet.js';

let pki: Pki;
let fleet: BrokerFleet;

test.before(async () => {
  pki = await makePki(['agent1', 'agent2', 'agent3']);
  // agent3 is the odd one out: commands see TZ=UTC0 there, UTC on the others.
  fleet = await startBrokerFleet(pki, [0, 1, 0], { trio: ['agent1', 'agent2', 'agent3'] }, (i) => ({ env: { TZ: i === 2 ? 'UTC0' : 'UTC' } }));
});
test.after.always(cleanupAll);

const viaBroker = (...args: string[]) => fleet.viaBroker(...args);
const direct = (...args: string[]) => fleet.direct(...args);
const ways = { broker: viaBroker, direct } as const;

/**
 * Output with timing fields and run ids masked, its lines sorted (hosts finish in any
 * order), and without the address a direct run names a host by in its messages (through
 * the broker, a host is only its name: "agent2: not started", not "agent2 (127.0.0.1:PORT): ...").
 */
const normal = (text: string) =>
  text
    .split('\n')
    .map((l) =>
      l
        .replace(/"(durationMs|time|startTime|endTime|elapsedMs|run|id)":("[^"]*"|[\d.]+)/g, '"$1":X')
        .replace(/\d{8}T\d{9}Z-[0-9a-f]{4}/g, 'RUN')
        .replace(/^(distrun: agent\d) \(127\.0\.0\.1:\d+\):/, '$1:'),
    )
    .sort()
    .join('\n');

/** The same command through the broker and directly: the same exit code, stdout and stderr. */
async function same(t: import('ava').ExecutionContext, ...command: string[]): Promise<void> {
  const [brokered, straight] = await Promise.all([distrun(viaBroker(...command)), distrun(direct(...command))]);
  const name = command.join(' ');
  t.is(brokered.code, straight.code, `${name}: ${brokered.stderr}`);
  t.is(normal(brokered.stdout.toString()), normal(straight.stdout.toString()), name);
  t.is(normal(brokered.stderr), normal(straight.stderr), name);
}

/** The commands an agent logged whose argv contains `text`, with the peer of their session ('broker:admin' through the broker). */
const commandsWith = (agent: RunningAgent, text: string) =>
  agent.logs.filter((l) => l.msg === 'command' && JSON.stringify(l.argv).includes(text)).map((l) => l.peer);

test('--batch 2: the third host starts only once both of the first batch have ended, through the broker as directly', async (t) => {
  // The first two hosts take tickets 1 and 2 and wait for each other (both must be running
  // at once); the third, ticket 3, finds only itself running: the first batch had ended.
  const script = (dir: string) =>
    `if mkdir ${dir}/t1 2>/dev/null; then k=1; elif mkdir ${dir}/t2 2>/dev/null; then k=2; else k=3; fi; touch ${dir}/arrived.$k ${dir}/running.$k; ` +
    `if [ $k -le 2 ]; then until [ -e ${dir}/arrived.1 ] && [ -e ${dir}/arrived.2 ]; do sleep 0.01; done; echo together; ` +
    `else echo "alone: $(ls ${dir} | grep -c '^running') running"; fi; ` +
    `rm ${dir}/running.$k`;
  const [brokered, straight] = await Promise.all(
    Object.values(ways).map((way) => distrun(way('-g', 'trio', '-N', '--batch', '2', '--timeout', '120', 'sh', '-c', script(tempDir())))),
  );
  for (const r of [brokered, straight]) {
    t.is(r.code, 0, r.stderr);
    t.deepEqual(r.stdout.toString().trim().split('\n').sort(), ['alone: 1 running', 'together', 'together']);
  }
  t.is(brokered.stderr, straight.stderr);
  // JSON events of a batched run, one host at a time.
  await same(t, '-g', 'trio', '--batch', '1', '--json', '--', 'sh', '-c', 'echo "tz $TZ"; exit 0');
  await same(t, '-g', 'trio', '--batch', '34%', '--batch-wait', '0.01', 'echo', 'batched');
});

test('--max-fail through the broker: the same hosts run, the rest are not started, the same report', async (t) => {
  for (const [way, build] of Object.entries(ways)) {
    const marker = `maxfail-${way}-${randomBytes(4).toString('hex')}`;
    const r = await distrun(build('-g', 'trio', '-f', '1', '--max-fail', '1', 'sh', '-c', `exit 3 # ${marker}`));
    t.is(r.code, 3, way);
    t.regex(r.stderr, /^distrun: 3 hosts: 1 failed, 2 not started$/m, way);
    t.regex(r.stderr, /^ {2}not started: --max-fail reached \(1 host not ok\): agent\[2-3\]$/m, way);
    t.true(await waitFor(() => commandsWith(fleet.agents[0]!, marker).length > 0), way);
    t.deepEqual(
      fleet.agents.map((a) => commandsWith(a, marker).length),
      [1, 0, 0],
      way,
    );
    t.is(commandsWith(fleet.agents[0]!, marker)[0] === 'broker:admin', way === 'broker', way);
  }
  await same(t, '-g', 'trio', '-f', '1', '--max-fail', '1', 'sh', '-c', 'echo ran; exit 3');
  await same(t, '-g', 'trio', '-f', '1', '--max-fail', '2', '--json', 'false');
});

test('-b gathers identical outputs under folded host names through the broker exactly as directly', async (t) => {
  const command = ['-g', 'trio', '-b', '--', 'sh', '-c', 'echo "tz $TZ"; [ "$TZ" = UTC0 ] && exit 4; exit 0'];
  const [brokered, straight] = await Promise.all([distrun(viaBroker(...command)), distrun(direct(...command))]);
  t.is(brokered.code, 4, brokered.stderr);
  const line = '---------------\n';
  t.is(brokered.stdout.toString(), `${line}agent[1-2] (2)\n${line}tz UTC\n${line}agent3 (1) exit code 4\n${line}tz UTC0\n`);
  t.is(brokered.stdout.toString(), straight.stdout.toString());
  t.is(brokered.stderr, straight.stderr);
  await same(t, '-g', 'trio', '-b', 'echo', 'same');
});

test('--outdir through the broker writes the same per-host files as directly', async (t) => {
  const data = join(tempDir(), 'data.bin');
  writeFileSync(data, randomBytes(200_000));
  const script = `cat ${data}; printf 'tz %s' "$TZ" >&2; [ "$TZ" = UTC0 ] && exit 2; exit 0`;
  const dirs = { broker: join(tempDir(), 'out'), direct: join(tempDir(), 'out') };
  const [brokered, straight] = await Promise.all([
    distrun(viaBroker('-g', 'trio', '--outdir', dirs.broker, '--', 'sh', '-c', script)),
    distrun(direct('-g', 'trio', '--outdir', dirs.direct, '--', 'sh', '-c', script)),
  ]);
  t.is(brokered.code, 2, brokered.stderr);
  t.is(straight.code, 2, straight.stderr);
  t.is(normal(brokered.stdout.toString()), normal(straight.stdout.toString()));
  t.is(normal(brokered.stderr), normal(straight.stderr));
  // Each output directory has its own record of the run that wrote it (.distrun-outdir.json).
  const files = readdirSync(dirs.broker)
    .filter((f) => !f.startsWith('.'))
    .sort();
  t.deepEqual(readdirSync(dirs.broker).sort(), readdirSync(dirs.direct).sort());
  t.deepEqual(files, ['agent1.err', 'agent1.out', 'agent1.rc', 'agent2.err', 'agent2.out', 'agent2.rc', 'agent3.err', 'agent3.out', 'agent3.rc']);
  for (const file of files) t.true(readFileSync(join(dirs.broker, file)).equals(readFileSync(join(dirs.direct, file))), file);
  const record = (dir: string) => (JSON.parse(readFileSync(join(dir, '.distrun-outdir.json'), 'utf8')) as { files: string[] }).files.sort();
  t.deepEqual(record(dirs.broker), files);
  t.deepEqual(record(dirs.direct), files);
  t.true(readFileSync(join(dirs.broker, 'agent1.out')).equals(readFileSync(data)));
  t.is(readFileSync(join(dirs.broker, 'agent3.rc'), 'utf8'), '2\n');
  t.is(readFileSync(join(dirs.broker, 'agent3.err'), 'utf8'), 'tz UTC0');
});

test('distrun rerun through the broker: the failed host again, the same as directly; a host still offline is reported so', async (t) => {
  const results: Record<string, { first: string; again: string; code: number | null }> = {};
  for (const [way, build] of Object.entries(ways)) {
    // Each way with run records of its own.
    const cache = { XDG_CACHE_HOME: tempDir('distrun-cache-') };
    const fixed = join(tempDir(), 'fixed');
    const script = `if [ -e ${fixed} ]; then echo "fixed $TZ"; exit 0; fi; [ "$TZ" = UTC0 ] && { echo broken; exit 5; }; echo fine`;
    const first = await distrun(build('-g', 'trio', '--', 'sh', '-c', script), { env: cache });
    t.is(first.code, 5, first.stderr);
    writeFileSync(fixed, '');
    const connection = way === 'broker' ? ['--broker', fleet.cluster.nodes[2]!.url] : [];
    const again = await distrun(['rerun', '--failed', ...connection, '--pki', pki.dir], { env: cache });
    t.is(again.code, 0, again.stderr);
    t.is(again.stdout.toString(), 'agent3: fixed UTC0\n', way);
    t.regex(again.stderr, /^distrun: running again on 1 host of \d{8}T\d{9}Z-[0-9a-f]{4}: sh -c /, way);
    // The run and its rerun both came through the broker, or both directly.
    t.true(await waitFor(() => commandsWith(fleet.agents[2]!, fixed).length === 2), way);
    t.deepEqual(
      commandsWith(fleet.agents[2]!, fixed).map((peer) => peer === 'broker:admin'),
      [way === 'broker', way === 'broker'],
      way,
    );
    const output = (r: typeof first) => normal(r.stdout.toString() + r.stderr).replaceAll(fixed, 'FIXED');
    results[way] = { first: output(first), again: output(again), code: again.code };
  }
  t.deepEqual(results.broker, results.direct);

  // An unreachable host through the broker (no agent of its name is connected) is rerun, and is still offline.
  const cache = { XDG_CACHE_HOME: tempDir('distrun-cache-') };
  const first = await distrun(viaBroker('-H', 'agent1,ghost', 'echo', 'hi'), { env: cache });
  t.is(first.code, 255);
  const again = await distrun(['rerun', '--unreachable', '--broker', fleet.cluster.nodes[2]!.url, '--pki', pki.dir], { env: cache });
  t.is(again.code, 255);
  t.is(again.stdout.toString(), '');
  t.regex(again.stderr, /running again on 1 host of /);
  t.regex(again.stderr, /ghost( \(127\.0\.0\.1:1\))?: offline: no agent of this name is connected to the broker/);
});

/**
 * The NATS protocol by hand over TLS with the default client's certificate, to node `url`
 * (INFO in clear, then TLS, as nats-server does): resolves with everything it said once it
 * has closed the connection, after `send` was written following the first PONG.
 */
function rawNats(url: string, send: Buffer): Promise<string> {
  const [host, port] = url.split(':');
  return new Promise((resolve, reject) => {
    const tcp = connectTcp(Number(port), host);
    addCleanup(() => {
      tcp.destroy();
    });
    tcp.on('error', reject);
    let info = '';
    const onInfo = (c: Buffer): void => {
      info += c.toString();
      if (!info.includes('\r\n')) return;
      tcp.off('data', onInfo);
      if (!info.startsWith('INFO ')) return reject(new Error(`not a nats-server: ${info}`));
      const socket = tls.connect({
        socket: tcp,
        ca: readFileSync(join(pki.dir, 'ca.crt')),
        cert: readFileSync(join(pki.dir, 'client.crt')),
        key: readFileSync(join(pki.dir, 'client.key')),
        checkServerIdentity: () => undefined,
      });
      addCleanup(() => {
        socket.destroy();
      });
      let said = '';
      let sent = false;
      socket.on('error', () => {});
      socket.on('secureConnect', () => socket.write('CONNECT {"verbose":false,"pedantic":false,"tls_required":true}\r\nPING\r\n'));
      socket.on('data', (c: Buffer) => {
        said += c.toString();
        if (!sent && said.includes('PONG\r\n')) {
          sent = true;
          socket.write(send);
        }
      });
      socket.on('close', () => resolve(said));
    };
    tcp.on('data', onInfo);
  });
}

test('a NATS message above max_payload is refused by nats-server (error, then disconnection); the agent keeps serving', async (t) => {
  const b1 = fleet.cluster.nodes[0]!;
  const subject = 'distrun.agent.agent1.admin.runrunrun1.toolarge01';
  const size = 36864 + 1;
  // A well-behaved client (nats.js) refuses to send it at all: the server announced its limit.
  const nc = await connect({
    servers: b1.url,
    tls: {
      ca: readFileSync(join(pki.dir, 'ca.crt'), 'utf8'),
      cert: readFileSync(join(pki.dir, 'client.crt'), 'utf8'),
      key: readFileSync(join(pki.dir, 'client.key'), 'utf8'),
      checkServerIdentity: () => undefined,
    } as object,
  });
  addCleanup(() => nc.close());
  t.is(nc.info?.max_payload, 36864);
  t.throws(() => nc.publish(subject, new Uint8Array(size)), { message: /max_payload/ });
  await nc.close();
  // One that sends it anyway gets nats-server's error and is disconnected.
  const said = await rawNats(
    b1.url,
    Buffer.concat([Buffer.from(`PUB ${subject} ${size}\r\n`), Buffer.alloc(size, 'x'), Buffer.from('\r\nPING\r\n')]),
  );
  t.regex(said, /-ERR 'Maximum Payload Violation'/);
  t.false(said.slice(said.indexOf('-ERR')).includes('PONG'), 'nothing was served after the violation');
  t.true(await waitFor(() => b1.log().includes(`maximum payload exceeded: ${size} vs 36864`)), b1.log().slice(-2000));
  // The agent never saw it, is still running, and still serves a run through the broker.
  t.is(fleet.agents[0]!.process.exitCode, null);
  t.is(fleet.agents[0]!.process.signalCode, null);
  const r = await distrun(viaBroker('-H', 'agent1', 'echo', 'still here'));
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), 'agent1: still here\n');
  t.true(await waitFor(() => commandsWith(fleet.agents[0]!, 'still here').includes('broker:admin')));
  t.false(
    fleet.agents[0]!.logs.some((l) => JSON.stringify(l).includes('toolarge01')),
    'the oversized message never reached the agent',
  );
});

test('the inventory says which hosts go through the broker; distrun hosts shows it, and a rerun goes the same way without --broker', async (t) => {
  // agent1 direct by its own entry, agent3 direct by its group's list, agent2 through the
  // broker the inventory names (nothing else is said of it).
  const chosen = join(tempDir(), 'mixed.yaml');
  const hosts = Object.fromEntries(fleet.agents.map((a, i) => [`agent${i + 1}`, { address: '127.0.0.1', port: a.port }]));
  writeFileSync(
    chosen,
    JSON.stringify({
      broker: [fleet.cluster.nodes[2]!.url],
      hosts: { ...hosts, agent1: { ...hosts.agent1, connect: 'direct' } },
      groups: { trio: ['agent1', 'agent2', 'agent3'], odd: ['agent3'] },
      connect: { direct: ['@odd'] },
    }),
  );
  const listed = await distrun(['hosts', '-i', chosen, '-g', 'trio', '--explain']);
  t.is(listed.code, 0, listed.stderr);
  const lines = listed.stdout.toString().trim().split('\n');
  t.regex(
    lines[0]!,
    new RegExp(`^agent1  127\\.0\\.0\\.1:${fleet.agents[0]!.port}\\s+-g: group trio; direct: .*mixed\\.yaml: hosts\\.agent1\\.connect$`),
  );
  t.regex(lines[1]!, /^agent2  broker\s+-g: group trio; broker: .*mixed\.yaml: broker$/);
  t.regex(lines[2]!, /^agent3  127\.0\.0\.1:\d+\s+-g: group trio; direct: .*mixed\.yaml: connect\.direct\[0\] \(@odd\)$/);

  const cache = { XDG_CACHE_HOME: tempDir('distrun-cache-') };
  const marker = `chosen-${randomBytes(4).toString('hex')}`;
  const first = await distrun(['--pki', pki.dir, '-i', chosen, '-g', 'trio', '--', 'sh', '-c', `echo ran; exit 7 # ${marker}`], { env: cache });
  t.is(first.code, 7, first.stderr);
  t.deepEqual(first.stdout.toString().trim().split('\n').sort(), ['agent1: ran', 'agent2: ran', 'agent3: ran']);
  // The rerun reads no inventory and is given no broker: the record says how each host was reached.
  const again = await distrun(['rerun', '--failed', '--pki', pki.dir], { env: cache });
  t.is(again.code, 7, again.stderr);
  for (const [i, way] of ['direct', 'broker', 'direct'].entries()) {
    t.true(await waitFor(() => commandsWith(fleet.agents[i]!, marker).length === 2), `agent${i + 1}`);
    t.deepEqual(
      commandsWith(fleet.agents[i]!, marker).map((peer) => (peer === 'broker:admin' ? 'broker' : 'direct')),
      [way, way],
      `agent${i + 1}`,
    );
  }
  // copy and fetch choose the same way (their --dry-run shows it).
  const dry = await distrun(['fetch', '--dry-run', '--pki', pki.dir, '-i', chosen, '-g', 'trio', '/etc/hostname', join(tempDir(), 'got')]);
  t.is(dry.code, 0, dry.stderr);
  t.regex(dry.stdout.toString(), /^agent2 {2}broker$/m);

  // A host the inventory sends through a broker it does not name: refused before anything runs.
  writeFileSync(chosen, JSON.stringify({ hosts: { agent2: { ...hosts.agent2, connect: 'broker' } } }));
  const refused = await distrun(['--pki', pki.dir, '-i', chosen, '-H', 'agent2', 'true']);
  t.is(refused.code, 255, refused.stderr);
  t.regex(refused.stderr, /^distrun: agent2 is reached through a broker \(.*mixed\.yaml: hosts\.agent2\.connect\), but no broker is named for it/);
  // fetch too, before it makes its local directory.
  const local = join(tempDir(), 'never');
  const fetchRefused = await distrun(['fetch', '--pki', pki.dir, '-i', chosen, '-H', 'agent2', '/etc/hostname', local]);
  t.is(fetchRefused.code, 255, fetchRefused.stderr);
  t.regex(fetchRefused.stderr, /^distrun: agent2 is reached through a broker/);
  t.false(existsSync(local));
});

test('Ctrl-C through the broker forwards SIGINT to the remote commands and exits 130, as directly', async (t) => {
  for (const [i, [way, build]] of Object.entries(ways).entries()) {
    // A duration of its own per way: each agent's log tells the two runs apart.
    const argv = ['sleep', `61.${i + 1}`];
    const { child, exit, stderr } = spawnDistrun(build('-g', 'trio', ...argv));
    t.true(
      await waitFor(() => fleet.agents.every((a) => a.logs.some((l) => l.msg === 'command' && JSON.stringify(l.argv) === JSON.stringify(argv)))),
      way,
    );
    child.kill('SIGINT');
    t.is(await exit, 130, `${way}: ${stderr()}`);
    t.regex(stderr(), /interrupt sent to 3 running commands/, way);
    t.regex(stderr(), /killed by SIGINT/, way);
  }
});
