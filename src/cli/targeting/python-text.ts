// The two Python parsers Ansible's INI inventory leans on, ported exactly where they
// decide values: shlex.split(line, comments=True) (POSIX mode) for host lines, and
// ast.literal_eval for values, where anything that is not a Python literal stays the text
// it was (ini.py's _parse_value). A literal we cannot represent (complex numbers, sets,
// `...`, `\N{...}`) is an error rather than a guess. Pure functions, no I/O.

export class PythonTextError extends Error {}

/** A Python literal distrun has no form for (complex, set, Ellipsis, ...): refused, not guessed. */
export class NotSupported extends PythonTextError {}

const WHITESPACE = ' \t\r\n';

/** shlex.split(text, comments=True, posix=True). */
export function shlexSplit(text: string): string[] {
  const tokens: string[] = [];
  let token = '';
  let quoted = false;
  let state: ' ' | 'a' | "'" | '"' = ' ';
  let inToken = false;
  const finish = (): void => {
    if (token !== '' || quoted) tokens.push(token);
    token = '';
    quoted = false;
    inToken = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (state === "'" || state === '"') {
      if (c === state) state = 'a';
      else if (c === '\\' && state === '"') {
        const next = text[++i];
        if (next === undefined) throw new PythonTextError('No escaped character');
        // Inside double quotes only the quote and the backslash are escaped.
        token += next === '"' || next === '\\' ? next : `\\${next}`;
      } else token += c;
      continue;
    }
    if (WHITESPACE.includes(c)) {
      if (inToken) finish();
      state = ' ';
      continue;
    }
    // A comment ends the line, also in the middle of a word (shlex's commenters).
    if (c === '#') break;
    inToken = true;
    state = 'a';
    if (c === "'" || c === '"') {
      state = c;
      quoted = true;
    } else if (c === '\\') {
      const next = text[++i];
      if (next === undefined) throw new PythonTextError('No escaped character');
      token += next;
    } else token += c;
  }
  if (state === "'" || state === '"') throw new PythonTextError('No closing quotation');
  if (inToken) finish();
  return tokens;
}

/** Not a Python literal: ast.literal_eval raises ValueError or SyntaxError. */
class NotLiteral extends Error {}

const IDENT_CHAR = /[\p{L}\p{N}_]/u;

/**
 * ini.py's _parse_value: ast.literal_eval(v), or v itself when that raises ValueError or
 * SyntaxError. Tuples come back as arrays; bytes as text (to_text).
 */
export function pythonValue(text: string): unknown {
  try {
    return new LiteralParser(text.replace(/^[ \t]+/, '')).parse();
  } catch (err) {
    if (err instanceof NotLiteral) return text;
    throw err;
  }
}

class LiteralParser {
  private at = 0;
  private depth = 0;
  /** A literal we have no form for, met on the way: refused once the whole text is known to be a literal. */
  private unsupported: string | undefined;
  /** Whether the last number read was imaginary (`2j`). */
  private imaginary = false;

  constructor(private readonly s: string) {}

  parse(): unknown {
    const value = this.tupleOrValue(true);
    this.space();
    if (this.at < this.s.length) throw new NotLiteral();
    if (this.unsupported) throw new NotSupported(this.unsupported);
    return value;
  }

  private space(): void {
    for (;;) {
      while (this.at < this.s.length && ' \t\f'.includes(this.s[this.at]!)) this.at++;
      if (this.s[this.at] === '#') this.at = this.s.length;
      // A line break ends a statement: in eval mode only trailing ones are allowed.
      else if (this.s[this.at] === '\n' || this.s[this.at] === '\r') {
        if (this.s.slice(this.at).trim() !== '') throw new NotLiteral();
        this.at = this.s.length;
      } else return;
    }
  }

  private peek(): string | undefined {
    this.space();
    return this.s[this.at];
  }

  private eat(c: string): boolean {
    if (this.peek() !== c) return false;
    this.at++;
    return true;
  }

  /** `a, b` at the top or in parentheses is a tuple. */
  private tupleOrValue(top: boolean): unknown {
    if (top && this.peek() === undefined) throw new NotLiteral();
    const first = this.value();
    if (this.peek() !== ',') return first;
    const items = [first];
    while (this.eat(',')) {
      const next = this.peek();
      if (next === undefined || next === ')') break;
      items.push(this.value());
    }
    return items;
  }

