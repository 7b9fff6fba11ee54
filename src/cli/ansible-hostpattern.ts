// A host entry of an Ansible inventory as ansible-core reads it: parse_address
// (ansible/parsing/utils/addresses.py) splits off a `:port`, then expand_hostname_range
// (ansible/plugins/inventory/__init__.py) expands `[01:50]`, `[a:f]`, `[1:9:2]` ranges,
// left to right. Ported with their quirks (they decide which hosts exist), not cleaned
// up: a pattern parse_address rejects is still expanded, whole, as Ansible does.
// Pure functions, no I/O.
import { MAX_EXPANSION } from './host-range.js';

/** An error in a host pattern; the reader adds the file and line. */
export class HostPatternError extends Error {}

// Python's \w on str patterns: Unicode letters, numbers and the underscore.
const W = '[\\p{L}\\p{N}_]';
const NUMERIC_RANGE = '\\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\\]';
const HEX_RANGE = '\\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\\]';
const ALNUM_RANGE = '\\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\\]';
const V6 = `(?:[0-9a-f]{1,4}|${HEX_RANGE})`;
const V4 = `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${NUMERIC_RANGE})`;
const LABEL = `(?:${W}|${ALNUM_RANGE})(?:[\\p{L}\\p{N}_-]|${ALNUM_RANGE})*(?<![_-])`;

const BRACKETED_HOSTPORT = /^\[(.+)\]:([0-9]+)$/u;
const HOSTPORT = /^((?:[^:[\]]|\[[^\]]*\])*):([0-9]+)$/u;
const IPV4 = new RegExp(`^(?:${V4}\\.){3}${V4}$`, 'iu');
// As in Python, `^` and `$` bind to the first and last alternatives only, and re.match
// anchors the others at the start but not at the end: `1::zzz` counts as an IPv6 address.
const IPV6 = new RegExp(
  '^(?:' + [
    `(?:${V6}:){7}${V6}`, `(?:${V6}:){1,6}:`, `(?:${V6}:)(?::${V6}){1,6}`, `(?:${V6}:){2}(?::${V6}){1,5}`,
    `(?:${V6}:){3}(?::${V6}){1,4}`, `(?:${V6}:){4}(?::${V6}){1,3}`, `(?:${V6}:){5}(?::${V6}){1,2}`,
    `(?:${V6}:){6}(?::${V6})`, `:(?::${V6}){1,6}`, `${V6}?::`, `(?:0:){6}(?:${V6}\\.){3}${V6}`,
    `::(?:ffff:)?(?:${V6}\\.){3}${V6}`, `(?:0:){5}ffff:(?:${V6}\\.){3}${V6}$`,
  ].join('|') + ')',
  'iu',
);
const HOSTNAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, 'iu');

/** parse_address(address, allow_ranges=True): [host, port], or undefined where it raises. */
export function parseAddress(address: string): { host: string; port: number | undefined } | undefined {
  let port: number | undefined;
  // Both port forms are tried in turn (Python's loop continues): `[h:1]:2` gives h, 1.
  for (const pattern of [BRACKETED_HOSTPORT, HOSTPORT]) {
    const m = pattern.exec(address);
    if (m) {
      address = m[1]!;
      port = Number(m[2]);
    }
  }
  if (![IPV4, IPV6, HOSTNAME].some((p) => p.test(address))) return undefined;
  return { host: address, port };
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Python's int() on a str (ASCII digits): spaces around, a sign, `_` between digits. */
function pyInt(text: string): number {
  const m = /^[ \t\n\r\f\v]*([+-]?)([0-9](?:_?[0-9])*)[ \t\n\r\f\v]*$/.exec(text);
  if (!m) throw new HostPatternError(`invalid literal for int() with base 10: '${text}'`);
  return Number(`${m[1]}${m[2]!.replace(/_/g, '')}`);
}

/** Python's str.zfill. */
function zfill(text: string, width: number): string {
  const sign = /^[+-]/.test(text) ? text[0]! : '';
  const digits = text.slice(sign.length);
  return sign + digits.padStart(width - sign.length, '0');
}

/** expand_hostname_range: the first bracket pair is expanded, the rest recursively. */
export function expandHostnameRange(line: string, out: string[] = []): string[] {
  const parts = line.replace('[', '|').replace(']', '|').split('|');
  if (parts.length !== 3) throw new HostPatternError(`cannot expand the host range in '${line}'`);
  const [head, nrange, tail] = parts as [string, string, string];
  const bounds = nrange.split(':');
  if (bounds.length !== 2 && bounds.length !== 3) throw new HostPatternError('host range must be begin:end or begin:end:step');
  const beg = bounds[0] || '0';
  const end = bounds[1]!;
  const step = bounds[2] ?? '1';
  if (!end) throw new HostPatternError('host range must specify end value');
  let fill = (x: number | string): string => String(x);
  if (beg[0] === '0' && beg.length > 1) {
    if (beg.length !== end.length) throw new HostPatternError('host range must specify equal-length begin and end formats');
    fill = (x) => zfill(String(x), beg.length);
  }
  // string.ascii_letters.index: a substring, so `[ab:c]` is a range too.
  const iBeg = LETTERS.indexOf(beg);
  const iEnd = LETTERS.indexOf(end);
  let seq: Array<number | string> | undefined;
  if (iBeg >= 0 && iEnd >= 0) {
    if (iBeg > iEnd) throw new HostPatternError('host range must have begin <= end');
    const s = /^[ \t\n\r\f\v]*[+-]?[0-9](?:_?[0-9])*[ \t\n\r\f\v]*$/.test(step) ? pyInt(step) : 0;
    // A bad or zero step makes Python fall back to a numeric range, which then fails.
    if (s > 0) seq = [...LETTERS.slice(iBeg, iEnd + 1)].filter((_, i) => i % s === 0);
    else if (s < 0) seq = [];
  }
  if (!seq) {
    const [b, e, s] = [pyInt(beg), pyInt(end), pyInt(step)];
    if (s === 0) throw new HostPatternError('range() arg 3 must not be zero');
    const count = s > 0 ? Math.ceil((e + 1 - b) / s) : Math.ceil((b - e - 1) / -s);
    if (out.length + Math.max(0, count) > MAX_EXPANSION) throw new HostPatternError(`the range in '${line}' names more than ${MAX_EXPANSION} hosts`);
    seq = [];
    for (let x = b; s > 0 ? x < e + 1 : x > e + 1; x += s) seq.push(x);
  }
  for (const x of seq) {
    const name = `${head}${fill(x)}${tail}`;
    if (name.includes('[')) expandHostnameRange(name, out);
    else out.push(name);
    if (out.length > MAX_EXPANSION) throw new HostPatternError(`the range in '${line}' names more than ${MAX_EXPANSION} hosts`);
  }
  return out;
}

/**
 * BaseInventoryPlugin._expand_hostpattern: the host names a pattern stands for and the
 * ssh port it gives them (`web1:2222`), if any.
 */
export function expandAnsibleHostPattern(hostpattern: string): { hostnames: string[]; port: number | undefined } {
  const parsed = parseAddress(hostpattern);
  const pattern = parsed?.host ?? hostpattern;
  const hostnames = pattern.includes('[') ? expandHostnameRange(pattern) : [pattern];
  return { hostnames, port: parsed?.port };
}
