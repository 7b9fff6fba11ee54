#!/usr/bin/env node
// A fleet of real hosts in network namespaces, for trying faults by hand (as root,
// with iproute2). The same harness as the tests' (test/helpers/netns-fleet.ts):
//
//   npm run build && node scripts/netns-fleet.mjs [HOSTS]     (default 5)
//
// It prints how to run distrun from the client namespace and how to cut a host's link,
// and removes everything on Ctrl-C (or, if killed, at the next start).
import { cleanupAll, makePki } from '../dist/test/helpers/fleet.js';
import { NetnsFleet, netnsUnavailable } from '../dist/test/helpers/netns-fleet.js';

const count = Number(process.argv[2] ?? 5);
if (!Number.isInteger(count) || count < 1 || count > 200) {
  process.stderr.write('usage: node scripts/netns-fleet.mjs [HOSTS]   (1 to 200)\n');
  process.exit(2);
}
const unavailable = netnsUnavailable();
if (unavailable) {
  process.stderr.write(`netns-fleet: cannot run: ${unavailable}\n`);
  process.exit(1);
}

const pki = await makePki([]);
const fleet = await NetnsFleet.create({ hosts: count, pki, agentConfig: { keepaliveSeconds: 5 } });
const [first] = fleet.hosts;
const distrun = new URL('../dist/src/bin/distrun.js', import.meta.url).pathname;
process.stdout.write(`${count} hosts are up: ${fleet.hosts.map((h) => `${h.name} ${h.address}`).join(', ')}

Run distrun from the client namespace (in another terminal):
  ip netns exec ${fleet.clientNetns} node ${distrun} ${fleet.distrunArgs.join(' ')} -g fleet uname -n
  ip netns exec ${fleet.clientNetns} node ${distrun} ${fleet.distrunArgs.join(' ')} ping -g fleet
Faults:
  ip -n ${first.netns} link set eth0 down        (and up)
  tc -n ${first.netns} qdisc replace dev eth0 root tbf rate 10mbit burst 256kb latency 100ms
  kill -9 ${first.agent.process.pid}             (${first.name}'s agent)

Ctrl-C removes the namespaces, the agents and the keys.
`);

const stop = async () => {
  fleet.destroy();
  await cleanupAll();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
// Keep running until a signal comes.
setInterval(() => {}, 1 << 30);
