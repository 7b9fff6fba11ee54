// An agent that lies: a real TLS server process with a genuine agent certificate of the
// test PKI (so distrun accepts it), which answers every session with frames the test
// chose — a compromised host, whose failure reasons and version strings are whatever it likes.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { SETPRIV, addCleanup, type Pki } from './fleet.js';

const SERVER = fileURLToPath(new URL('./hostile-agent-server.js', import.meta.url));

/** Starts it for the agent bundle `name`; resolves with its port once it listens. */
export async function startHostileAgent(pki: Pki, name: string, reply: Buffer[]): Promise<number> {
  const child = spawn(SETPRIV, ['--pdeathsig', 'SIGKILL', '--', process.execPath, SERVER, pki.agent(name), Buffer.concat(reply).toString('base64')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  addCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'close');
    }
  });
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  return Number(chunk.toString().trim());
}
