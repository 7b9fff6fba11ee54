// Shell-style wildcards with one meaning wherever a name is matched (policy rules for
// client names and programs, host names in the native inventory's expressions): `*` is
// any run of characters, `?` exactly one, everything else literal; the whole value must
// match (`ops-*` matches `ops-bot`, not `x-ops-bot`).

/** Whether `pattern` has a wildcard at all (else it is a plain name). */
export function hasWildcard(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

export function matchesWildcard(pattern: string, value: string): boolean {
  let regex = '^';
  for (const ch of pattern) {
    if (ch === '*') regex += '.*';
    else if (ch === '?') regex += '.';
    else regex += ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  // `s`: a value with a newline is matched whole, not line by line.
  return new RegExp(`${regex}$`, 's').test(value);
}
