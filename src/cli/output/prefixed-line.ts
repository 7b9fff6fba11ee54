// One line of a host's output under its prefix, for a terminal. A carriage return
// inside the line (a progress bar, a terminal session's redraw) sends the cursor back to
// the start of the row, where the prefix is: it is written again after the CR, so the
// row keeps starting with the real prefix and the text after the CR is shown as the
// host's terminal would show it. The CRs before the newline (a pty's CR LF, a program's
// CR LF turned into CR CR LF by the pty) are the line's end: one CR LF.
//
// Pure: no I/O. `show` makes each piece safe for the terminal (terminal-text.ts); it is
// given pieces without CRs but the final CR LF, so nothing in them can move the cursor.

const CR = 0x0d;
const LF = 0x0a;
const CR_BYTE = Buffer.from('\r');
const LINE_ENDS = { lf: Buffer.from('\n'), crlf: Buffer.from('\r\n'), none: Buffer.alloc(0) };

/** `line` (one line with its newline, or the incomplete rest) as the parts to write, in order. */
export function prefixedLine(line: Buffer, prefix: Buffer, show: (piece: Buffer) => Buffer): Buffer[] {
  let end = line.length;
  let ending = LINE_ENDS.none;
  if (line[end - 1] === LF) {
    end -= 1;
    ending = LINE_ENDS.lf;
    while (end > 0 && line[end - 1] === CR) {
      end -= 1;
      ending = LINE_ENDS.crlf;
    }
  }
  const parts: Buffer[] = [];
  let start = 0;
  // CRs at the start move nothing: the cursor is there already.
  while (start < end && line[start] === CR) start += 1;
  for (;;) {
    const cr = line.indexOf(CR, start);
    const pieceEnd = cr === -1 || cr >= end ? end : cr;
    const last = pieceEnd === end;
    const piece = line.subarray(start, pieceEnd);
    parts.push(...(parts.length === 0 ? [] : [CR_BYTE]), prefix, show(last ? Buffer.concat([piece, ending]) : piece));
    if (last) return parts;
    // A run of CRs is one return to the start of the row.
    start = pieceEnd;
    while (start < end && line[start] === CR) start += 1;
    // An incomplete rest that ends with CRs: nothing follows them yet.
    if (start === end) return parts;
  }
}
