// Ansible's INI inventory, read as plugins/inventory/ini.py reads it, into the same
// in-memory inventory (ansible-data.ts) with the same calls in the same order: `[group]`,
// `[group:children]`, `[group:vars]`, host lines with `key=value` variables (shlex words,
// values through Python's literal_eval), ranges, `host:port` (ssh's port: it becomes
// ansible_port, never dialled), `#`/`;` comments, and children or vars of groups that are
// never defined refused as Ansible refuses them. Where Ansible gives up on a file with a
// warning and goes on, distrun stops: the message names the file and line.
import { InventoryError } from '../../errors.js';
import { strictUtf8 } from '../../strict-utf8.js';
import type { AnsibleInventoryData } from './ansible-data.js';
import { expandAnsibleHostPattern, HostPatternError } from './ansible-host-pattern.js';
import { PythonTextError, pythonValue, shlexSplit } from './python-text.js';

// Python's whitespace (\s, str.strip(), str.isspace()): not JavaScript's, which lacks
// \x1c-\x1f and \x85 and has \ufeff.
const WS = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPACE = `[${WS}]`;
const SECTION = new RegExp(`^\\[([^:\\]${WS}]+)(?::([\\p{L}\\p{N}_]+))?\\]${SPACE}*(?:#.*)?$`, 'u');
const GROUP_NAME = new RegExp(`^([^:\\]${WS}]+)${SPACE}*(?:#.*)?$`, 'u');
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;
const pyStrip = (s: string): string => s.replace(new RegExp(`^${SPACE}+|${SPACE}+$`, 'gu'), '');

interface Pending {
  line: number;
  state: 'vars' | 'children';
  name: string;
  parents: string[];
}

/** The file's lines as ini.py gets them (undecodable comment lines become empty). */
export function iniLines(bytes: Buffer, file: string): string[] {
  const text = strictUtf8(bytes);
  if (text !== undefined) return text.split(LINE_BREAK);
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a || bytes[i] === 0x0d) {
      lines.push(bytes.subarray(start, i));
      if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a) i++;
      start = i + 1;
    }
  }
  if (start < bytes.length) lines.push(bytes.subarray(start));
  return lines.map((line, i) => {
    if (line[0] === 0x23 || line[0] === 0x3b) return '';
    const decoded = strictUtf8(line);
    if (decoded === undefined) throw new InventoryError('not valid UTF-8', { file, entry: `line ${i + 1}` });
    return decoded;
  });
}

/** ini.py's InventoryModule._parse: fills `data`; the caller reconciles once all sources are read. */
export function readIni(data: AnsibleInventoryData, lines: readonly string[], file: string): void {
  const pending = new Map<string, Pending>();
  let groupname = 'ungrouped';
  let state = 'hosts';
  let lineno = 0;
  const fail = (message: string): never => {
    throw new InventoryError(message, { file, entry: `line ${lineno}` });
  };
  const addPendingChildren = (group: string): void => {
    for (const parent of pending.get(group)!.parents) {
      data.addChild(parent, group);
      if (pending.get(parent)?.state === 'children') addPendingChildren(parent);
    }
    pending.delete(group);
  };

  for (const raw of lines) {
    lineno += 1;
    const line = pyStrip(raw);
    if (line === '' || line[0] === '#' || line[0] === ';') continue;

    const section = SECTION.exec(line);
    if (section) {
      groupname = section[1]!;
      state = section[2] ?? 'hosts';
      if (!['hosts', 'children', 'vars'].includes(state)) fail(`Section [${groupname}:${state}] has unknown type: ${state}`);
      if (!data.groups.has(groupname)) {
        // [g:vars] alone does not declare g: it must be declared somewhere in the file.
        if (state === 'vars' && !pending.has(groupname)) pending.set(groupname, { line: lineno, state: 'vars', name: groupname, parents: [] });
        data.addGroup(groupname);
      }
      const waiting = pending.get(groupname);
      if (waiting && state !== 'vars') {
        if (waiting.state === 'children') addPendingChildren(groupname);
        else pending.delete(groupname);
      }
      continue;
    } else if (line.startsWith('[') && line.endsWith(']')) {
      fail(
        `Invalid section entry: '${line}'. Please make sure that there are no spaces in the section entry, and that there are no other invalid characters`,
      );
    }

    if (state === 'hosts') {
      const { hosts, port, variables } = hostDefinition(line, fail);
      for (const host of hosts) {
        const isNew = !data.hosts.has(host);
        data.addHost(host, groupname);
        // Host(name, port) sets ansible_port only for a new host, and only a non-zero one.
        if (isNew && port) data.setVariable(host, 'ansible_port', port);
        for (const [k, v] of variables) data.setVariable(host, k, v);
      }
    } else if (state === 'vars') {
      const eq = line.indexOf('=');
      if (eq < 0) fail(`Expected key=value, got: ${line}`);
      data.setVariable(groupname, pyStrip(line.slice(0, eq)), value(pyStrip(line.slice(eq + 1)), fail));
    } else {
      const child = GROUP_NAME.exec(line)?.[1] ?? fail(`Expected group name, got: ${line}`);
      if (data.groups.has(child)) data.addChild(groupname, child);
      else if (pending.has(child)) pending.get(child)!.parents.push(groupname);
      else pending.set(child, { line: lineno, state: 'children', name: child, parents: [groupname] });
    }
  }

  // Ansible reports the first reference that was never declared.
  for (const decl of pending.values()) {
    lineno = decl.line;
    if (decl.state === 'vars') fail(`Section [${decl.name}:vars] not valid for undefined group: ${decl.name}`);
    fail(`Section [${decl.parents[decl.parents.length - 1]}:children] includes undefined group: ${decl.name}`);
  }
}

function value(text: string, fail: (message: string) => never): unknown {
  try {
    return pythonValue(text);
  } catch (err) {
    if (err instanceof PythonTextError) return fail(`cannot read the value ${text}: ${err.message}`);
    throw err;
  }
}

/** _parse_host_definition: a host pattern, then key=value words. */
function hostDefinition(
  line: string,
  fail: (message: string) => never,
): {
  hosts: string[];
  port: number | undefined;
  variables: Map<string, unknown>;
} {
  let tokens: string[];
  try {
    tokens = shlexSplit(line);
  } catch (err) {
    return fail(`Error parsing host definition '${line}': ${(err as Error).message}`);
  }
  if (tokens.length === 0) fail(`Expected a host, got: ${line}`);
  const hostpattern = tokens[0]!;
  let expanded: ReturnType<typeof expandAnsibleHostPattern>;
  try {
    expanded = expandAnsibleHostPattern(hostpattern);
  } catch (err) {
    if (err instanceof HostPatternError) return fail(`${err.message} (host pattern '${hostpattern}')`);
    throw err;
  }
  if (pyStrip(hostpattern).endsWith(':') && expanded.port === undefined) {
    fail(`Invalid host pattern '${hostpattern}' supplied, ending in ':' is not allowed, this character is reserved to provide a port.`);
  }
  if (expanded.hosts.some((h) => pyStrip(h) === '---')) {
    fail(`Invalid host pattern '${hostpattern}' supplied, '---' is normally a sign this is a YAML file.`);
  }
  const variables = new Map<string, unknown>();
  for (const t of tokens.slice(1)) {
    const eq = t.indexOf('=');
    if (eq < 0) fail(`Expected key=value host variable assignment, got: ${t}`);
    variables.set(t.slice(0, eq), value(t.slice(eq + 1), fail));
  }
  return { ...expanded, variables };
}
