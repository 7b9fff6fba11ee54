// Plain text tables (`distrun runs`, `distrun certs list`): columns padded to their widest
// cell, two spaces apart; the last column is not padded. The first row is the header.
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
