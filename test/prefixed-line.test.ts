// A host's line under its prefix on a terminal (prefixed-line.ts): a carriage return
// inside the line writes the prefix again; CRs before the newline end the line. Pure.
import test from 'ava';
import fc from 'fast-check';
import { prefixedLine } from '../src/cli/output/prefixed-line.js';
import { neutralizeOutput } from '../src/cli/terminal-text.js';

const P = Buffer.from('web1: ');
const asIs = (b: Buffer) => b;
const out = (line: string, show: (b: Buffer) => Buffer = asIs) =>
  Buffer.concat(prefixedLine(Buffer.from(line, 'latin1'), P, show)).toString('latin1');

test('a line without CR is the prefix and the line', (t) => {
  t.is(out('hello\n'), 'web1: hello\n');
  t.is(out('\n'), 'web1: \n');
  t.is(out('no newline yet'), 'web1: no newline yet');
});

test('a CR inside a line returns to the start of the row and writes the prefix again', (t) => {
  t.is(out('12%\r50%\r100%\n'), 'web1: 12%\rweb1: 50%\rweb1: 100%\n');
  // A run of CRs is one return; CRs at the start move nothing.
  t.is(out('a\r\r\rb\n'), 'web1: a\rweb1: b\n');
  t.is(out('\r\rstart\n'), 'web1: start\n');
  // An incomplete rest that ends in CRs: nothing is written for them yet.
  t.is(out('50%\r'), 'web1: 50%');
});

test("CRs before the newline are the line end: one CR LF (a pty sends CR CR LF for a program's CR LF)", (t) => {
  t.is(out('exit\r\n'), 'web1: exit\r\n');
  t.is(out('exit\r\r\n'), 'web1: exit\r\n');
  t.is(out('a\rb\r\r\n'), 'web1: a\rweb1: b\r\n');
  t.is(out('\r\r\n'), 'web1: \r\n');
});

test('each piece is neutralised on its own, so a host cannot erase or forge the prefix written after its CR', (t) => {
  const show = (b: Buffer) => neutralizeOutput(b);
  t.is(out('ok\x1b]0;T\x07\r\x1b[2Kweb2: deploy OK\n', show), 'web1: ok^[]0;T^G\rweb1: ^[[2Kweb2: deploy OK\n');
  // Colours left on before a CR are reset before the prefix is written again.
  t.is(out('\x1b[31mred\rplain\r\n', show), 'web1: \x1b[31mred\x1b[0m\rweb1: plain\r\n');
});

test("property: every CR written is followed by the prefix or ends the line, and the text between is the line's", (t) => {
  const byte = fc.constantFrom(...'ab \r\n\x1b['.split('')).map((c) => c);
  fc.assert(
    fc.property(fc.array(byte, { maxLength: 40 }), (chars) => {
      const text = chars.join('');
      const nl = text.indexOf('\n');
      const line = nl === -1 ? text : text.slice(0, nl + 1);
      const written = out(line);
      // Every CR: directly before LF at the end, or directly before the prefix.
      for (let i = written.indexOf('\r'); i !== -1; i = written.indexOf('\r', i + 1)) {
        if (!(written.slice(i) === '\r\n' || written.startsWith('web1: ', i + 1))) return false;
      }
      // Without CRs and prefixes, the same visible text as the line without its CRs.
      return (
        written
          .split('\r')
          .map((s) => s.replace(/^web1: /, ''))
          .join('')
          .replace(/\n$/, '') === line.replace(/\r/g, '').replace(/\n$/, '') && written.startsWith('web1: ')
      );
    }),
    { numRuns: 2000 },
  );
  t.pass();
});
