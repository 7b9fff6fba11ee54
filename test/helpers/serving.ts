import type { ExecutionContext } from 'ava';
import { distrun, type RunningAgent } from './fleet.js';

/** After an attack: a legitimate client still gets its command run. */
export async function assertStillServing(t: ExecutionContext, agent: RunningAgent, pkiDir: string, extra: string[] = []): Promise<void> {
  const r = await distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', pkiDir, ...extra, 'echo', 'still-serving']);
  t.is(r.stdout.toString(), '127.0.0.1: still-serving\n', `the agent still serves a legitimate client (${r.stderr.trim()})`);
}
