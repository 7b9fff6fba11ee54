// terminal-text.ts: what reaches a terminal from a host can only print text, keep its
// layout and colour it; everything else is shown. Examples, then properties (fast-check).
import test from 'ava';
import fc from 'fast-check';
import { neutralizeOutput, visibleText } from '../src/cli/terminal-text.js';

const out = (bytes: string | Buffer) => neutralizeOutput(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1')).toString('latin1');

test("the issue's forged line: title, CR and erase are shown, so the line keeps its own prefix", (t) => {
  t.is(out('ok\x1b]0;TITLE\x07\r\x1b[2Kweb2: deploy OK\n'), 'ok^[]0;TITLE^G^M^[[2Kweb2: deploy OK\n');
});

test('OSC 52, DCS, cursor moves and other C0 controls are shown in caret notation', (t) => {
  t.is(out('\x1b]52;c;cm0gLXJmIH4=\x07'), '^[]52;c;cm0gLXJmIH4=^G');
  t.is(out('\x1bP+q544e\x1b\\'), '^[P+q544e^[\\');
  t.is(out('\x1b[1A\x1b[H\x1b[?1049h\x1b[>4;2m\x1bc'), '^[[1A^[[H^[[?1049h^[[>4;2m^[c');
  t.is(out('a\bb\x00\x7f\x0b\x0c'), 'a^Hb^@^?^K^L');
});

test('layout and colours are kept; a line that leaves colours on is reset before its newline', (t) => {
  t.is(out('a\tb\r\nc\n'), 'a\tb\r\nc\n');
  t.is(out('\x1b[1;31mred\x1b[0m plain\n'), '\x1b[1;31mred\x1b[0m plain\n');
  t.is(out('\x1b[38:2::255:0:0mx\r\n'), '\x1b[38:2::255:0:0mx\x1b[0m\r\n');
  t.is(out('\x1b[8mhidden\nnext\n'), '\x1b[8mhidden\x1b[0m\nnext\n', 'conceal stops at the end of its line');
  t.is(out('\x1b[31mno newline'), '\x1b[31mno newline\x1b[0m');
  t.is(out('\x1b[31m\x1b[mreset\n'), '\x1b[31m\x1b[mreset\n');
  t.is(out('\r\r\n'), '^M\r\n');
});

test('C1 controls and bidi controls as <U+...>; bytes outside valid UTF-8 as \\xHH; other UTF-8 kept', (t) => {
  const utf8 = (s: string) => neutralizeOutput(Buffer.from(s, 'utf8')).toString('utf8');
  t.is(utf8('\u009b2J\u0085'), '<U+009B>2J<U+0085>');
  t.is(utf8('abc\u202edef\u2066\u200f'), 'abc<U+202E>def<U+2066><U+200F>');
  t.is(utf8('héllo wörld ✓ 日本 🙂'), 'héllo wörld ✓ 日本 🙂');
  t.is(out(Buffer.from([0x9b, 0x32, 0x4a])), '\\x9b2J', 'an 8-bit CSI');
  t.is(out(Buffer.from([0xe2, 0x82, 0x41])), '\\xe2\\x82A', 'a truncated sequence');
  t.is(out(Buffer.from([0xc0, 0xaf])), '\\xc0\\xaf', 'an overlong form');
  t.is(out(Buffer.from([0xed, 0xa0, 0x80])), '\\xed\\xa0\\x80', 'a surrogate');
  t.is(out(Buffer.from([0xf4, 0x90, 0x80, 0x80])), '\\xf4\\x90\\x80\\x80', 'above U+10FFFF');
});

test('marks: what is shown can be set apart (reverse video on a colour terminal), one mark per run', (t) => {
  const marked = neutralizeOutput(Buffer.from('a\x07\r\x1b]b'), (s) => `[${s}]`).toString();
  t.is(marked, 'a[^G^M^[]]b');
});

test("an agent's text is one line: newlines, tabs, colours and lone surrogates are shown too", (t) => {
  t.is(visibleText('denied\ndistrun: web2: ok'), 'denied^Jdistrun: web2: ok');
  t.is(visibleText('\x1b[31mred\x1b[0m\tx\r'), '^[[31mred^[[0m^Ix^M');
  t.is(visibleText('agent/1.0 \u009b\u202e'), 'agent/1.0 <U+009B><U+202E>');
  t.is(visibleText('a\ud800b'), 'a\ufffdb');
  t.is(visibleText('distrunner-agent/0.1.0 (übung)'), 'distrunner-agent/0.1.0 (übung)');
});

// ---- properties -------------------------------------------------------------

const fragments = ['\x1b', '\x1b[', '\x1b]', '31', ';', ':', 'm', '0', '\r', '\n', '\t', '\x07', '\b', '\x7f', ' ', 'a', '\\', '^']
  .map((s) => Buffer.from(s, 'latin1'))
  .concat(
    [[0x9b], [0xc2], [0xc2, 0x9b], [0xe2, 0x80, 0xae], [0xe2, 0x80], [0xf0, 0x9f, 0x99, 0x82], [0xed, 0xa0, 0x80], [0xff]].map((b) => Buffer.from(b)),
  );
const hostile = fc
  .array(
    fc.oneof(
      fc.constantFrom(...fragments),
      fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a)),
    ),
    { maxLength: 40 },
  )
  .map((parts) => Buffer.concat(parts));

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const SGR = /^\x1b\[[0-9;:]*m/;
const CONTROL_CODE_POINT = /[\u0080-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/** What a terminal must never get from a host: the checks are independent of the implementation. */
function unsafeIn(bytes: Buffer): string | undefined {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return 'not valid UTF-8';
  }
  if (CONTROL_CODE_POINT.test(text)) return 'a C1 or bidi control';
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x0d && text[i + 1] !== '\n') return 'a CR not before LF';
    if (c === 0x1b && !SGR.test(text.slice(i))) return 'an ESC that does not start SGR';
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x1b) || c === 0x7f) return `control 0x${c.toString(16)}`;
  }
  return undefined;
}

