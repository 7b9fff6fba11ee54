// The ssh side of the side-by-side: a private sshd on this machine answering on every
// loopback address (one sshd for all hosts, as in ../shared/bench/peers.sh), its keys,
// and ssh client configurations that map h0001.. to the same addresses as the agents.
// Public-key login only, for this user from 127.0.0.0/8 only; nothing else is touched.
// For the copy section a second port (`perHostPort`) runs every session in a mount
// namespace of its own with the host's directory bound over the shared destination path,
// as the copy section's agents do (pdcp writes one DEST path on every host).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { hostAddress, hostName } from './loopback-fleet.mjs';
import { have, processCpuSeconds, runSync, shellQuote, sleep } from './tools.mjs';

const SSHD = '/usr/sbin/sshd';
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

/** Why the ssh peers cannot be measured here, or undefined when they can. */
export function sshUnavailable() {
  if (!have('ssh') || !have(SSHD)) return 'ssh/sshd not installed (apt-get install openssh-client openssh-server)';
  if (process.getuid?.() !== 0) return 'sshd needs root for a login session';
  return undefined;
}

export class PrivateSshd {
  constructor(work, port) {
    this.dir = join(work, 'ssh');
    this.port = port;
    this.user = userInfo().username;
  }

  /**
   * `perHost` ({ port, hostsDir, target }), when given: sessions on `port` see `hostsDir/hNNNN`
   * at `target`, NNNN being the host whose address the client connected to.
   */
  async start(hosts, perHost) {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const key = (name) => {
      runSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'distrun-bench', '-f', join(this.dir, name)]);
      return readFileSync(join(this.dir, `${name}.pub`), 'utf8').trim();
    };
    const hostKey = key('host_ed25519');
    writeFileSync(join(this.dir, 'authorized_keys'), `${key('id_ed25519')}\n`, { mode: 0o600 });
    writeFileSync(join(this.dir, 'known_hosts'), `bench-loopback ${hostKey.split(' ').slice(0, 2).join(' ')}\n`);
    const config = join(this.dir, 'sshd_config');
    writeFileSync(
      config,
      [
        `Port ${this.port}`,
        ...(perHost ? [`Port ${perHost.port}`] : []),
        // sshd takes at most 16 ListenAddress lines; AllowUsers keeps it to loopback clients.
        'ListenAddress 0.0.0.0',
        `HostKey ${join(this.dir, 'host_ed25519')}`,
        `PidFile ${join(this.dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(this.dir, 'authorized_keys')}`,
        `AllowUsers ${this.user}@127.0.0.0/8`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'UsePAM no',
        'UseDNS no',
        'StrictModes no',
        'MaxStartups 1000',
        'MaxSessions 1000',
        'LogLevel ERROR',
        // Debian's bash reads ~/.bashrc for commands from sshd unless SHLVL is set: skip the
        // login's rc files, so the remote side is a plain `bash -c CMD` as on a clean host.
        'SetEnv SHLVL=1',
        // scp speaks SFTP by default since OpenSSH 9.0.
        `Subsystem sftp ${existsSync(SFTP_SERVER) ? SFTP_SERVER : 'internal-sftp'}`,
        ...(perHost ? [`Match LocalPort ${perHost.port}`, `  ForceCommand ${this.perHostScript(perHost)}`] : []),
        '',
      ].join('\n'),
    );
    this.perHostPort = perHost?.port;
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const check = runSync(SSHD, ['-t', '-f', config]);
    if (check.code !== 0) throw new Error(`sshd rejects its configuration: ${check.stderr.trim()}`);
    this.child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    this.child.stderr.on('data', (c) => {
      stderr += c;
    });
    this.hosts = hosts;
    this.configs = new Map();
    // Ready when a login works.
    const probe = this.clientConfig('default');
    for (let waited = 0; ; waited += 100) {
      if (runSync('ssh', ['-F', probe, hostName(1), 'true']).code === 0) return this;
      if (this.child.exitCode !== null || waited > 10_000) {
        await this.stop(); // a half-started sshd must not outlive the bench
        throw new Error(`sshd did not start: ${stderr.trim()}`);
      }
      await sleep(100);
    }
  }

  /** The ForceCommand of the per-host port: the session's own mount namespace, then the command asked for. */
  perHostScript({ hostsDir, target }) {
    const file = join(this.dir, 'per-host-dest.sh');
    writeFileSync(
      file,
      [
        '#!/bin/bash',
        '# SSH_CONNECTION is "client port server-address port"; server address 127.0.X.Y is host (X-2)*250+Y.',
        'set -e',
        'read -r _ _ address _ <<<"$SSH_CONNECTION"',
        'IFS=. read -r _ _ x y <<<"$address"',
        'host=$(printf h%04d $(( (x - 2) * 250 + y )))',
        `exec unshare --mount --propagation private bash -c 'mount --bind "$1" "$2" && exec bash -c "$SSH_ORIGINAL_COMMAND"' bash ${shellQuote(`${hostsDir}/`)}"$host" ${shellQuote(target)}`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    return file;
  }

  /** An ssh_config file for every host, with OpenSSH's default key exchange or the one named. */
  clientConfig(kex) {
    if (this.configs.has(kex)) return this.configs.get(kex);
    const file = join(this.dir, `ssh_config.${kex}`);
    const lines = [];
    for (let i = 1; i <= this.hosts; i += 1) lines.push(`Host ${hostName(i)}`, `  HostName ${hostAddress(i)}`);
    lines.push(
      'Host *',
      `  Port ${this.port}`,
      `  User ${this.user}`,
      `  IdentityFile ${join(this.dir, 'id_ed25519')}`,
      '  IdentitiesOnly yes',
      '  BatchMode yes',
      // Every host shows the same key: one alias, checked strictly.
      '  HostKeyAlias bench-loopback',
      `  UserKnownHostsFile ${join(this.dir, 'known_hosts')}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      // Cold connections every time, as the agents' numbers are without multiplexing too.
      '  ControlMaster no',
      '  ControlPath none',
      '  Compression no',
      '  LogLevel ERROR',
      ...(kex === 'default' ? [] : [`  KexAlgorithms ${kex}`]),
      '',
    );
    writeFileSync(file, lines.join('\n'));
    this.configs.set(kex, file);
    return file;
  }

  /** A file listing the first `n` host names, one per line (for xargs and pdsh). */
  hostsFile(n) {
    const file = join(this.dir, `hosts.${n}`);
    writeFileSync(file, `${Array.from({ length: n }, (_, i) => hostName(i + 1)).join('\n')}\n`);
    return file;
  }

  /** CPU seconds of sshd and every session it served (reaped children count). */
  cpuSeconds() {
    return processCpuSeconds(this.child.pid);
  }

  /** A command that returns once sshd has no session left (run before each timed run). */
  waitIdleCommand() {
    return ['bash', '-c', `while pgrep -P ${this.child.pid} >/dev/null; do sleep 0.02; done`];
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

export function sshVersion() {
  return runSync('ssh', ['-V']).stderr.trim();
}

export function pdshVersion() {
  return have('pdsh') ? runSync('pdsh', ['-V']).stdout.split('\n')[0].trim() || runSync('pdsh', ['-V']).stderr.split('\n')[0].trim() : undefined;
}
