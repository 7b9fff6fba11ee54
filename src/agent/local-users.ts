// Local user accounts for run-as, looked up through NSS (getent) once per (re)load.
import { spawnSync } from 'node:child_process';
import { userInfo } from 'node:os';
import { ConfigError } from '../errors.js';

export interface LocalUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export function lookupUser(name: string): LocalUser {
  const result = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  if (result.error) throw new ConfigError(`cannot look up user '${name}': ${result.error.message}`);
  const line = result.stdout.split('\n')[0] ?? '';
  const fields = line.split(':');
  if (result.status !== 0 || fields.length < 7) throw new ConfigError(`no such user '${name}' (runAs)`);
  return { name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5]!, shell: fields[6]! };
}

/** The user the agent runs as. */
export function agentUser(): LocalUser {
  const info = userInfo();
  return { name: info.username, uid: info.uid, gid: info.gid, home: info.homedir, shell: info.shell ?? '/bin/sh' };
}
