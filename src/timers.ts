// Timers for long delays. setTimeout takes at most 2^31-1 ms (about 24.8 days); a
// longer delay fires at once with a TimeoutOverflowWarning, which would end a command
// with a 30-day limit immediately. This one waits in steps.
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface LongTimer {
  clear(): void;
}

/** Calls `fire` after `delayMs` (any length). Unreferenced: it does not keep the process alive. */
export function setLongTimeout(fire: () => void, delayMs: number): LongTimer {
  let timer: NodeJS.Timeout;
  const deadline = Date.now() + delayMs;
  const arm = (): void => {
    const left = deadline - Date.now();
    timer = setTimeout(left > MAX_DELAY_MS ? arm : fire, Math.max(0, Math.min(left, MAX_DELAY_MS)));
    timer.unref();
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
