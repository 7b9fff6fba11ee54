// Python's pattern languages as Ansible uses them for host patterns, translated to
// JavaScript RegExps that match exactly the same names: fnmatch globs (fnmatch.translate,
// Python 3.11) and `re` regexes (re.match: anchored at the start only). A construct whose
// meaning differs between the two engines is refused, never approximated. Pure.

/** Why a pattern has no translation: Python rejects it too ('invalid'), or only we do. */
export class RegexProblem extends Error {
  constructor(
    message: string,
    readonly kind: 'invalid' | 'unsupported',
  ) {
    super(message);
  }
}

/** One code point as a RegExp escape that means that character in any context ('u' flag). */
const lit = (ch: string): string => `\\u{${ch.codePointAt(0)!.toString(16)}}`;

/**
 * fnmatch.translate: `*`, `?`, `[seq]`, `[!seq]` (ranges, `]` first is literal, reversed
 * ranges dropped), everything else literal; the whole name must match; `*` spans newlines.
 * (Python makes interior `*` atomic and lazy; for patterns of fixed-width pieces that
 * matches the same names as a plain `.*`.)
 */
export function fnmatchRegExp(pat: string): RegExp {
  const chars = [...pat];
  const n = chars.length;
  let out = '';
  let i = 0;
  while (i < n) {
    const c = chars[i]!;
    i += 1;
    if (c === '*') {
      if (!out.endsWith('.*')) out += '.*';
    } else if (c === '?') {
      out += '.';
    } else if (c === '[') {
      let j = i;
      if (j < n && chars[j] === '!') j += 1;
      if (j < n && chars[j] === ']') j += 1;
      while (j < n && chars[j] !== ']') j += 1;
      if (j >= n) {
        out += lit('[');
        continue;
      }
      out += fnmatchClass(chars, i, j);
      i = j + 1;
    } else {
      out += lit(c);
    }
  }
  try {
    return new RegExp(`^(?:${out})$`, 'su');
  } catch (err) {
    // Python's re.compile of translate()'s output fails the same way (a range left backwards).
    throw new RegexProblem((err as Error).message, 'invalid');
  }
}

/** The bracket expression chars[i..j) as translate() builds it, emitted as a JS class. */
function fnmatchClass(chars: string[], start: number, j: number): string {
  const text = chars.slice(start, j);
  let chunks: string[][];
  if (!text.includes('-')) {
    chunks = [text];
  } else {
    // Hyphens split the text into chunks; the hyphen between two chunks is a range.
    chunks = [];
    let i = start;
    let k = chars[start] === '!' ? start + 2 : start + 1;
    for (;;) {
      k = chars.indexOf('-', k);
      if (k < 0 || k >= j) break;
      chunks.push(chars.slice(i, k));
      i = k + 1;
      k += 3;
    }
    const last = chars.slice(i, j);
    if (last.length > 0) chunks.push(last);
    else chunks[chunks.length - 1]!.push('-');
    // Ranges that go backwards are removed (they are invalid in re).
    for (let k2 = chunks.length - 1; k2 > 0; k2--) {
      const prev = chunks[k2 - 1]!;
      const next = chunks[k2]!;
      if (prev[prev.length - 1]! > next[0]!) {
        chunks[k2 - 1] = [...prev.slice(0, -1), ...next.slice(1)];
        chunks.splice(k2, 1);
      }
    }
  }
  const flat = chunks.flat();
  if (flat.length === 0) return '(?!)';
  if (flat.length === 1 && flat[0] === '!') return '.';
  let negate = false;
  if (flat[0] === '!') {
    negate = true;
    chunks[0] = chunks[0]!.slice(1);
  }
  // Characters inside a chunk are literal; consecutive chunks are joined by a range.
  const body = chunks.map((chunk) => chunk.map(lit).join('')).join('-');
  return `[${negate ? '^' : ''}${body}]`;
}

