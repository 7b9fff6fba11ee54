// Host patterns on an Ansible inventory, as ansible-core's InventoryManager evaluates them
// (ansible/inventory/manager.py 2.14: split_host_pattern, order_patterns,
// _evaluate_patterns, _match_one_pattern, _split_subscript, _apply_subscript,
// _enumerate_matches, _match_list). evaluatePattern is the faithful port: the hosts Ansible
// selects, in its order, with what Ansible would only warn about. selectAnsibleHosts is
// what distrun uses: the same hosts, or an error where Ansible would warn, guess or fall
// back to its implicit localhost. Pure: works on the plain AnsibleView.
import { EmptySelectionError, InventoryError } from '../../errors.js';
import { LOCALHOST_NAMES, type AnsibleView } from './ansible-data.js';
import { fnmatchRegExp, pythonRegExp, RegexProblem } from './python-regex.js';

/**
 * A pattern distrun cannot evaluate: kind 'ansible' where ansible-core fails too (a bad
 * regex, a subscript past the end), 'refused' where only distrun stops (a construct whose
 * result it cannot reproduce exactly), 'strict' where Ansible would go on with a warning.
 */
export class PatternError extends InventoryError {
  constructor(
    readonly detail: string,
    readonly kind: 'ansible' | 'refused' | 'strict',
    file?: string,
  ) {
    super(detail, { file });
  }
}

// ---- split_host_pattern and parse_address ---------------------------------------------

