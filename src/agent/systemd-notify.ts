// Readiness and status for systemd (Type=notify). Node cannot write to a datagram
// socket, so the message goes through systemd-notify, sent on behalf of the agent's
// PID (--pid; root may set the sender PID), which avoids systemd-notify's exit race.
import { spawn } from 'node:child_process';

/** Sends `READY=1`, `STOPPING=1`, `STATUS=...` to systemd when NOTIFY_SOCKET is set; else does nothing. */
export function notifySystemd(fields: Record<string, string>, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (!env.NOTIFY_SOCKET) return Promise.resolve();
  const args = [`--pid=${process.pid}`];
  for (const [key, value] of Object.entries(fields)) {
    if (key === 'READY') args.push('--ready');
    else if (key === 'STATUS') args.push(`--status=${value}`);
    else args.push(`${key}=${value}`);
  }
  return new Promise((resolve) => {
    const child = spawn('systemd-notify', args, { stdio: 'ignore', env });
    child.once('error', () => resolve()); // no systemd-notify: nothing listens either
    child.once('exit', () => resolve());
  });
}