test('property: whatever the bytes, the output holds nothing but text, tab, newline, CR LF and SGR', (t) => {
  fc.assert(fc.property(hostile, (bytes) => unsafeIn(neutralizeOutput(bytes)) === undefined));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => unsafeIn(neutralizeOutput(Buffer.from(bytes))) === undefined));
  t.pass();
});

test('property: styles never cross a newline (the last SGR of every line is a reset)', (t) => {
  fc.assert(
    fc.property(hostile, (bytes) => {
      for (const line of neutralizeOutput(bytes).toString('latin1').split('\n')) {
        const sgrs = line.match(/\x1b\[[0-9;:]*m/g) ?? [];
        const last = sgrs[sgrs.length - 1];
        if (last !== undefined && !/^\x1b\[[0;]*m$/.test(last)) return false;
      }
      return true;
    }),
  );
  t.pass();
});

test('property: text that is already safe passes unchanged', (t) => {
  const safeChar = fc
    .string({ unit: 'grapheme', maxLength: 60 })
    .map((s) => s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\r]/gu, ''));
  fc.assert(fc.property(safeChar, (text) => neutralizeOutput(Buffer.from(text)).equals(Buffer.from(text))));
  t.pass();
});

test('property: line by line gives the same bytes as all at once; a second pass changes nothing; nothing shrinks', (t) => {
  fc.assert(
    fc.property(fc.array(hostile, { maxLength: 6 }), (pieces) => {
      const lines = pieces.map((p) => Buffer.concat([p.filter((b) => b !== 0x0a), Buffer.from('\n')]));
      const whole = neutralizeOutput(Buffer.concat(lines));
      return (
        whole.equals(Buffer.concat(lines.map((l) => neutralizeOutput(l)))) &&
        neutralizeOutput(whole).equals(whole) &&
        whole.length >= Buffer.concat(lines).length
      );
    }),
  );
  t.pass();
});

test("property: an agent's text comes out as one line of printable text", (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (text) => {
      const shown = visibleText(text);
      return !/[\u0000-\u001f\u007f]/.test(shown) && !CONTROL_CODE_POINT.test(shown) && shown.length >= [...text].length;
    }),
  );
  t.pass();
});
