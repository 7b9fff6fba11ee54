// "1 host", "2 hosts": every count the CLI prints goes through here.

/** `n` and the noun, plural unless n is 1 (`plural` for irregular nouns). */
export function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}
