// The operations guide, run for real: npm pack, install the agent into a temporary
// root with scripts/install-agent.sh, check every file, verify the systemd unit, start
// the installed agent from there, ping it, run a command, uninstall.
import { PROTOCOL_VERSION } from '../src/protocol/constants.js';
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, readFileSync, readdirSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupAll, distrun, makePki, tempDir, waitFor } from './helpers/fleet.js';
import { spawn } from 'node:child_process';

const repo = fileURLToPath(new URL('../..', import.meta.url));
test.after.always(cleanupAll);

const mode = (path: string) => statSync(path).mode & 0o7777;

test('install-agent.sh installs into a root; the installed agent runs; uninstall keeps keys unless asked', async (t) => {
  const work = tempDir();
  const root = join(work, 'root');
  execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!);
  const pki = await makePki(['host1']);

  const install = () =>
    spawnSync(
      'bash',
      [join(repo, 'scripts/install-agent.sh'), '--root', root, '--bundle', pki.agent('host1'), '--package', tarball, '--run-as', 'nobody'],
      { encoding: 'utf8' },
    );
  const first = install();
  t.is(first.status, 0, first.stderr);
  t.regex(first.stdout, /writing .*agent\.yaml/);
  t.regex(first.stdout, /configuration OK/);

  const etc = join(root, 'etc/distrunner');
  t.is(mode(etc), 0o750);
  t.is(mode(join(etc, 'agent.key')), 0o600);
  t.is(mode(join(etc, 'agent.crt')), 0o644);
  t.is(mode(join(etc, 'ca.crt')), 0o644);
  t.is(mode(join(etc, 'agent.yaml')), 0o640);
  for (const file of ['agent.key', 'agent.crt', 'agent.yaml']) t.is(statSync(join(etc, file)).uid, 0);
  t.regex(readFileSync(join(etc, 'agent.yaml'), 'utf8'), /^runAs: nobody$/m);
  const unitPath = join(root, 'etc/systemd/system/distrunner-agent.service');
  const unit = readFileSync(unitPath, 'utf8');
  t.regex(unit, /^ExecStart=\/usr\/local\/bin\/distrunner-agent --config \/etc\/distrunner\/agent\.yaml --command-cgroups$/m);
  t.true(lstatSync(join(root, 'usr/local/bin/distrunner-agent')).isSymbolicLink());

  // The agent.yaml is never overwritten.
  writeFileSync(join(etc, 'agent.yaml'), `${readFileSync(join(etc, 'agent.yaml'), 'utf8')}# local edit\n`);
  const second = install();
  t.is(second.status, 0, second.stderr);
  t.regex(second.stdout, /kept the existing .*agent\.yaml/);
  t.regex(readFileSync(join(etc, 'agent.yaml'), 'utf8'), /# local edit/);

  // systemd-analyze verify, offline, on the installed unit (binaries pointed into the root).
  const verifyCopy = join(work, 'distrunner-agent.service');
  writeFileSync(verifyCopy, unit.replaceAll('/usr/local/bin/', `${root}/usr/local/bin/`));
  const verify = spawnSync('systemd-analyze', ['verify', verifyCopy], { encoding: 'utf8' });
  t.is(verify.status, 0, verify.stderr);
  t.is(`${verify.stdout}${verify.stderr}`.trim(), '', 'no warning at all');

  // Start the installed agent from the root (on a free loopback port) and use it.
  const agent = spawn(join(root, 'usr/local/bin/distrunner-agent'), ['--config', join(etc, 'agent.yaml'), '--host', '127.0.0.1', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    let port = 0;
    agent.stdout.on('data', (c: Buffer) => {
      const m = /"port":(\d+),.*"msg":"listening"/.exec(c.toString());
      if (m) port = Number(m[1]);
    });
    t.true(await waitFor(() => port > 0));
    const ping = await distrun(['ping', '-H', `127.0.0.1:${port}`, '--pki', pki.dir]);
    t.is(ping.code, 0, ping.stderr);
    t.regex(ping.stdout.toString(), new RegExp(`ok .* protocol ${PROTOCOL_VERSION}`));
    const id = await distrun(['-H', `127.0.0.1:${port}`, '--pki', pki.dir, 'id', '-un']);
    t.is(id.stdout.toString(), '127.0.0.1: nobody\n', id.stderr);
  } finally {
    agent.kill('SIGTERM');
  }

  const uninstall = spawnSync('bash', [join(repo, 'scripts/uninstall-agent.sh'), '--root', root], { encoding: 'utf8' });
  t.is(uninstall.status, 0, uninstall.stderr);
  t.false(existsSync(unitPath));
  t.false(existsSync(join(root, 'usr/local/lib/node_modules/distrunner')));
  t.true(existsSync(join(etc, 'agent.key')), 'keys are kept');
  const purge = spawnSync('bash', [join(repo, 'scripts/uninstall-agent.sh'), '--root', root, '--purge'], { encoding: 'utf8' });
  t.is(purge.status, 0, purge.stderr);
  t.false(existsSync(etc));
});

test('the shipped systemd unit passes systemd-analyze verify with no warning', (t) => {
  const unit = readFileSync(join(repo, 'systemd/distrunner-agent.service'), 'utf8');
  // The check runs before a reload; a start checks by itself (exit 78, no restart).
  t.regex(unit, /^ExecReload=.* --check-config$/m);
  t.notRegex(unit, /^ExecStartPre=/m);
  t.regex(unit, /^NotifyAccess=main$/m);
  t.regex(unit, /^Delegate=yes$/m);
  t.regex(unit, /^RuntimeDirectory=distrunner$/m);
  t.regex(unit, /^RuntimeDirectoryMode=0700$/m);
  t.regex(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  t.regex(unit, /^RestartPreventExitStatus=64 78$/m);
  t.regex(unit, /^Type=notify$/m);
  // Only the binary's location differs from an installed system: point it at a real file.
  const copy = join(tempDir(), 'distrunner-agent.service');
  writeFileSync(copy, unit.replaceAll('/usr/local/bin/distrunner-agent', '/bin/true'));
  const verify = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
  t.is(verify.status, 0, verify.stderr);
  t.is(`${verify.stdout}${verify.stderr}`.trim(), '');
});

test('install-agent.sh refuses a directory that is not an agent bundle', (t) => {
  const r = spawnSync('bash', [join(repo, 'scripts/install-agent.sh'), '--root', tempDir(), '--bundle', tempDir()], { encoding: 'utf8' });
  t.is(r.status, 1);
  t.regex(r.stderr, /agent\.crt is missing: not an agent bundle/);
});
