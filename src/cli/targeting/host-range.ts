// Host ranges, as ClusterShell and pdsh write them: `web[01-20]`, `web[1-3,7,10-12].example.com`,
// `rack[1-2]-node[01-04]`, steps `n[1-10/2]`, and Ansible's `www[01:50:2]`. Expansion keeps
// zero padding and follows ClusterShell's padding rules (Ansible's for the colon form), so a
// range one of them refuses is refused here too rather than read one way of several.
// Folding, the inverse, is ClusterShell's own algorithm (host-fold.ts). Pure functions, no I/O.
import { UsageError } from '../../errors.js';

export { foldHosts } from './host-fold.js';

/** Expanding more than this many names from one pattern is refused (a typo like [1-9999999]). */
const MAX_EXPANSION = 100_000;

// One element inside brackets. ClusterShell's N, N-M, N-M/S (spaces allowed around - and /,
// as it allows them), or Ansible's N:M[:S].
const DASH_ELEMENT = /^(\d+)(?:\s*-\s*(\d+))?(?:\s*\/\s*(\d*))?$/;
const COLON_ELEMENT = /^(\d+):(\d+)(?::(\d*))?$/;
// What a bracket holds when it is meant as a range but is malformed: `[1,,2]`, `[3-]`, `[-5]`.
const RANGE_CHARACTERS = /^[\d\s,\-/:]*$/;
// An IPv6 literal such as `[::1]` or `[2001:db8::1]` is part of an address, not a range.
const IPV6_LIKE = /^[\da-f:.]*$/i;

const isPadded = (digits: string) => digits.length > 1 && digits.startsWith('0');

interface Element {
  readonly lo: string;
  readonly hi: string;
  readonly step: bigint;
  /** Digits every expanded number is zero-padded to (0: none). */
  readonly width: number;
}

function parseElement(part: string, pattern: string): Element {
  const text = part.trim();
  const where = `'${text}' in '${pattern}'`;
  const dash = DASH_ELEMENT.exec(text);
  const colon = dash ? null : COLON_ELEMENT.exec(text);
  if (!dash && !colon) throw new UsageError(text === '' ? `empty range in '${pattern}'` : `invalid range ${where}`);
  const [, lo, hiText, stepText] = (dash ?? colon)!;
  const hi = hiText ?? lo!;
  if (stepText === '') throw new UsageError(`range ${where} has an empty step`);
  if (dash && stepText !== undefined && hiText === undefined) {
    throw new UsageError(`a step needs a range (${where}): write N-M/STEP`);
  }
  if (BigInt(hi) < BigInt(lo!)) throw new UsageError(`range ${where} goes backwards`);
  // ClusterShell: a padded bound on either side needs both bounds of one width (an end of
  // only zeros does not count as padded: it accepts 0-00). Ansible (N:M): a padded start
  // needs an end of its width. Either way 01-100 is refused by both.
  const endPadded = dash ? isPadded(hi) && BigInt(hi) !== 0n : false;
  if ((isPadded(lo!) || endPadded) && lo!.length !== hi.length) {
    const refused = isPadded(lo!) ? 'ClusterShell and Ansible refuse' : 'ClusterShell refuses';
    throw new UsageError(
      `range ${where} mixes widths: ${lo} has ${lo!.length} digits and ${hi} has ${hi.length} (${refused} this too); ${paddingAdvice(lo!, hi)}`,
    );
  }
  const step = stepText === undefined ? 1n : BigInt(stepText);
  if (step < 1n) throw new UsageError(`range step in '${pattern}' must be at least 1`);
  return { lo: lo!, hi, step, width: isPadded(lo!) ? lo!.length : 0 };
}

// How to write a range whose bounds have different widths: one part per width, or one width.
function paddingAdvice(lo: string, hi: string): string {
  if (isPadded(lo) && hi.length > lo.length) {
    const next = `1${'0'.repeat(lo.length)}`;
    return `write ${lo}-${'9'.repeat(lo.length)},${next === hi ? next : `${next}-${hi}`}`;
  }
  const width = Math.max(lo.length, hi.length);
  return `write ${lo.padStart(width, '0')}-${hi.padStart(width, '0')} or ${BigInt(lo)}-${BigInt(hi)}`;
}

function expandElements(elements: readonly Element[], pattern: string): string[] {
  const out: string[] = [];
  for (const { lo, hi, step, width } of elements) {
    const start = BigInt(lo);
    const end = BigInt(hi);
    if ((end - start) / step + BigInt(out.length) >= BigInt(MAX_EXPANSION)) {
      throw new UsageError(`'${pattern}' expands to more than ${MAX_EXPANSION} names`);
    }
    for (let n = start; n <= end; n += step) out.push(String(n).padStart(width, '0'));
  }
  return out;
}

/** True when `text` (the inside of brackets) is a range list rather than, say, an IPv6 address. */
function isRangeList(text: string): boolean {
  return (
    text.length > 0 &&
    text.split(',').every((part) => {
      const t = part.trim();
      return DASH_ELEMENT.test(t) || COLON_ELEMENT.test(t);
    })
  );
}

// Brackets that are kept as written: part of an IPv6 address, or text that is no range at
// all (Ansible's alphabetic `[a:f]`, which this reader does not expand). Anything else is a
// range, and a range-looking typo (`[1,,2]`, `[3-]`) is an error rather than a host name.
function isLiteralBracket(inside: string): boolean {
  if (isRangeList(inside)) return false;
  if (IPV6_LIKE.test(inside) && (inside.includes('::') || inside.split(':').length > 3)) return true;
  return !RANGE_CHARACTERS.test(inside);
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
    if (isLiteralBracket(inside)) {
      results = results.map((r) => r + rest.slice(0, close + 1));
      rest = rest.slice(close + 1);
      continue;
    }
    // A malformed list goes through the element parser too, which names what is wrong.
    const values = expandElements(
      inside.split(',').map((part) => parseElement(part, pattern)),
      pattern,
    );
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
