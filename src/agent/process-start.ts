// What the agent does before anything else, before even loading the rest of its code
// (which takes tens of milliseconds). No imports but node:fs, so that it runs at once.
import { closeSync, readdirSync, readFileSync } from 'node:fs';

const O_CLOEXEC = 0o2000000;

let reloadAsked = false;
const noteReload = (): void => {
  reloadAsked = true;
};

/**
 * SIGHUP asks for a reload; its default action ends the process. One that arrives while
 * the agent starts (`systemctl reload` right after start, a config-management run) must
 * not kill it: it is noted here and carried out once the agent serves.
 */
export function holdReloadSignals(): void {
  process.on('SIGHUP', noteReload);
}

/** Replaces the start-up handler with `reload`; returns whether a reload was asked for meanwhile. */
export function takeOverReloadSignals(reload: () => void): boolean {
  process.off('SIGHUP', noteReload);
  process.on('SIGHUP', reload);
  return reloadAsked;
}

/**
 * Closes every descriptor above 2 that the agent inherited: whatever started it may have
 * left files open (a root-only token file, a socket), which every command — run as any
 * user — would inherit in turn. Node's own descriptors are close-on-exec, so a descriptor
 * without that flag at this point was not opened by the agent. Returns those closed.
 */
export function closeInheritedDescriptors(): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc/self/fd');
  } catch {
    return []; // no /proc: nothing to go by
  }
  const closed: number[] = [];
  for (const entry of entries) {
    const fd = Number(entry);
    if (!(fd > 2)) continue;
    let flags: number;
    try {
      flags = parseInt(/^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))?.[1] ?? '', 8);
    } catch {
      continue; // gone already (the directory listing's own descriptor)
    }
    if (Number.isNaN(flags) || (flags & O_CLOEXEC) !== 0) continue;
    try {
      closeSync(fd);
      closed.push(fd);
    } catch {
      // closed meanwhile
    }
  }
  return closed;
}
