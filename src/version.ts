import { readFileSync } from 'node:fs';

// package.json is the one place the version is written. It is found by walking up from
// this file, so the same code works from dist/src and from the bundled CLI (dist/src/bin).
function packageVersion(): string {
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'distrunner') return pkg.version;
    } catch {
      // no package.json here
    }
    if (dir.pathname === '/') throw new Error('distrunner: package.json not found above the program');
  }
}

export const SOFTWARE_VERSION: string = packageVersion();
