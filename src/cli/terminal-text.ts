// Bytes made safe for a terminal. A host's output, or what an agent says about itself,
// must not be able to talk to the operator's terminal: set its title, write its
// clipboard (OSC 52), move the cursor, erase or rewrite a line (and so forge another
// host's prefixed line). What could is shown visibly instead, as `less -R` does:
//
//   kept      printable text, valid UTF-8, and in output also tab, newline, a carriage
//             return directly before a newline, and SGR colours (ESC [ digits ; : m)
//   shown     C0 controls and DEL in caret notation (ESC ^[, BEL ^G, CR ^M, BS ^H, DEL ^?);
//             C1 controls and bidirectional-text controls as <U+009B>, <U+202E>; every
//             byte that is not part of a valid UTF-8 sequence as \x9b (an 8-bit terminal
//             would read a lone 0x9b as CSI)
//
// Pure: no I/O. Every line is treated on its own (nothing carries over a newline), so a
// buffer of many lines gives the same bytes as its lines one by one.

/** How a neutralised control is written: as it is, or marked (reverse video on a colour terminal). */
type ControlMark = (visible: string) => string;

const asIs: ControlMark = (visible) => visible;

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const ESC = 0x1b;
const DEL = 0x7f;
const SGR_RESET = Buffer.from('\x1b[0m');

/**
 * A host's output lines, safe for a terminal: layout (tab, newline, CR LF) and SGR
 * colours are kept; a line that leaves colours or attributes on gets a reset before its
 * newline (and at its end), so that concealed or coloured text never reaches the next
 * line, which may be another host's.
 */
export function neutralizeOutput(bytes: Buffer, mark: ControlMark = asIs): Buffer {
  return neutralize(bytes, true, mark);
}

/**
 * Text an agent says about itself (a failure reason, its software version), as one
 * line: every control, newline and tab included, is shown, and so are escape
 * sequences, colours included. The result is valid UTF-8 whatever the input.
 */
export function visibleText(text: string): string {
  // Buffer.from turns lone surrogates into U+FFFD: the bytes are UTF-8 from here on.
  return neutralize(Buffer.from(text, 'utf8'), false, asIs).toString('utf8');
}

function neutralize(bytes: Buffer, keepLayout: boolean, mark: ControlMark): Buffer {
  const parts: Buffer[] = [];
  let keptFrom = 0;
  // Controls in a row are marked as one run.
  let shown = '';
  // Whether an SGR sequence left colours or attributes on in the current line.
  let styled = false;
  const flushShown = (): void => {
    if (shown) parts.push(Buffer.from(mark(shown), 'utf8'));
    shown = '';
  };
  const keepUpTo = (end: number): void => {
    if (end <= keptFrom) return;
    flushShown();
    parts.push(bytes.subarray(keptFrom, end));
    keptFrom = end;
  };
  const show = (start: number, end: number, visible: string): void => {
    keepUpTo(start);
    shown += visible;
    keptFrom = end;
  };
  const endLine = (at: number): void => {
    keepUpTo(at);
    flushShown();
    if (!styled) return;
    parts.push(SGR_RESET);
    styled = false;
  };
  let i = 0;
  while (i < bytes.length) {
    const byte = bytes[i]!;
    if (byte >= 0x20 && byte < DEL) {
      i += 1;
      continue;
    }
    if (keepLayout) {
      if (byte === TAB) {
        i += 1;
        continue;
      }
      if (byte === LF || (byte === CR && bytes[i + 1] === LF)) {
        endLine(i);
        i += byte === LF ? 1 : 2;
        continue;
      }
      if (byte === ESC) {
        const sgr = sgrAt(bytes, i);
        if (sgr) {
          styled = !sgr.reset;
          i = sgr.end;
          continue;
        }
      }
    }
    if (byte < 0x20 || byte === DEL) {
      show(i, i + 1, caret(byte));
      i += 1;
      continue;
    }
    const length = utf8SequenceLength(bytes, i);
    if (length === 0) {
      show(i, i + 1, `\\x${byte.toString(16).padStart(2, '0')}`);
      i += 1;
      continue;
    }
    const codePoint = decodeUtf8(bytes, i, length);
    if (isControlCodePoint(codePoint)) show(i, i + length, `<U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}>`);
    i += length;
  }
  endLine(bytes.length);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** ^@ .. ^_ for C0 controls, ^? for DEL. */
function caret(byte: number): string {
  return byte === DEL ? '^?' : `^${String.fromCharCode(byte + 0x40)}`;
}

/**
 * The SGR sequence (ESC [ params m, params of digits, `;` and `:`) starting at `start`,
 * and whether it resets everything (no parameter other than 0); undefined if there is none.
 */
function sgrAt(bytes: Buffer, start: number): { end: number; reset: boolean } | undefined {
  if (bytes[start + 1] !== 0x5b /* [ */) return undefined;
  let reset = true;
  for (let i = start + 2; i < bytes.length; i += 1) {
    const byte = bytes[i]!;
    if (byte === 0x6d /* m */) return { end: i + 1, reset };
    const digit = byte >= 0x30 && byte <= 0x39;
    if (!digit && byte !== 0x3b /* ; */ && byte !== 0x3a /* : */) return undefined;
    if (byte !== 0x30 && byte !== 0x3b) reset = false;
  }
  return undefined;
}

/**
 * Length of the well-formed UTF-8 sequence at `start` (Unicode table 3-7: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 if the byte there starts none.
 */
function utf8SequenceLength(bytes: Buffer, start: number): number {
  const lead = bytes[start]!;
  let length: number;
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead === 0xe0) low = 0xa0;
    if (lead === 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead === 0xf0) low = 0x90;
    if (lead === 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (start + length > bytes.length) return 0;
  const second = bytes[start + 1]!;
  if (second < low || second > high) return 0;
  for (let k = 2; k < length; k += 1) if ((bytes[start + k]! & 0xc0) !== 0x80) return 0;
  return length;
}

function decodeUtf8(bytes: Buffer, start: number, length: number): number {
  let codePoint = bytes[start]! & (0xff >> (length + 1));
  for (let k = 1; k < length; k += 1) codePoint = (codePoint << 6) | (bytes[start + k]! & 0x3f);
  return codePoint;
}

/**
 * C1 controls (U+0080-U+009F: CSI, OSC, DCS... on terminals that take them) and the
 * bidirectional formatting controls, which reorder what follows them on the screen.
 */
function isControlCodePoint(codePoint: number): boolean {
  return (
    (codePoint >= 0x80 && codePoint <= 0x9f) ||
    codePoint === 0x061c ||
    codePoint === 0x200e ||
    codePoint === 0x200f ||
    (codePoint >= 0x202a && codePoint <= 0x202e) ||
    (codePoint >= 0x2066 && codePoint <= 0x2069)
  );
}