  private defer(what: string): null {
    this.unsupported ??= `${what} are not supported`;
    return null;
  }

  private value(): unknown {
    if (++this.depth > 100) throw new NotSupported('value nested too deeply');
    try {
      return this.atom();
    } finally {
      this.depth--;
    }
  }

  private atom(): unknown {
    const c = this.peek();
    if (c === undefined) throw new NotLiteral();
    if (c === '(') {
      this.at++;
      if (this.eat(')')) return [];
      const inner = this.tupleOrValue(false);
      if (!this.eat(')')) throw new NotLiteral();
      return inner;
    }
    if (c === '[') return this.sequence(']');
    if (c === '{') return this.mapping();
    if (c === '-' || c === '+') {
      this.at++;
      // Only a plain number may follow a sign, in parentheses or not: `-(1)`, not `-(-1)`.
      let opens = 0;
      while (this.eat('(')) opens++;
      const n = this.number();
      for (; opens > 0; opens--) if (!this.eat(')')) throw new NotLiteral();
      return this.complexSum(c === '-' ? -n : n);
    }
    if (/[0-9.]/.test(c)) {
      if (c === '.' && this.s.startsWith('...', this.at)) {
        this.at += 3;
        return this.defer('Ellipsis (...) values');
      }
      return this.complexSum(this.number());
    }
    const str = this.strings();
    if (str !== undefined) return str;
    const word = /^[\p{L}\p{N}_]+/u.exec(this.s.slice(this.at))?.[0] ?? '';
    this.at += word.length;
    if (word === 'True') return true;
    if (word === 'False') return false;
    if (word === 'None') return null;
    throw new NotLiteral();
  }

  private sequence(close: string): unknown[] {
    this.at++;
    const items: unknown[] = [];
    while (!this.eat(close)) {
      items.push(this.value());
      if (!this.eat(',') && this.peek() !== close) throw new NotLiteral();
    }
    return items;
  }

  private mapping(): Record<string, unknown> | null {
    this.at++;
    const out: Record<string, unknown> = {};
    if (this.eat('}')) return out;
    for (let first = true; ; first = false) {
      const key = this.value();
      if (!this.eat(':')) {
        if (first && (this.peek() === ',' || this.peek() === '}')) return this.setRest();
        throw new NotLiteral();
      }
      if (typeof key !== 'string' && !(typeof key === 'number' && Number.isInteger(key))) this.defer('mapping keys other than text and integers');
      out[String(key)] = this.value();
      if (this.eat('}')) return out;
      if (!this.eat(',')) throw new NotLiteral();
      if (this.eat('}')) return out;
    }
  }

  /** `{a, b}` after its first item: a set. */
  private setRest(): null {
    while (this.eat(',')) {
      if (this.peek() === '}') break;
      this.value();
    }
    if (!this.eat('}')) throw new NotLiteral();
    return this.defer('sets');
  }

  /** literal_eval takes `real + imaginary` (`1+2j`, `-1-2j`): a complex number. */
  private complexSum(n: number): number | null {
    if (this.imaginary) return this.defer('complex numbers');
    const c = this.peek();
    if (c !== '+' && c !== '-') return n;
    const save = this.at;
    this.at++;
    try {
      this.number();
      if (this.imaginary) return this.defer('complex numbers');
    } catch (err) {
      if (!(err instanceof NotLiteral)) throw err;
    }
    this.at = save;
    return n;
  }