/** Python's str.isspace() characters. */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const pyStrip = (s: string): string => s.replace(new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu'), '');
/** Python's \w in a str pattern: Unicode letters and numbers, and _. */
const W = '\\p{L}\\p{N}_';

// ansible/parsing/utils/addresses.py, for parse_address(pattern, allow_ranges=True).
const NUMERIC_RANGE = '\\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\\]';
const HEX_RANGE = '\\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\\]';
const ALNUM_RANGE = '\\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\\]';
const I6 = `(?:[0-9a-f]{1,4}|${HEX_RANGE})`;
const I4 = `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${NUMERIC_RANGE})`;
const LABEL = `(?:[${W}]|${ALNUM_RANGE})(?:[${W}_-]|${ALNUM_RANGE})*(?<![_-])`;
// Python's `$` also matches before a final newline.
const END = '(?=\\n?$)';
const BRACKETED_HOSTPORT = new RegExp(`^\\[([^\\n]+)\\]:([0-9]+)${END}`, 'u');
const HOSTPORT = new RegExp(`^((?:[^:\\[\\]]|\\[[^\\]]*\\])*):([0-9]+)${END}`, 'u');
const IPV4 = new RegExp(`^(?:${I4}\\.){3}${I4}${END}`, 'iu');
const IPV6 = new RegExp(
  `^(?:(?:${I6}:){7}${I6}|(?:${I6}:){1,6}:|(?:${I6}:)(?::${I6}){1,6}|(?:${I6}:){2}(?::${I6}){1,5}|(?:${I6}:){3}(?::${I6}){1,4}|` +
    `(?:${I6}:){4}(?::${I6}){1,3}|(?:${I6}:){5}(?::${I6}){1,2}|(?:${I6}:){6}(?::${I6})|:(?::${I6}){1,6}|${I6}?::|` +
    `(?:0:){6}(?:${I6}\\.){3}${I6}|::(?:ffff:)?(?:${I6}\\.){3}${I6}|(?:0:){5}ffff:(?:${I6}\\.){3}${I6})${END}`,
  'iu',
);
const HOSTNAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*${END}`, 'iu');

/** parse_address(text, allow_ranges=True) succeeds: one host (with ranges, maybe a port). */
function isAddress(text: string): boolean {
  let address = text;
  for (const re of [BRACKETED_HOSTPORT, HOSTPORT]) {
    const m = re.exec(address);
    if (m) address = m[1]!;
  }
  return [IPV4, IPV6, HOSTNAME].some((re) => re.test(address));
}

/**
 * split_host_pattern: with a comma, the pattern is split on commas only (`a:b,c` is the
 * two patterns `a:b` and `c`); without one, a single host or address (`web[1:3]`, `::1`,
 * `host:22`) stays whole, anything else is split on `:` and whitespace outside brackets.
 */
export function splitHostPattern(pattern: string): string[] {
  let parts: string[];
  if (pattern.includes(',')) parts = pattern.split(',');
  else if (isAddress(pattern)) parts = [pattern];
  else parts = pattern.match(new RegExp(`(?:[^${PY_SPACE}:\\[\\]]|\\[[^\\]]*\\])+`, 'gu')) ?? [];
  return parts.map(pyStrip).filter((p) => p !== '');
}

/** order_patterns: plain patterns first, then `&`, then `!`; `all` when there is no plain one. */
export function orderPatterns(patterns: readonly string[]): string[] {
  const plain = patterns.filter((p) => p !== '' && p[0] !== '!' && p[0] !== '&');
  const and = patterns.filter((p) => p[0] === '&');
  const not = patterns.filter((p) => p[0] === '!');
  return [...(plain.length > 0 ? plain : ['all']), ...and, ...not];
}

// ---- one pattern ------------------------------------------------------------------------

const PATTERN_WITH_SUBSCRIPT = /^([^\n]+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\](?=\n?$)/u;

interface Subscript {
  start: number;
  end: number | null;
  /** The removed `[x-y]` form (Ansible warns and reads it as `[x:y]`). */
  dash: boolean;
}

/** _split_subscript: `g[3]`, `g[-1]`, `g[1:4]` (inclusive), `g[2:]`; never for a ~regex. */
function splitSubscript(pattern: string): { expr: string; subscript?: Subscript } {
  if (pattern[0] === '~') return { expr: pattern };
  const m = PATTERN_WITH_SUBSCRIPT.exec(pattern);
  if (!m) return { expr: pattern };
  const [, expr, idx, start, sep, end] = m;
  if (idx !== undefined) return { expr: expr!, subscript: { start: Number(idx), end: null, dash: false } };
  return { expr: expr!, subscript: { start: Number(start), end: end === '' ? -1 : Number(end), dash: sep === '-' } };
}

/** The name before a subscript (`web` of `web[0]`, `web[1:3]`), as Ansible splits it; else undefined. */
export function subscriptBase(pattern: string): string | undefined {
  return splitSubscript(pattern).subscript ? splitSubscript(pattern).expr : undefined;
}

/** A host a pattern matched, and how: through a group, or by its own name. */
interface Hit {
  host: string;
  from: string;
  ordered: boolean;
}

interface Step {
  /** The pattern as ordered (with its & or ! prefix). */
  pattern: string;
  /** Distinct hosts it matched (before & and ! are applied). */
  matched: number;
  /** Hosts selected after it was applied. */
  selected: number;
  /** For a subscript: the hosts it indexed, and the base pattern. */
  subscript?: { base: string; of: number; text: string; dash: boolean };
  /** Ansible's "Could not match supplied host pattern, ignoring". */
  mismatch: boolean;
  /** The name of Ansible's implicit localhost it matched, if it did. */
  implicit?: string;
  /** Groups whose hosts it brought (for the messages). */
  groups: string[];
}

interface Evaluation {
  /** Ansible's hosts in Ansible's order (list_hosts), implicit localhost included. */
  hosts: string[];
  /** For each host: which pattern brought it, and through what. */
  via: Map<string, { pattern: string; from: string }>;
  /** False when the order rests on a group whose own order is a Python-set accident. */
  exact: boolean;
  /** The patterns in Ansible's order of application, with what each did. */
  steps: Step[];
  /** Ansible's warnings, as it prints them. */
  warnings: string[];
}

class Matcher {
  private readonly groups: Map<string, { hosts: string[]; ordered: boolean }>;
  private readonly hostSet: Set<string>;
  private readonly names: string[];
  implicit: string | undefined;
  /** _pattern_cache: a pattern seen before (without & or !) is not matched, nor warned about, again. */
  readonly cache = new Map<string, { hits: Hit[]; step: Omit<Step, 'selected' | 'pattern'> }>();

  constructor(
    readonly view: AnsibleView,
    readonly file?: string,
  ) {
    this.groups = new Map(view.groups.map((g) => [g.name, g]));
    this.hostSet = new Set(view.hosts);
    this.names = [...this.groups.keys(), ...view.hosts];
  }

  hasHost(name: string): boolean {
    return this.hostSet.has(name);
  }

  /** _match_list: fnmatch, or with `~` a Python regex applied with re.match. */
  private matchList(items: Iterable<string>, pattern: string): string[] {
    let re: RegExp;
    try {
      re = pattern[0] === '~' ? pythonRegExp(pattern.slice(1), this.names) : fnmatchRegExp(pattern);
    } catch (err) {
      if (!(err instanceof RegexProblem)) throw err;
      if (err.kind === 'invalid') throw new PatternError(`invalid host pattern '${pattern}': ${err.message}`, 'ansible', this.file);
      throw new PatternError(`host pattern '${pattern}': ${err.message}`, 'refused', this.file);
    }
    return [...items].filter((item) => re.test(item));
  }

  /** _enumerate_matches: the hosts of matching groups, then (see below) matching hosts. */
  enumerate(pattern: string): { hits: Hit[]; groups: string[]; mismatch: boolean; implicit?: string } {
    const hits: Hit[] = [];
    const groups = this.matchList(this.groups.keys(), pattern);
    for (const name of groups) {
      const group = this.groups.get(name)!;
      for (const host of group.hosts) hits.push({ host, from: `group ${name}`, ordered: group.ordered });
    }
    // Host names are tried when no group matched, or the pattern is a regex or glob.
    if (groups.length === 0 || pattern[0] === '~' || /[.?*[]/.test(pattern)) {
      // Their order is InventoryData's, unknown when read through ansible-inventory --list.
      const ordered = this.view.hostsOrdered !== false;
      for (const host of this.matchList(this.view.hosts, pattern)) hits.push({ host, from: `host ${host}`, ordered });
    }
    let implicit: string | undefined;
    if (hits.length === 0 && LOCALHOST_NAMES.has(pattern) && this.hostSet.has(pattern)) {
      // get_host gives the inventory's own localhost (here when an empty group shares its name).
      hits.push({ host: pattern, from: `host ${pattern}`, ordered: true });
    } else if (hits.length === 0 && LOCALHOST_NAMES.has(pattern)) {
      // get_host creates the implicit localhost once, named as first asked for.
      this.implicit ??= pattern;
      implicit = this.implicit;
      hits.push({ host: implicit, from: 'implicit localhost', ordered: true });
    }
    return { hits, groups, mismatch: hits.length === 0 && groups.length === 0 && pattern !== 'all', implicit };
  }
}

/** _match_one_pattern with _apply_subscript. */
function matchOne(m: Matcher, prefixed: string, warnings: string[]): { hits: Hit[]; step: Omit<Step, 'selected'> } {
  const pattern = prefixed[0] === '&' || prefixed[0] === '!' ? prefixed.slice(1) : prefixed;
  const cached = m.cache.get(pattern);
  if (cached) return { hits: cached.hits, step: { ...cached.step, pattern: prefixed } };
  if (pattern === '') throw new PatternError(`empty host pattern '${prefixed}'`, 'ansible', m.file);
  const { expr, subscript } = splitSubscript(pattern);
  if (subscript?.dash) warnings.push('Use [x:y] inclusive subscripts instead of [x-y] which has been removed');
  const found = m.enumerate(expr);
  if (found.mismatch) warnings.push(`Could not match supplied host pattern, ignoring: ${expr}`);
  let hits = found.hits;
  const step: Omit<Step, 'selected'> = {
    pattern: prefixed,
    matched: 0,
    mismatch: found.mismatch,
    implicit: found.implicit,
    groups: found.groups,
  };
  if (subscript && hits.length > 0) {
    const { start, end } = subscript;
    const text = pattern.slice(expr.length);
    step.subscript = { base: expr, of: hits.length, text, dash: subscript.dash };
    if (hits.some((h) => !h.ordered && h.from.startsWith('host '))) {
      throw new PatternError(
        `cannot take ${pattern}: this inventory was read through ansible-inventory --list, whose JSON does not give the order ` +
          'in which Ansible first met its hosts; name the hosts instead, or use a group',
        'refused',
        m.file,
      );
    }
    const unordered = [...new Set(hits.filter((h) => !h.ordered).map((h) => h.from))];
    if (unordered.length > 0) {
      throw new PatternError(
        `cannot take ${pattern}: the order of the hosts in ${unordered.join(', ')} comes from a Python set in Ansible ` +
          '(nested groups reached through more than one parent), so which host is where is not defined; name the hosts instead',
        'refused',
        m.file,
      );
    }
    // Ansible's `if end:` — an end of 0 reads as no end: g[2:0] is g[2].
    if (end) {
      hits = hits.slice(start, (end === -1 ? hits.length - 1 : end) + 1);
    } else {
      const at = start < 0 ? hits.length + start : start;
      if (at < 0 || at >= hits.length) {
        throw new PatternError(
          `pattern ${pattern} is out of range: ${expr} has ${hits.length} ${hits.length === 1 ? 'host' : 'hosts'} (positions 0 to ${hits.length - 1}, or -1 to -${hits.length})`,
          'ansible',
          m.file,
        );
      }
      hits = [hits[at]!];
    }
  }
  step.matched = new Set(hits.map((h) => h.host)).size;
  m.cache.set(pattern, { hits, step });
  return { hits, step };
}

/** matchOne, with a hint when Ansible's split on ':' cut a regex in two (`~web(?:1|2)`). */
function matchPart(m: Matcher, p: string, warnings: string[], expression: string): ReturnType<typeof matchOne> {
  try {
    return matchOne(m, p, warnings);
  } catch (err) {
    if (!(err instanceof PatternError) || !expression.includes('~') || expression.includes(',') || !expression.includes(':')) throw err;
    throw new PatternError(
      `${err.detail} (a pattern without ',' is split on ':', as Ansible does, which cuts '${expression}' apart; ` +
        `add a ',' to keep the ':' in the regex: '${expression},')`,
      err.kind,
      m.file,
    );
  }
}

/** _evaluate_patterns over split_host_pattern, deduplicated as get_hosts does. */
export function evaluatePattern(view: AnsibleView, expression: string, file?: string): Evaluation {
  const m = new Matcher(view, file);
  const warnings: string[] = [];
  const steps: Step[] = [];
  let hosts: string[] = [];
  const chosen = new Set<string>();
  const via = new Map<string, { pattern: string; from: string }>();
  let exact = true;
  for (const p of orderPatterns(splitHostPattern(expression))) {
    // A plain host name is taken as it is, even when a group has that name too.
    if (m.hasHost(p)) {
      if (!chosen.has(p)) hosts.push(p);
      chosen.add(p);
      if (!via.has(p)) via.set(p, { pattern: p, from: `host ${p}` });
      steps.push({ pattern: p, matched: 1, selected: hosts.length, mismatch: false, groups: [] });
      continue;
    }
    const { hits, step } = matchPart(m, p, warnings, expression);
    const that = new Set(hits.map((h) => h.host));
    if (p[0] === '!' || p[0] === '&') {
      const keep = p[0] === '&';
      hosts = hosts.filter((h) => that.has(h) === keep);
      chosen.clear();
      for (const h of hosts) chosen.add(h);
    } else {
      if (hits.some((h) => !h.ordered)) exact = false;
      for (const hit of hits) {
        if (!chosen.has(hit.host)) hosts.push(hit.host);
        chosen.add(hit.host);
        if (!via.has(hit.host)) via.set(hit.host, { pattern: p, from: hit.from });
      }
    }
    steps.push({ ...step, selected: hosts.length });
  }
  for (const host of [...via.keys()]) if (!chosen.has(host)) via.delete(host);
  return { hosts, via, exact, steps, warnings };
}

// ---- what distrun selects ------------------------------------------------------------------

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Why a pattern matched no group and no host, with a hint for the usual confusions. */
function mismatchMessage(step: Step, expression: string, view: AnsibleView): string {
  const pattern = step.pattern.replace(/^[&!]/, '');
  const base = step.subscript?.base ?? splitSubscript(pattern).expr;
  let hint = '';
  if (base !== pattern) {
    hint = `: in an Ansible pattern, brackets are positions in a group (${base}[0], ${base}[1:3]), not a host range; for host names use a glob or a regex (~${base}[0-9]+)`;
  } else if (pattern.includes(':') && expression.includes(',')) {
    hint = ": a pattern with ',' is split on ',' only, as Ansible does; use ',' throughout (web,&prod,!web1)";
  }
  const known =
    view.groups
      .map((g) => g.name)
      .filter((g) => g !== 'all' && g !== 'ungrouped')
      .sort()
      .join(', ') || 'none';
  const where = base === expression ? '' : ` in '${expression}'`;
  // A regex or a glob names nothing itself: it matched nothing.
  const what = /^~|[*?]/.test(base) ? `no group or host matches '${base}'` : `unknown group or host '${base}'`;
  return `${what}${where} (Ansible would warn and ignore it; known groups: ${known})${hint}`;
}

/** The message for a selection that came out empty, from the step that emptied it. */
function emptyMessage(steps: readonly Step[], expression: string): string {
  const positives = steps.filter((s) => s.pattern[0] !== '&' && s.pattern[0] !== '!');
  if (positives.every((s) => s.matched === 0)) {
    const groups = [...new Set(positives.flatMap((s) => s.groups))];
    if (groups.length > 0)
      return `'${expression}' selects no host: ${groups.length === 1 ? `group ${groups[0]} has` : `groups ${groups.join(', ')} have`} no hosts`;
    return `'${expression}' selects no host`;
  }
  const emptied = steps.findIndex((s, i) => i >= positives.length && s.selected === 0);
  const upTo = steps
    .slice(0, emptied + 1)
    .map((s) => s.pattern)
    .join(':');
  const last = steps[emptied]!;
  if (last.pattern[0] === '&') return `the intersection ${upTo} is empty${upTo === expression ? '' : ` (in '${expression}')`}`;
  return `${upTo} excluded every host${upTo === expression ? '' : ` (in '${expression}')`}`;
}

/**
 * The hosts of -g EXPRESSION on an Ansible inventory: Ansible's hosts in Ansible's order,
 * each with what chose it, or an error where Ansible would warn and go on (an unknown name,
 * an empty selection, the removed [x-y] subscript), use its implicit localhost (a local
 * run, not a host to dial), or index into an order it does not define.
 */
export function selectAnsibleHosts(view: AnsibleView, expression: string, file?: string): Array<{ host: string; via: string }> {
  const result = evaluatePattern(view, expression, file);
  const fail = (message: string): never => {
    throw new PatternError(message, 'strict', file);
  };
  const groups = new Set(view.groups.map((g) => g.name));
  const hosts = new Set(view.hosts);
  for (const step of result.steps) {
    const pattern = step.pattern.replace(/^[&!]/, '');
    if (groups.has(pattern) && hosts.has(pattern)) {
      fail(
        `${pattern} is both a host and a group in this inventory: Ansible takes the host for '${pattern}' but the group ` +
          `for '&${pattern}' and '!${pattern}'; rename one of them`,
      );
    }
    if (step.mismatch) fail(mismatchMessage(step, expression, view));
    if (step.implicit !== undefined && step.pattern !== pattern) {
      // `!localhost`, `&localhost`: Ansible's implicit localhost is in no other pattern's hosts.
      fail(
        `'${step.pattern}': ${step.implicit} is not in the inventory; for Ansible it names its implicit localhost, ` +
          `which no other pattern selects, so it ${step.pattern[0] === '!' ? 'excludes nothing' : 'keeps nothing'}`,
      );
    }
    if (step.implicit !== undefined) {
      fail(
        `${step.implicit} is not in the inventory: Ansible would use its implicit localhost (running on the control machine, ` +
          `without connecting); distrun only runs on hosts it dials: add ${step.implicit} to the inventory or use -H ${step.implicit}`,
      );
    }
    const sub = step.subscript;
    if (sub?.dash) {
      fail(
        `'${pattern}': Ansible reads [x-y] as positions x to y of ${sub.base} (a removed form it still accepts); write ${sub.base}${sub.text.replace('-', ':')} for that`,
      );
    }
    if (sub && step.matched === 0) fail(`pattern ${pattern} is out of range: ${sub.base} has ${plural(sub.of, 'host')}`);
  }
  if (result.hosts.length === 0)
    throw new EmptySelectionError(`${file ? `${file}: ` : ''}the selection is empty: ${emptyMessage(result.steps, expression)}`);
  return result.hosts.map((host) => {
    const { pattern, from } = result.via.get(host)!;
    const same = from === `group ${pattern}` || from === `host ${pattern}`;
    const how = same ? from : `${from} by '${pattern}'`;
    return { host, via: pattern === expression ? how : `${how} in '${expression}'` };
  });
}
