// The benchmark's results as Markdown, and writing them into docs/benchmarks.md between
// the bench markers (everything outside the markers is written by hand and kept).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const BEGIN = '<!-- bench:begin: written by `npm run bench`; edit outside these markers -->';
const END = '<!-- bench:end -->';
const MB = 1024 * 1024;
const STARTUP = 'start-up (module loading, CLI parsing, inventory)';

const seconds = (r) =>
  r?.error ? `failed: ${r.error}` : r?.median === undefined ? '–' : `${r.median.toFixed(3)} (${r.min.toFixed(3)}–${r.max.toFixed(3)})`;
const ms = (s) => (s === undefined ? '–' : (s * 1000).toFixed(2));
const mib = (bytes) => (bytes === undefined ? '–' : `${(bytes / MB).toFixed(0)} MiB`);
const ratio = (slow, fast) => (slow?.median && fast?.median ? `${(slow.median / fast.median).toFixed(1)}×` : '–');

function table(header, rows) {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function fanoutTable(report, command) {
  const groups = report.fanout.filter((g) => g.command === command);
  const ns = groups.map((g) => g.n);
  const keys = [];
  for (const g of groups) for (const r of g.rows) if (!keys.some((k) => k.tool === r.tool && k.variant === r.variant)) keys.push(r);
  const rows = keys.map((k) => [k.tool, k.variant, ...groups.map((g) => seconds(g.rows.find((r) => r.tool === k.tool && r.variant === k.variant)))]);
  return table(['tool', 'variant', ...ns.map((n) => `N=${n}`)], rows);
}

function find(rows, tool, variant) {
  return rows?.find((r) => r.tool === tool && r.variant === variant);
}

function ratioLines(report) {
  const lines = [];
  for (const g of report.fanout) {
    const ours = find(g.rows, 'distrun', 'resumed TLS');
    const cold = find(g.rows, 'distrun', 'full TLS handshakes');
    const peers = g.rows.filter((r) => r.tool !== 'distrun');
    if (peers.length === 0) continue;
    const parts = peers.map((p) => `${p.tool} ${p.variant}: ${ratio(p, ours)}${cold ? ` (${ratio(p, cold)} cold)` : ''}`);
    lines.push(`- \`${g.command}\`, N=${g.n}: ${parts.join('; ')}`);
  }
  return lines.join('\n');
}

function cpuTable(report) {
  const rows = [];
  for (const g of report.fanout.filter((f) => f.command === 'true')) {
    for (const r of g.rows.filter((row) => !row.error && row.median !== undefined)) {
      rows.push([
        String(g.n),
        r.tool,
        r.variant,
        ms(r.clientCpu / g.n),
        ms(r.serverCpu / g.n),
        ms(r.machineCpu / g.n),
        `${((100 * r.machineCpu) / (r.median * 2)).toFixed(0)}%`,
      ]);
    }
  }
  return table(['N', 'tool', 'variant', 'client', 'server side (agents or sshd, command included)', 'whole machine', 'machine busy (2 cores)'], rows);
}

function brokerTable(report) {
  const b = report.broker;
  const perHost = (value, r) => ms(value === undefined ? undefined : value / r.hosts);
  const rows = b.rows.map((r) => [
    r.path,
    `\`${r.command}\``,
    String(r.hosts),
    String(r.fanout),
    seconds(r),
    perHost(r.clientCpu, r),
    perHost(r.serverCpu, r),
    r.path === 'broker' ? perHost(r.brokerCpu, r) : '–',
    mib(r.maxRss),
    r.messages ? `${(r.messages.toAgents / r.hosts).toFixed(1)} + ${(r.messages.fromAgents / r.hosts).toFixed(1)}` : '–',
  ]);
  return table(
    [
      'path',
      'command',
      'N',
      'fanout',
      'wall s',
      'CLI CPU ms/host',
      'agents CPU ms/host',
      'brokers CPU ms/host',
      'CLI peak RSS',
      'messages/host (to + from agents)',
    ],
    rows,
  );
}

/** The issue's goals for the broker, from the rows of this run. */
function brokerGoalLines(report) {
  const b = report.broker;
  const row = (path, command, hosts, fanout = hosts) =>
    b.rows.find((r) => r.path === path && r.command === command && r.hosts === hosts && r.fanout === fanout && !r.error);
  const lines = [];
  for (const direct of b.rows.filter((r) => r.path === 'direct' && !r.error)) {
    const brokered = row('broker', direct.command, direct.hosts, direct.fanout);
    if (!brokered) continue;
    const cpu = (r) => r.clientCpu / r.hosts;
    lines.push(
      `- \`${direct.command}\`, N=${direct.hosts}, fanout ${direct.fanout}: through the broker ${ratio(brokered, direct)} the direct wall time (goal ≤ 1.5× at N=1,000); CLI CPU per host ${ms(cpu(brokered))} against ${ms(cpu(direct))} ms direct (goal: no more)`,
    );
  }
  const largest = Math.max(...b.rows.filter((r) => r.path === 'broker').map((r) => r.hosts));
  for (const r of b.rows.filter((x) => x.path === 'broker' && x.hosts === largest)) {
    lines.push(
      `- \`${r.command}\`, N=${r.hosts}, fanout ${r.fanout}: ${r.error ? `**failed**: ${r.error}` : `every host accounted for (checked run), ${r.runs} timed runs exit 0`}; CLI peak RSS ${mib(r.maxRss)} (goal < 300 MB)`,
    );
  }
  if (b.brokerRss)
    lines.push(`- nats-server RSS at the end (peak): ${b.brokerRss.map((n) => `${n.name} ${mib(n.rss)} (${mib(n.peak)})`).join(', ')}`);
  return lines.join('\n');
}

function latencyTable(report) {
  const ssh = find(report.latency, 'ssh', 'OpenSSH default KEX');
  const sshCurve = report.latency.find((r) => r.tool === 'ssh' && r.variant !== 'OpenSSH default KEX');
  return table(
    ['command', 'variant', 'median s (min–max)', 'vs ssh (default KEX)', 'vs ssh (curve25519)'],
    report.latency.map((r) => [
      r.tool,
      r.variant,
      seconds(r),
      ssh ? `${(r.median / ssh.median).toFixed(2)}×` : '–',
      sshCurve ? `${(r.median / sshCurve.median).toFixed(2)}×` : '–',
    ]),
  );
}

function streamTable(report) {
  const perGiB = (cpu, r) => (cpu === undefined || !r.bytes ? '–' : (cpu / (r.bytes / 2 ** 30)).toFixed(2));
  return table(
    [
      'tool',
      'variant',
      'MB/s (10^6 B/s, median)',
      'seconds (min–max)',
      'client CPU s per GiB',
      'server CPU s per GiB (agent or sshd, with the command)',
    ],
    report.stream.map((r) => [r.tool, r.variant, r.mbPerS ? r.mbPerS.toFixed(0) : '–', seconds(r), perGiB(r.clientCpu, r), perGiB(r.serverCpu, r)]),
  );
}

function exactTable(report) {
  const tools = [...new Set(report.exact.map((e) => e.tool))];
  const whats = [...new Set(report.exact.map((e) => e.what))];
  return table(
    ['file', ...tools],
    whats.map((what) => [
      what,
      ...tools.map((tool) => {
        const e = report.exact.find((x) => x.tool === tool && x.what === what);
        return e.exact ? 'yes (sha256 equal)' : `**no** (${e.bytes} of ${e.expectedBytes} B)`;
      }),
    ]),
  );
}

const GiB = 1024 * MB;
const mbPerS = (r) => (r?.median ? r.delivered / r.median / 1e6 : undefined);

function copyTable(report) {
  const c = report.copy;
  const perGiB = (cpu, r) => (cpu === undefined || !r.delivered ? '–' : (cpu / (r.delivered / GiB)).toFixed(2));
  const rows = [];
  for (const g of c.groups) {
    for (const r of g.rows) {
      rows.push([
        String(g.n),
        r.tool,
        r.variant,
        mbPerS(r) ? mbPerS(r).toFixed(0) : '–',
        seconds(r),
        perGiB(r.clientCpu, r),
        perGiB(r.serverCpu, r),
        r.maxRss === undefined ? '–' : mib(r.maxRss),
      ]);
    }
  }
  return table(
    [
      'N',
      'tool',
      'variant',
      'MB/s delivered (N × size / median)',
      'seconds (min–max)',
      'client CPU s per GiB delivered',
      'server CPU s per GiB delivered (agents or sshd, receivers included)',
      'distrun peak RSS',
    ],
    rows,
  );
}

function copyLines(report) {
  const c = report.copy;
  const lines = [];
  for (const g of c.groups) {
    const ours = find(g.rows, 'distrun', 'resumed TLS');
    const peers = g.rows.filter((r) => r.tool !== 'distrun');
    if (peers.length > 0)
      lines.push(`- N=${g.n}: distrun against ${peers.map((p) => `${p.tool}: ${ratio(p, ours)}`).join('; ')} (above 1× = distrun faster)`);
  }
  const r = c.recopy;
  if (r) {
    lines.push(
      `- The same file again to ${r.n} hosts that have it (every host \`unchanged\`, nothing sent): ${seconds(r)} s${r.serverCpu === undefined ? '' : `; CPU: client ${r.clientCpu.toFixed(2)} s, agents ${r.serverCpu.toFixed(2)} s`}`,
    );
  }
  return lines.join('\n');
}

function memoryTable(report) {
  const m = report.memory;
  const rows = [];
  if (m.cli1000)
    rows.push(['distrun peak RSS, `uname -n` on 1,000 hosts, fanout 1000', mib(m.cli1000.maxRss), 'under 200 MB', `exit ${m.cli1000.code}`]);
  if (m.cli1000DefaultFanout)
    rows.push([
      'distrun peak RSS, 1,000 hosts, default fanout',
      mib(m.cli1000DefaultFanout.maxRss),
      'under 200 MB',
      `exit ${m.cli1000DefaultFanout.code}`,
    ]);
  if (m.slowReader) {
    const s = m.slowReader;
    rows.push([
      `agent RSS while its client reads ${mib(s.bytes)} at ${(report.settings.slowRate / 1e6).toFixed(0)} MB/s for ${s.slowSeconds} s, then at full speed`,
      `before ${mib(s.before)}, peak while slow ${mib(s.peakSlow)}, peak overall ${mib(s.peak)}`,
      'under 100 MB',
      `${s.received === s.bytes ? 'every byte arrived' : `**${s.received} of ${s.bytes} B**`}, exit ${s.code}`,
    ]);
  }
  if (m.sessions1000) {
    const s = m.sessions1000;
    rows.push([
      'one agent holding 1,000 concurrent sessions (`sleep 15`)',
      `before ${mib(s.before)}, peak ${mib(s.peak)}; ${s.concurrent} commands at once`,
      'under 300 MB',
      `exit ${s.code}${s.error ? `: ${s.error}` : ''}`,
    ]);
  }
  return table(['what', 'measured', 'target', 'check'], rows);
}

function profileTable(report) {
  const p = report.profile;
  const buckets = [...new Set([...p.client.keys(), ...p.agent.keys()])];
  const total = (map) => [...map.values()].reduce((a, b) => a + b, 0);
  // Start-up happens once per process: shown whole, not per host.
  const once = (map) => map.get(STARTUP) ?? 0;
  const rows = buckets
    .filter((b) => b !== STARTUP)
    .map((b) => [b, (p.client.get(b) ?? 0) / p.sessions, (p.agent.get(b) ?? 0) / p.agentSessions])
    .sort((a, b) => b[1] + b[2] - a[1] - a[2])
    .map(([b, c, a]) => [b, c.toFixed(3), a.toFixed(3)]);
  rows.push([
    '**total per host**',
    ((total(p.client) - once(p.client)) / p.sessions).toFixed(3),
    ((total(p.agent) - once(p.agent)) / p.agentSessions).toFixed(3),
  ]);
  rows.push([`${STARTUP}, once per process`, `${once(p.client).toFixed(0)} ms`, `${once(p.agent).toFixed(0)} ms`]);
  return table(['where', `client ms per host (one run of ${p.sessions} hosts)`, `agent ms per session (${p.agentSessions} sessions)`], rows);
}

function targetsTable(report) {
  const rows = [];
  const at200 = report.fanout.find((g) => g.command === 'true' && g.n === 200);
  const ours = find(at200?.rows, 'distrun', 'resumed TLS');
  const cold = find(at200?.rows, 'distrun', 'full TLS handshakes');
  const check = (ok) => (ok === undefined ? 'not measured' : ok ? 'met' : '**not met**');
  for (const [variant, factor] of [
    ['curve25519-sha256', 5],
    ['OpenSSH default KEX', 17],
  ]) {
    const pdsh = find(at200?.rows, 'pdsh', variant);
    const value = pdsh?.median && ours?.median ? pdsh.median / ours.median : undefined;
    const coldValue = pdsh?.median && cold?.median ? pdsh.median / cold.median : undefined;
    rows.push([
      `N=200 \`true\`: ≥ ${factor}× faster than pdsh (${variant})`,
      value ? `${value.toFixed(1)}× (full handshakes: ${coldValue?.toFixed(1)}×)` : '–',
      check(value && value >= factor),
    ]);
  }
  // Issue #18: the same-run ratios at N=50, the CPU per session and per host at N=200, one host against ssh/curve25519.
  const at50 = report.fanout.find((g) => g.command === 'true' && g.n === 50);
  const ratio = (a, b) => (a?.median && b?.median ? a.median / b.median : undefined);
  const perHost = (value) => (value !== undefined && at200 ? (1000 * value) / at200.n : undefined);
  const one = find(report.latency, 'distrun', 'resumed TLS');
  const sshFast = find(report.latency, 'ssh', 'curve25519-sha256');
  // [target, value, how it is shown, whether it is met]
  for (const [what, value, show, met] of [
    [
      'N=50 `true`: ≥ 4× faster than pdsh (curve25519-sha256)',
      ratio(find(at50?.rows, 'pdsh', 'curve25519-sha256'), find(at50?.rows, 'distrun', 'resumed TLS')),
      (v) => `${v.toFixed(1)}×`,
      (v) => v >= 4,
    ],
    [
      'N=200 `true`, full TLS handshakes: ≥ 4× faster than pdsh (curve25519-sha256)',
      ratio(find(at200?.rows, 'pdsh', 'curve25519-sha256'), cold),
      (v) => `${v.toFixed(1)}×`,
      (v) => v >= 4,
    ],
    ['agent CPU per session of `true` ≤ 2.5 ms, command included (N=200)', perHost(ours?.serverCpu), (v) => `${v.toFixed(2)} ms`, (v) => v <= 2.5],
    ['client CPU per host ≤ 1.5 ms (N=200)', perHost(ours?.clientCpu), (v) => `${v.toFixed(2)} ms`, (v) => v <= 1.5],
    ['one host: ≤ 1.0× `ssh host true` with curve25519', ratio(one, sshFast), (v) => `${v.toFixed(2)}×`, (v) => v <= 1.0],
  ]) {
    rows.push([`${what} (issue #18)`, value === undefined ? '–' : show(value), check(value === undefined ? undefined : met(value))]);
  }
  const at1000 = report.fanout.find((g) => g.command === 'true' && g.n === 1000);
  const r1000 = find(at1000?.rows, 'distrun', 'resumed TLS');
  rows.push([
    'N=1000 completes, no host lost',
    r1000 ? (r1000.error ? r1000.error : `${r1000.median.toFixed(2)} s, exit 0 every run`) : '–',
    check(r1000 ? !r1000.error : undefined),
  ]);
  const ds = find(report.stream, 'distrun', '-N (raw stdout)');
  const aes = find(report.stream, 'ssh', 'aes128-gcm');
  rows.push([
    'stream ≥ ssh aes128-gcm, byte-exact',
    ds?.mbPerS && aes?.mbPerS ? `${ds.mbPerS.toFixed(0)} vs ${aes.mbPerS.toFixed(0)} MB/s` : '–',
    check(ds?.mbPerS && aes?.mbPerS ? ds.mbPerS >= aes.mbPerS && report.exact.filter((e) => e.tool === 'distrun').every((e) => e.exact) : undefined),
  ]);
  const lat = find(report.latency, 'distrun', 'resumed TLS');
  const latCold = find(report.latency, 'distrun', 'full TLS handshake');
  const ssh = find(report.latency, 'ssh', 'OpenSSH default KEX');
  rows.push([
    'single host within 1.2× of `ssh host true`',
    lat && ssh ? `${(lat.median / ssh.median).toFixed(2)}× (full handshake ${(latCold.median / ssh.median).toFixed(2)}×)` : '–',
    check(lat && ssh ? lat.median <= 1.2 * ssh.median : undefined),
  ]);
  const m = report.memory;
  rows.push(['CLI < 200 MB at 1,000 hosts', mib(m.cli1000?.maxRss), check(m.cli1000 ? m.cli1000.maxRss < 200e6 && m.cli1000.code === 0 : undefined)]);
  rows.push([
    'agent < 100 MB under a slow reader',
    mib(m.slowReader?.peak),
    check(m.slowReader ? m.slowReader.peak < 100e6 && m.slowReader.received === m.slowReader.bytes : undefined),
  ]);
  rows.push([
    'agent < 300 MB with 1,000 sessions',
    mib(m.sessions1000?.peak),
    check(m.sessions1000 ? m.sessions1000.peak < 300e6 && m.sessions1000.code === 0 : undefined),
  ]);
  const c = report.copy;
  if (c) {
    const size = `${mib(c.bytes)}`;
    const at = (n) => c.groups.find((g) => g.n === n)?.rows;
    const one = find(at(1), 'distrun', 'resumed TLS');
    const scp = at(1)?.find((r) => r.tool === 'scp+xargs');
    rows.push([
      `copy ${size} to 1 host: ≥ scp aes128-gcm (issue #17)`,
      mbPerS(one) && mbPerS(scp) ? `${mbPerS(one).toFixed(0)} vs ${mbPerS(scp).toFixed(0)} MB/s` : '–',
      check(mbPerS(one) && mbPerS(scp) ? mbPerS(one) >= mbPerS(scp) : undefined),
    ]);
    const ten = find(at(10), 'distrun', 'resumed TLS');
    const pdcp = at(10)?.find((r) => r.tool === 'pdcp -R ssh');
    rows.push([
      `copy ${size} to 10 hosts: ≥ 3× faster than pdcp (issue #17)`,
      ten?.median && pdcp?.median ? `${(pdcp.median / ten.median).toFixed(2)}×` : '–',
      check(ten?.median && pdcp?.median ? pdcp.median / ten.median >= 3 : undefined),
    ]);
    const re = c.recopy;
    const comparable = re?.n === 10 && c.bytes >= GiB;
    rows.push([
      'unchanged re-copy of 1 GiB to 10 hosts < 3 s (issue #17)',
      re?.median ? `${re.median.toFixed(2)} s (${size}, ${re.n} hosts)` : re?.error ? `failed: ${re.error}` : '–',
      comparable && re.median ? check(re.median < 3) : 'not measured at 1 GiB and 10 hosts',
    ]);
  }
  return table(['target (issue #6; copy: #17; speed, round two: #18)', 'measured', ''], rows);
}

export function renderReport(report) {
  const s = report.settings;
  const v = report.versions;
  const parts = [
    BEGIN,
    `## Results (${report.date}, \`npm run bench\`, ${(report.durationS / 60).toFixed(1)} min)`,
    '',
    `Machine: ${report.machine.cpu}, ${report.machine.memory}, ${report.machine.os}. Client, agents and sshd share it.`,
    `Versions: Node.js ${v.node}; ${v.distrun}; ${v.openssh ?? 'no OpenSSH'}; ${v.pdsh ?? 'no pdsh'}; ${v.hyperfine}.`,
    `Times are wall seconds, median (min–max) of ${s.runs} runs after one warm-up, from hyperfine; every tool's output was checked once before timing.`,
    ...report.notes.map((n) => `Note: ${n}`),
    '',
  ];
  if (report.fanout.length > 0) {
    parts.push(
      '### Fan-out: `true` on N hosts (fanout N)',
      '',
      fanoutTable(report, 'true'),
      '',
      '### Fan-out: `uname -n` on N hosts (fanout N)',
      '',
      fanoutTable(report, 'uname -n'),
      '',
      'Speed-up of distrun (resumed TLS) over each peer in the same run:',
      '',
      ratioLines(report),
      '',
      '### CPU per host, `true` (milliseconds)',
      '',
      cpuTable(report),
      '',
    );
  }
  if (report.latency.length > 0) parts.push('### One host: `distrun -H host true` against `ssh host true`', '', latencyTable(report), '');
  if (report.stream.length > 0) parts.push(`### Streaming ${mib(s.streamBytes)} of stdout from one host`, '', streamTable(report), '');
  if (report.exact.length > 0) parts.push('### Byte-exact output (`cat FILE` on one host, sha256 of what arrived)', '', exactTable(report), '');
  if (report.copy?.groups.length > 0) {
    parts.push(
      `### Copying a ${mib(report.copy.bytes)} file to N hosts (\`distrun copy\` against pdcp and scp × N)`,
      '',
      `Median (min–max) of ${report.copy.runs} runs, no warm-up (an untimed checked run comes first); every host's destination is emptied (and \`sync\`ed) before each run; destinations on ${report.copy.fstype}. distrun fsyncs each file before its rename; scp and pdcp do not. Peak RSS from the checked run (\`/usr/bin/time\`).`,
      '',
      copyTable(report),
      '',
      copyLines(report),
      '',
    );
  }
  if (Object.keys(report.memory).length > 0) parts.push('### Memory', '', memoryTable(report), '');
  if (report.broker?.rows.length > 0) {
    parts.push(
      `### Through a broker: ${report.broker.nodes} nats-server nodes on loopback (issue 19)`,
      '',
      `The same ${report.broker.agents} agent processes answer the direct hosts (by address) and the brokered ones (by name, through the cluster). Median (min–max) of ${report.broker.runs} runs after one checked run (exit 0, and for \`uname -n\` a line from every host by name), resumed TLS. CPU per host from hyperfine (CLI) and /proc (agents with their commands; nats-server nodes). Messages: NATS messages delivered to and published by the agents in the checked run (nats-server's /connz).`,
      '',
      brokerTable(report),
      '',
      brokerGoalLines(report),
      '',
    );
  }
  if (report.profile) {
    parts.push(
      '### Where the time goes (`node --cpu-prof`)',
      '',
      'Samples of one distrun run on 200 hosts (resumed TLS) and of one agent that served 1,001 sessions of `true`, bucketed by the innermost frame that says what the time was for. "native" is time with no JavaScript on the stack: OpenSSL\'s handshake and record crypto, system calls and the event loop.',
      '',
      profileTable(report),
      '',
    );
  }
  parts.push('### Targets', '', targetsTable(report), '', END, '');
  return parts.join('\n');
}

export function writeReport(file, text) {
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\n';
  const begin = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  const next =
    begin !== -1 && end > begin ? current.slice(0, begin) + text.trimEnd() + current.slice(end + END.length) : `${current.trimEnd()}\n\n${text}`;
  writeFileSync(file, next);
}
