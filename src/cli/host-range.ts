// Host ranges, as pdsh and ClusterShell write them: `web[01-20]`, `web[1-3,7,10-12].example.com`,
// `rack[1-2]-node[01-04]`, and Ansible's `www[01:50:2]` (with a step). Expansion keeps
// zero padding; folding is the inverse (`web01,web02,web03,web07` → `web[01-03,07]`).
// Pure functions, no I/O.
import { UsageError } from '../errors.js';

/** Expanding more than this many names from one pattern is refused (a typo like [1-9999999]). */
export const MAX_EXPANSION = 100_000;

// One element inside brackets: N, N-M (pdsh/clush) or N:M[:S] (Ansible); each bound may be padded.
const ELEMENT = /^(\d+)(?:([-:])(\d+)(?::(\d+))?)?$/;

/** True when `text` (the inside of brackets) is a range list rather than, say, an IPv6 address. */
export function isRangeList(text: string): boolean {
  return text.length > 0 && text.split(',').every((part) => ELEMENT.test(part.trim()));
}

function expandRangeList(text: string, pattern: string): string[] {
  const out: string[] = [];
  for (const part of text.split(',')) {
    const [, lo, sep, hi, stepText] = ELEMENT.exec(part.trim())!;
    if (sep === '-' && stepText !== undefined) throw new UsageError(`invalid range '${part}' in '${pattern}'`);
    const start = Number(lo);
    const end = hi === undefined ? start : Number(hi);
    const step = stepText === undefined ? 1 : Number(stepText);
    if (end < start) throw new UsageError(`range '${part}' in '${pattern}' goes backwards`);
    if (step < 1) throw new UsageError(`range step in '${pattern}' must be at least 1`);
    if ((end - start) / step + out.length >= MAX_EXPANSION) {
      throw new UsageError(`'${pattern}' expands to more than ${MAX_EXPANSION} names`);
    }
    // Padding comes from the lower bound as written: 01-20 → two digits, 1-20 → none.
    const width = lo!.length > 1 && lo!.startsWith('0') ? lo!.length : 0;
    for (let n = start; n <= end; n += step) out.push(String(n).padStart(width, '0'));
  }
  return out;
}

/**
 * Expands every bracketed range of `pattern` (cartesian product, left to right). Brackets
 * that do not hold a range list (an IPv6 literal such as `[::1]`) are left as they are.
 */
export function expandHostPattern(pattern: string): string[] {
  let results = [''];
  let rest = pattern;
  for (;;) {
    const open = rest.indexOf('[');
    if (open < 0) break;
    const close = rest.indexOf(']', open);
    if (close < 0) throw new UsageError(`unclosed '[' in '${pattern}'`);
    const inside = rest.slice(open + 1, close);
    const literal = rest.slice(0, open);
    if (!isRangeList(inside)) {
      results = results.map((r) => r + rest.slice(0, close + 1));
      rest = rest.slice(close + 1);
      continue;
    }
    const values = expandRangeList(inside, pattern);
    if (results.length * values.length > MAX_EXPANSION) {
      throw new UsageError(`'${pattern}' expands to more than ${MAX_EXPANSION} names`);
    }
    results = results.flatMap((r) => values.map((v) => r + literal + v));
    rest = rest.slice(close + 1);
  }
  return results.map((r) => r + rest);
}

/** Splits `text` on any of `separators` outside brackets (ranges hold commas and colons). */
export function splitOutsideBrackets(text: string, separators: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '[') depth += 1;
    if (ch === ']') depth = Math.max(0, depth - 1);
    if (depth === 0 && separators.includes(ch)) {
      items.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  items.push(current);
  return items.map((s) => s.trim()).filter(Boolean);
}

/** Splits a comma-separated list on the commas that are not inside brackets. */
export function splitHostList(list: string): string[] {
  return splitOutsideBrackets(list, ',');
}

/** Expands a comma-separated list of host patterns, keeping order and dropping repeats. */
export function expandHostList(list: string): string[] {
  return [...new Set(splitHostList(list).flatMap(expandHostPattern))];
}

// A name split around its last run of digits: prefix, digits, suffix.
const LAST_NUMBER = /^(.*?)(\d+)(\D*)$/;

const isPadded = (digits: string) => digits.length > 1 && digits.startsWith('0');

// Two numbers can share a run when the run's padding expands to both: 9,10 (unpadded)
// and 08,09,10 (width 2) can; 9,010 cannot.
function continues(previous: string, next: string): boolean {
  if (Number(next) !== Number(previous) + 1) return false;
  return next.length === previous.length || (!isPadded(previous) && !isPadded(next));
}

function foldNumbers(numbers: string[]): string {
  const sorted = [...new Set(numbers)].sort((a, b) => Number(a) - Number(b) || a.length - b.length);
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && continues(sorted[j]!, sorted[j + 1]!)) j++;
    parts.push(i === j ? sorted[i]! : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * Folds host names into the shortest range notation that expands back to them:
 * `web01,web02,web03,web07,db1` → `db1,web[01-03,07]`. Groups are sorted by prefix.
 */
export function foldHosts(names: readonly string[]): string {
  const groups = new Map<string, { prefix: string; suffix: string; numbers: string[] }>();
  const plain = new Set<string>();
  for (const name of new Set(names)) {
    const m = LAST_NUMBER.exec(name);
    // Names with brackets or without digits are kept as they are.
    if (!m || name.includes('[')) {
      plain.add(name);
      continue;
    }
    const [, prefix, digits, suffix] = m;
    const key = `${prefix}\0${suffix}`;
    const group = groups.get(key) ?? { prefix: prefix!, suffix: suffix!, numbers: [] };
    group.numbers.push(digits!);
    groups.set(key, group);
  }
  const folded = [...groups.values()].map(({ prefix, suffix, numbers }) => {
    const body = foldNumbers(numbers);
    return numbers.length === 1 || !body.includes(',') && !body.includes('-') ? `${prefix}${body}${suffix}` : `${prefix}[${body}]${suffix}`;
  });
  return [...plain, ...folded].sort().join(',');
}