/** Characters Python's str.isspace() accepts, as a class body. */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const CLASS_ESCAPES = 'dDwWsS';
const SIMPLE_ESCAPES: Record<string, string> = { a: '\x07', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/**
 * A Python `re` pattern as re.match applies it (a match must start at the first
 * character, need not reach the end). `names` are the strings it will be tested on: the
 * class escapes \d \w \s \b (and their negations) mean the same in both engines only for
 * printable ASCII, so they are refused when a name is anything else.
 */
export function pythonRegExp(source: string, names: readonly string[]): RegExp {
  const chars = [...source];
  let i = 0;
  let flags = 'u';
  let usesClassEscape = false;
  const unsupported = (what: string): never => {
    throw new RegexProblem(`${what} in a ~regex: Python and JavaScript differ there, so distrun does not accept it`, 'unsupported');
  };
  const invalid = (what: string): never => {
    throw new RegexProblem(what, 'invalid');
  };
  // Global flags must open the pattern (Python 3.11); only (?i) is translated.
  const flagMatch = /^\(\?([a-zA-Z]+)\)/.exec(source);
  if (flagMatch) {
    if (flagMatch[1] !== 'i') unsupported(`the flags (?${flagMatch[1]})`);
    if (!PRINTABLE_ASCII.test(source) || !names.every((n) => PRINTABLE_ASCII.test(n))) unsupported('(?i) with names outside printable ASCII');
    flags += 'i';
    i = flagMatch[0].length;
  }

  /** One escape after a backslash at chars[i-1]; inClass: inside [...]. */
  const readEscape = (inClass: boolean): string => {
    const c = chars[i];
    if (c === undefined) return invalid('bad escape (end of pattern)');
    i += 1;
    if (CLASS_ESCAPES.includes(c)) {
      usesClassEscape = true;
      return c === 's' ? (inClass ? PY_SPACE : `[${PY_SPACE}]`) : c === 'S' && !inClass ? `[^${PY_SPACE}]` : `\\${c}`;
    }
    if (c === 'b') {
      if (inClass) return lit('\b');
      usesClassEscape = true;
      return '\\b';
    }
    if (c === 'B' && !inClass) {
      usesClassEscape = true;
      // Python's \B never matches in an empty string.
      return '\\B(?=[^]|(?<=[^]))';
    }
    if (c === 'A' && !inClass) return '^';
    if (c === 'Z' && !inClass) return '$';
    if (c in SIMPLE_ESCAPES) return lit(SIMPLE_ESCAPES[c]!);
    if (c === 'x' || c === 'u' || c === 'U') {
      const width = c === 'x' ? 2 : c === 'u' ? 4 : 8;
      const hex = chars.slice(i, i + width).join('');
      if (!new RegExp(`^[0-9a-fA-F]{${width}}$`).test(hex)) invalid(`incomplete escape \\${c}${hex}`);
      i += width;
      const code = parseInt(hex, 16);
      if (code > 0x10ffff) invalid(`bad escape \\${c}${hex}`);
      return lit(String.fromCodePoint(code));
    }
    if (/[0-9]/.test(c)) return unsupported('a backreference or octal escape');
    if (c === 'N') return unsupported('\\N{...}');
    if (/[A-Za-z]/.test(c)) return invalid(`bad escape \\${c}`);
    return lit(c);
  };

  const charClass = (): string => {
    // chars[i-1] is '['.
    let out = '[';
    if (chars[i] === '^') {
      out += '^';
      i += 1;
    }
    // ch: a single character (a possible range end); dash: a '-' as written, not escaped.
    const items: Array<{ text: string; ch?: string; dash?: boolean }> = [];
    let first = true;
    for (;;) {
      const c = chars[i];
      if (c === undefined) return invalid('unterminated character set');
      if (c === ']' && !first) {
        i += 1;
        break;
      }
      first = false;
      i += 1;
      if (c === '\\') {
        const before = i;
        const text = readEscape(true);
        const single = chars[before]!;
        items.push(CLASS_ESCAPES.includes(single) ? { text } : { text, ch: text });
      } else {
        items.push({ text: lit(c), ch: c, dash: c === '-' });
      }
    }
    // Ranges: item '-' item, where both ends are single characters.
    for (let k = 0; k < items.length; k++) {
      const item = items[k]!;
      const dash = items[k + 1];
      const end = items[k + 2];
      if (dash?.dash && end) {
        if (item.ch === undefined || end.ch === undefined) invalid('bad character range');
        const lo = decode(item.text);
        const hi = decode(end.text);
        if (lo > hi) invalid('bad character range');
        out += `${item.text}-${end.text}`;
        k += 2;
      } else {
        out += item.text;
      }
    }
    return `${out}]`;
  };

  let out = '';
  let atomStart = true; // nothing to repeat here
  const depthStack: number[] = [];
  while (i < chars.length) {
    const c = chars[i]!;
    i += 1;
    if (c === '\\') {
      const text = readEscape(false);
      out += text;
      atomStart = text === '^' || text === '$' || text === '\\b' || text.startsWith('\\B');
    } else if (c === '[') {
      out += charClass();
      atomStart = false;
    } else if (c === '.') {
      out += '[^\\n]';
      atomStart = false;
    } else if (c === '^') {
      out += '^';
      atomStart = true;
    } else if (c === '$') {
      // Python's $ also matches before a final newline.
      out += '(?=\\n?$)';
      atomStart = true;
    } else if (c === '(') {
      if (chars[i] === '?') {
        const next = chars[i + 1];
        if (next === undefined) invalid('unexpected end of pattern');
        if (next === ':' || next === '=' || next === '!') {
          out += `(?${next}`;
          i += 2;
        } else if (next === '<' && (chars[i + 2] === '=' || chars[i + 2] === '!')) {
          unsupported('a lookbehind');
        } else if (next === 'P' || next === '<') {
          unsupported('a named group');
        } else if (next === '>') {
          unsupported('an atomic group');
        } else if (next === '#') {
          unsupported('a comment group');
        } else if (next === '(') {
          unsupported('a conditional group');
        } else {
          unsupported('inline flags');
        }
      } else {
        out += '(';
      }
      depthStack.push(out.length);
      atomStart = true;
    } else if (c === ')') {
      if (depthStack.length === 0) invalid('unbalanced parenthesis');
      const opened = depthStack.pop()!;
      out += ')';
      atomStart = false;
      // Python repeats a lookahead; JavaScript ('u') rejects that.
      if (/\(\?[=!]$/.test(out.slice(0, opened)) && /^[*+?{]/.test(chars[i] ?? '')) unsupported('a repeated lookahead');
    } else if (c === '|') {
      out += '|';
      atomStart = true;
    } else if (c === '*' || c === '+' || c === '?') {
      if (atomStart) invalid('nothing to repeat');
      out += c;
      if (chars[i] === '?') {
        out += '?';
        i += 1;
      } else if (chars[i] === '+') {
        unsupported('a possessive quantifier');
      }
      if (chars[i] === '*' || chars[i] === '+' || chars[i] === '?' || chars[i] === '{') {
        if (chars[i] !== '{' || quantifier(chars, i)) invalid('multiple repeat');
      }
      atomStart = false;
    } else if (c === '{') {
      const q = quantifier(chars, i - 1);
      if (!q) {
        out += lit('{');
        atomStart = false;
        continue;
      }
      if (atomStart) invalid('nothing to repeat');
      if (q.min !== undefined && q.max !== undefined && q.min > q.max) invalid('min repeat greater than max repeat');
      // Python's MAXREPEAT (JavaScript takes larger counts).
      if ((q.min ?? 0) >= 0xffffffff || (q.max ?? 0) >= 0xffffffff) invalid('the repetition number is too large');
      out += `{${q.min ?? 0},${q.max ?? ''}}`;
      i = q.end;
      if (chars[i] === '?') {
        out += '?';
        i += 1;
      } else if (chars[i] === '+') {
        unsupported('a possessive quantifier');
      }
      if (chars[i] === '*' || chars[i] === '+' || chars[i] === '?' || (chars[i] === '{' && quantifier(chars, i))) invalid('multiple repeat');
      atomStart = false;
    } else {
      out += lit(c);
      atomStart = false;
    }
  }
  if (depthStack.length > 0) invalid('missing ), unterminated subpattern');
  if (usesClassEscape && !names.every((n) => PRINTABLE_ASCII.test(n))) {
    unsupported('\\d, \\w, \\s or \\b with names outside printable ASCII');
  }
  try {
    return new RegExp(`^(?:${out})`, flags);
  } catch (err) {
    return invalid((err as Error).message);
  }
}

/** `{m}`, `{m,}`, `{,n}`, `{m,n}` at chars[at]; anything else is a literal brace in Python. */
function quantifier(chars: string[], at: number): { min?: number; max?: number; end: number } | undefined {
  const m = /^\{(\d*)(?:(,)(\d*))?\}/.exec(chars.slice(at, at + 40).join(''));
  if (!m || (m[1] === '' && m[2] === undefined)) return undefined;
  const min = m[1] === '' ? undefined : Number(m[1]);
  const max = m[2] === undefined ? min : m[3] === '' ? undefined : Number(m[3]);
  return { min, max, end: at + [...m[0]].length };
}

function decode(text: string): number {
  return parseInt(/^\\u\{([0-9a-f]+)\}$/.exec(text)![1]!, 16);
}