  /** Python 3 number literals; `010` and `1__0` are syntax errors there too. */
  private number(): number {
    this.space();
    const rest = this.s.slice(this.at);
    const digits = '[0-9](?:_?[0-9])*';
    const m =
      /^0[xX](?:_?[0-9a-fA-F])+/.exec(rest) ??
      /^0[oO](?:_?[0-7])+/.exec(rest) ??
      /^0[bB](?:_?[01])+/.exec(rest) ??
      new RegExp(`^(?:(?:${digits})?\\.${digits}|${digits}\\.?)(?:[eE][+-]?${digits})?`).exec(rest);
    if (!m) throw new NotLiteral();
    const text = m[0];
    this.imaginary = /^[jJ]/.test(rest.slice(text.length)) && !/^0[xXoObB]/.test(text);
    const after = rest[text.length + (this.imaginary ? 1 : 0)];
    if (after !== undefined && IDENT_CHAR.test(after)) throw new NotLiteral();
    const clean = text.replace(/_/g, '');
    const isFloat = /[.eE]/.test(clean) && !/^0[xX]/.test(clean);
    // A decimal integer may not start with 0 unless it is all zeros.
    if (!isFloat && !this.imaginary && /^0[0-9]/.test(clean) && !/^0+$/.test(clean)) throw new NotLiteral();
    this.at += text.length + (this.imaginary ? 1 : 0);
    if (/^0[oO]/.test(clean)) return parseInt(clean.slice(2), 8);
    if (/^0[bB]/.test(clean)) return parseInt(clean.slice(2), 2);
    const n = Number(clean);
    if (!Number.isFinite(n)) this.defer('numbers beyond a double');
    return n;
  }

  /** One or more adjacent string literals (`'a' "b"` is 'ab'), or undefined if none here. */
  private strings(): string | undefined {
    let out: string | undefined;
    let bytes: boolean | undefined;
    for (;;) {
      this.space();
      const m = /^([rRuUbBfF]{0,2})('''|"""|'|")/.exec(this.s.slice(this.at));
      if (!m) return out;
      const prefix = m[1]!.toLowerCase();
      if (!['', 'r', 'u', 'b', 'br', 'rb', 'f', 'rf', 'fr'].includes(prefix)) throw new NotLiteral();
      // f-strings are JoinedStr nodes: literal_eval rejects them.
      if (prefix.includes('f')) throw new NotLiteral();
      const isBytes = prefix.includes('b');
      if (bytes !== undefined && bytes !== isBytes) throw new NotLiteral();
      bytes = isBytes;
      this.at += m[0].length;
      out = (out ?? '') + this.stringBody(m[2]!, prefix.includes('r'), isBytes);
    }
  }

  private stringBody(quote: string, raw: boolean, bytes: boolean): string {
    let out = '';
    for (;;) {
      if (this.at >= this.s.length) throw new NotLiteral();
      if (this.s.startsWith(quote, this.at)) {
        this.at += quote.length;
        return out;
      }
      const c = this.s[this.at++]!;
      if ((c === '\n' || c === '\r') && quote.length === 1) throw new NotLiteral();
      if (bytes && c.charCodeAt(0) > 127) throw new NotLiteral();
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.s[this.at++];
      if (e === undefined) throw new NotLiteral();
      if (raw) {
        out += `\\${e}`;
        continue;
      }
      out += this.escape(e, bytes);
    }
  }

  private escape(e: string, bytes: boolean): string {
    const simple: Record<string, string> = {
      '\n': '',
      '\\': '\\',
      "'": "'",
      '"': '"',
      a: '\x07',
      b: '\b',
      f: '\f',
      n: '\n',
      r: '\r',
      t: '\t',
      v: '\v',
    };
    if (e in simple) return simple[e]!;
    if (/[0-7]/.test(e)) {
      const m = /^[0-7]{0,2}/.exec(this.s.slice(this.at))![0];
      this.at += m.length;
      const code = parseInt(e + m, 8);
      if (bytes && code > 127) this.defer('non-ASCII bytes values');
      return String.fromCodePoint(code);
    }
    const hexLength = e === 'x' ? 2 : !bytes && e === 'u' ? 4 : !bytes && e === 'U' ? 8 : 0;
    if (hexLength > 0) {
      const hex = this.s.slice(this.at, this.at + hexLength);
      if (!new RegExp(`^[0-9a-fA-F]{${hexLength}}$`).test(hex)) throw new NotLiteral();
      this.at += hexLength;
      const code = parseInt(hex, 16);
      if (code > 0x10ffff) throw new NotLiteral();
      if (bytes && code > 127) this.defer('non-ASCII bytes values');
      return String.fromCodePoint(code);
    }
    if (!bytes && e === 'N') {
      // The character's name decides; distrun has no table of names.
      const name = /^\{[^}]*\}/.exec(this.s.slice(this.at))?.[0];
      if (!name) throw new NotLiteral();
      this.at += name.length;
      this.defer('\\N{...} escapes');
      return '';
    }
    // An unknown escape keeps its backslash.
    return `\\${e}`;
  }
}
