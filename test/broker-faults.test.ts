// Faults of the broker path on a real 3-node nats-server cluster: a node killed (SIGKILL)
// while commands run on every host, and agents that restart. Every host must end with
// its true result or a reason by name, nothing may hang, and the next run must find
// every agent again on the surviving nodes.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBrokerCluster, waitUntilReachable, type BrokerCluster } from './helpers/broker.js';
import { cleanupAll, distrun, makePki, startAgent, tempDir, waitFor, type Pki, type RunningAgent } from './helpers/fleet.js';

const NAMES = ['agent1', 'agent2', 'agent3', 'agent4'];
let pki: Pki;
let cluster: BrokerCluster;
let agents: RunningAgent[];
let inventory: string;

// Keepalives every second: a session whose other side went silent ends within seconds.
const agentConfig = () => ({ broker: { urls: cluster.urls.split(',') }, listen: false, keepaliveSeconds: 1 });

test.before(async () => {
  pki = await makePki(NAMES);
  cluster = await startBrokerCluster(pki, 3);
  agents = await Promise.all(NAMES.map((name) => startAgent(pki, name, { config: agentConfig() })));
  inventory = join(tempDir(), 'hosts.yaml');
  writeFileSync(inventory, JSON.stringify({ hosts: Object.fromEntries(NAMES.map((n) => [n, {}])), groups: { all4: NAMES } }));
  await waitUntilReachable(cluster.urls, pki.dir, ['-H', NAMES.join(',')]);
});
test.after.always(cleanupAll);

const brokerOf = (agent: RunningAgent): string | undefined =>
  [...agent.logs].reverse().find((l) => l.msg === 'connected to the broker' || l.msg === 'connected to the broker again')?.broker as
    | string
    | undefined;

/** Each host's line: its output, or its error, by name. */
function outcomes(stdout: string, stderr: string): Map<string, string> {
  const seen = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^(agent\d): (.*)$/.exec(line);
    if (m) seen.set(m[1]!, m[2]!);
  }
  for (const line of stderr.split('\n')) {
    const m = /^distrun: (agent\d)(?: \([^)]*\))?: (.*)$/.exec(line);
    if (m && !seen.has(m[1]!)) seen.set(m[1]!, `error: ${m[2]!}`);
  }
  return seen;
}

test.serial('a broker node killed mid-run: every host ends with its result or a reason; the next run reaches every host', async (t) => {
  const victim = cluster.nodes.find((n) => agents.some((a) => brokerOf(a) === n.url))!;
  const onVictim = agents.filter((a) => brokerOf(a) === victim.url);
  t.true(onVictim.length > 0);
  const marks = agents.map((a) => a.logs.length);
  const run = distrun(['--broker', cluster.urls, '--pki', pki.dir, '-i', inventory, '-g', 'all4', '--', 'sh', '-c', 'sleep 3; echo done']);
  // Every command is running before the node dies.
  t.true(await waitFor(() => agents.every((a, i) => a.logs.slice(marks[i]).some((l) => l.msg === 'command')), 20_000));
  await victim.stop('SIGKILL');
  const r = await run;
  const seen = outcomes(r.stdout.toString(), r.stderr);
  t.log(r.stderr);
  t.deepEqual([...seen.keys()].sort(), NAMES, 'every host is accounted for');
  for (const [host, outcome] of seen) {
    t.true(
      outcome === 'done' ||
        /^error: (the broker connection .* was lost|the agent lost its broker connection|the agent no longer has this session|.*(did not answer|silent|lost))/.test(
          outcome,
        ),
      `${host}: ${outcome}`,
    );
  }
  // The agents that were on the killed node stopped their commands, as for a lost client.
  for (const agent of onVictim) t.true(agent.logs.some((l) => l.msg === 'lost the broker connection; stopping its sessions'));
  // They move to the surviving nodes, and the next run reaches every host.
  t.true(await waitFor(() => onVictim.every((a) => brokerOf(a) !== victim.url), 30_000), 'the agents reconnected elsewhere');
  const alive = cluster.nodes
    .filter((n) => n !== victim)
    .map((n) => n.url)
    .join(',');
  await waitUntilReachable(alive, pki.dir, ['-H', NAMES.join(',')]);
  const again = await distrun(['--broker', alive, '--pki', pki.dir, '-i', inventory, '-g', 'all4', 'echo', 'again']);
  t.is(again.code, 0, again.stderr);
  t.deepEqual(
    again.stdout.toString().trim().split('\n').sort(),
    NAMES.map((n) => `${n}: again`),
  );
  await victim.restart();
});

test.serial('an agent killed mid-command is reported lost by name; restarted, it serves the next run', async (t) => {
  const [first] = agents;
  const mark = first!.logs.length;
  const run = distrun(['--broker', cluster.urls, '--pki', pki.dir, '-i', inventory, '-H', 'agent1,agent2', '--', 'sh', '-c', 'sleep 3; echo done']);
  t.true(await waitFor(() => first!.logs.slice(mark).some((l) => l.msg === 'command'), 20_000));
  await first!.stop('SIGKILL');
  const r = await run;
  t.is(r.code, 255);
  t.regex(r.stdout.toString(), /^agent2: done$/m);
  t.regex(r.stderr, /distrun: agent1: .*(lost|silent|did not answer|keepalive)/);
  agents[0] = await startAgent(pki, 'agent1', { config: agentConfig() });
  await waitUntilReachable(cluster.urls, pki.dir, ['-H', 'agent1']);
  const again = await distrun(['--broker', cluster.urls, '--pki', pki.dir, '-i', inventory, '-H', 'agent1', 'echo', 'back']);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout.toString(), 'agent1: back\n');
});
