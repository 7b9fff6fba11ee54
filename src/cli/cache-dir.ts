// distrun's cache directory: $XDG_CACHE_HOME/distrun, by default ~/.cache/distrun.
import { homedir } from 'node:os';
import { join } from 'node:path';

export function distrunCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'distrun');
}
