// A host key of an Ansible inventory as ansible-core reads it (plugins/inventory/__init__.py
// _expand_hostpattern, expand_hostname_range; parsing/utils/addresses.py parse_address):
// `web1:2222` is host web1 with ssh port 2222, `db-[a:f]` and `www[01:50:2]` are ranges,
// `[2001:db8::5]:22` is an IPv6 address with a port. A key parse_address does not accept
// is kept whole, as Ansible keeps it (`web_:22` is one host named so). What Ansible
// rejects (`web[1-3]`, `web[01:100]`) throws Ansible's own message.

/** Ansible's error for a host pattern it cannot expand (its message, word for word). */
export class HostPatternError extends Error {}

const NUMERIC_RANGE = String.raw`\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const HEX_RANGE = String.raw`\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]`;
const ALNUM_RANGE = String.raw`\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const V6 = String.raw`(?:[0-9a-f]{1,4}|${HEX_RANGE})`;
const V4 = String.raw`(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${NUMERIC_RANGE})`;
// Python's \w (str patterns are Unicode): letters, digits, underscore.
const W = String.raw`[\p{L}\p{N}_]`;
const LABEL = String.raw`(?:${W}|${ALNUM_RANGE})(?:${W}|[_-]|${ALNUM_RANGE})*(?<![_-])`;
// Python's `$` also matches before a final newline.
const END = String.raw`(?=\n?$)`;

const BRACKETED_HOSTPORT = new RegExp(String.raw`^\[(.+)\]:([0-9]+)${END}`, 'u');
const HOSTPORT = new RegExp(String.raw`^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)${END}`, 'u');
const IPV4 = new RegExp(String.raw`^(?:${V4}\.){3}${V4}${END}`, 'iu');
// As in addresses.py, `^` binds the first alternative only and `$` the last one, and
// re.match anchors every alternative at the start: the sticky flag does the same here.
const IPV6 = new RegExp(
  [
    String.raw`^(?:${V6}:){7}${V6}`,
    String.raw`(?:${V6}:){1,6}:`,
    String.raw`(?:${V6}:)(?::${V6}){1,6}`,
    String.raw`(?:${V6}:){2}(?::${V6}){1,5}`,
    String.raw`(?:${V6}:){3}(?::${V6}){1,4}`,
    String.raw`(?:${V6}:){4}(?::${V6}){1,3}`,
    String.raw`(?:${V6}:){5}(?::${V6}){1,2}`,
    String.raw`(?:${V6}:){6}(?::${V6})`,
    String.raw`:(?::${V6}){1,6}`,
    String.raw`${V6}?::`,
    String.raw`(?:0:){6}(?:${V6}\.){3}${V6}`,
    String.raw`::(?:ffff:)?(?:${V6}\.){3}${V6}`,
    String.raw`(?:0:){5}ffff:(?:${V6}\.){3}${V6}${END}`,
  ].join('|'),
  'iuy',
);
const HOSTNAME = new RegExp(String.raw`^${LABEL}(?:\.${LABEL})*${END}`, 'iu');

const matchAtStart = (re: RegExp, text: string): RegExpExecArray | null => {
  re.lastIndex = 0;
  return re.exec(text);
};

/** parse_address(address, allow_ranges=True), or undefined where it raises. */
function parseAddress(address: string): { host: string; port: number } | { host: string; port: undefined } | undefined {
  let port: number | undefined;
  for (const re of [BRACKETED_HOSTPORT, HOSTPORT]) {
    const m = matchAtStart(re, address);
    if (m) {
      address = m[1]!;
      port = Number(m[2]);
    }
  }
  if ([IPV4, IPV6, HOSTNAME].some((re) => matchAtStart(re, address))) return { host: address, port };
  return undefined;
}

const ASCII_LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** More hosts than this from one key is refused rather than expanded. */
const MAX_HOSTS = 100_000;

/** Python's int(text), for ASCII digits; undefined where Python raises ValueError (or distrun does not follow). */
function pyInt(text: string): number | undefined {
  const t = text.trim();
  return /^[+-]?[0-9]+(?:_[0-9]+)*$/.test(t) ? Number(t.replace(/_/g, '')) : undefined;
}

/** range(start, stop, step) or a string slice [start:stop:step], as Python gives them. */
function pyRange(start: number, stop: number, step: number): number[] {
  if (step === 0) throw new HostPatternError('range() arg 3 must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) {
    out.push(i);
    if (out.length > MAX_HOSTS) throw new HostPatternError(`the range names more than ${MAX_HOSTS} hosts`);
  }
  return out;
}

const zfill = (text: string, width: number): string => {
  const sign = text[0] === '-' || text[0] === '+' ? text[0] : '';
  const digits = sign ? text.slice(1) : text;
  return sign + digits.padStart(width - sign.length, '0');
};

/** expand_hostname_range: the first [...] expanded, then the rest, recursively. */
function expandHostnameRange(line: string): string[] {
  if (line === '') return [];
  const parts = line.replace('[', '|').replace(']', '|').split('|');
  if (parts.length !== 3) throw new HostPatternError(`not enough values to unpack in ${JSON.stringify(line)} (a range needs [ and ], and no |)`);
  const [head, nrange, tail] = parts as [string, string, string];
  const bounds = nrange.split(':');
  if (bounds.length !== 2 && bounds.length !== 3) throw new HostPatternError('host range must be begin:end or begin:end:step');
  let beg = bounds[0]!;
  const end = bounds[1]!;
  const step = bounds.length === 2 ? '1' : bounds[2]!;
  if (!beg) beg = '0';
  if (!end) throw new HostPatternError('host range must specify end value');
  let fill = (x: string): string => x;
  if (beg[0] === '0' && beg.length > 1) {
    const rlen = beg.length;
    if (rlen !== end.length) throw new HostPatternError('host range must specify equal-length begin and end formats');
    fill = (x) => zfill(x, rlen);
  }
  let seq: string[];
  const iBeg = ASCII_LETTERS.indexOf(beg);
  const iEnd = ASCII_LETTERS.indexOf(end);
  const letterStep = pyInt(step);
  if (iBeg >= 0 && iEnd >= 0 && letterStep !== undefined && letterStep !== 0) {
    if (iBeg > iEnd) throw new HostPatternError('host range must have begin <= end');
    seq = pyRange(iBeg, iEnd + 1, letterStep).map((i) => ASCII_LETTERS[i]!);
  } else {
    const [b, e, s] = [pyInt(beg), pyInt(end), pyInt(step)];
    if (b === undefined || e === undefined || s === undefined) {
      throw new HostPatternError(`invalid literal for int() with base 10 in range [${nrange}]`);
    }
    seq = pyRange(b, e + 1, s).map(String);
  }
  const hosts: string[] = [];
  for (const item of seq) {
    const name = `${head}${fill(item)}${tail}`;
    if (name.includes('[')) hosts.push(...expandHostnameRange(name));
    else hosts.push(name);
    if (hosts.length > MAX_HOSTS) throw new HostPatternError(`the range names more than ${MAX_HOSTS} hosts`);
  }
  return hosts;
}

/** _expand_hostpattern: the host names of a key, and the ssh port it gives (if any). */
export function expandAnsibleHostPattern(key: string): { hosts: string[]; port: number | undefined } {
  const parsed = parseAddress(key);
  const pattern = parsed ? parsed.host : key;
  const port = parsed ? parsed.port : undefined;
  return { hosts: pattern.includes('[') ? expandHostnameRange(pattern) : [pattern], port };
}
