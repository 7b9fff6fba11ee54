// Run records digest outputs up to DIGEST_LIMIT_BYTES per stream; larger outputs keep
// their size only (hashing would slow a large stream down by half).
import test from 'ava';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIGEST_LIMIT_BYTES } from '../src/cli/output/run-record.js';
import { cleanupAll, distrun, makePki, startAgent, testCacheHome } from './helpers/fleet.js';

test.after.always(cleanupAll);

function newestRecord(): { hosts: Array<{ bytesOut: number; stdoutSha256: string | null; stderrSha256: string | null }> } {
  const dir = join(testCacheHome(), 'distrun', 'runs');
  const newest = readdirSync(dir).sort().pop()!;
  return JSON.parse(readFileSync(join(dir, newest), 'utf8'));
}

test('outputs up to the limit are digested; a larger one records its size and no digest', async (t) => {
  const pki = await makePki(['agent1']);
  const agent = await startAgent(pki, 'agent1');
  const at = ['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir, '-N'];
  const atLimit = await distrun([...at, 'head', '-c', String(DIGEST_LIMIT_BYTES), '/dev/zero']);
  t.is(atLimit.code, 0, atLimit.stderr);
  const [host] = newestRecord().hosts;
  t.is(host!.bytesOut, DIGEST_LIMIT_BYTES);
  t.is(host!.stdoutSha256, createHash('sha256').update(Buffer.alloc(DIGEST_LIMIT_BYTES)).digest('hex'));
  t.is(host!.stderrSha256, createHash('sha256').digest('hex'));

  const over = await distrun([...at, 'head', '-c', String(DIGEST_LIMIT_BYTES + 1), '/dev/zero']);
  t.is(over.code, 0, over.stderr);
  t.is(over.stdout.length, DIGEST_LIMIT_BYTES + 1);
  const [big] = newestRecord().hosts;
  t.is(big!.bytesOut, DIGEST_LIMIT_BYTES + 1);
  t.is(big!.stdoutSha256, null);
});
