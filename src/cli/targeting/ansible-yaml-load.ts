// A YAML or JSON file as ansible-core's DataLoader reads it (parsing/utils/yaml.py
// from_yaml, parsing/yaml/constructor.py): JSON first, else YAML 1.1 as PyYAML resolves
// it — `on`/`yes` are booleans, `010` is 8, `1:30` is 90, `<<` merges mappings with
// PyYAML's flatten_mapping (own keys win, `<<: [*a, *b]` lets *a win over *b), a key
// given twice keeps its first place and its last value. Mappings come back as PyDict so
// that key order, and keys that are not strings, are Python's.
import type { Document, Node as YamlNode, Pair } from 'yaml';
import { InventoryError } from '../../errors.js';
import { firstYamlError, lineOfNode, newLineCounter, yaml, type YamlLines } from './yaml-module.js';

/** A value of a tag Ansible decodes and distrun does not (!vault, !unsafe, timestamps...). */
export class PyOpaque {
  constructor(
    readonly tag: string,
    readonly text: string,
  ) {}
}

/** A Python dict: insertion order, any hashable key (str, int, float, bool, None). */
export class PyDict {
  private readonly index = new Map<string, number>();
  readonly entries: Array<[unknown, unknown]> = [];

  has(key: unknown): boolean {
    return this.index.has(keyId(key));
  }

  get(key: unknown): unknown {
    const at = this.index.get(keyId(key));
    return at === undefined ? undefined : this.entries[at]![1];
  }

  /** dict[key] = value: a key already there keeps its place. */
  set(key: unknown, value: unknown): void {
    const id = keyId(key);
    const at = this.index.get(id);
    if (at === undefined) {
      this.index.set(id, this.entries.length);
      this.entries.push([key, value]);
    } else this.entries[at]![1] = value;
  }

  withEntry(key: unknown, value: unknown): this {
    this.set(key, value);
    return this;
  }

  keys(): unknown[] {
    return this.entries.map(([k]) => k);
  }
}

/** Python's equality of keys, near enough: True == 1 and 1.0 == 1 as in Python. */
function keyId(key: unknown): string {
  if (typeof key === 'string') return `s${key}`;
  if (typeof key === 'boolean') return `n${key ? 1 : 0}`;
  if (typeof key === 'number' || typeof key === 'bigint') return `n${String(key)}`;
  if (key === null) return 'None';
  if (key instanceof PyOpaque) return `o${key.tag}\0${key.text}`;
  return `?${String(key)}`;
}

/** Python's str() of a value, for messages ("Host pattern True must be a string"). */
export function pyStr(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (value instanceof PyOpaque) return value.text;
  if (value instanceof PyDict) return `{${value.entries.map(([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`).join(', ')}}`;
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  return String(value);
}

function pyRepr(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : pyStr(value);
}

/** Python's type name, for Ansible's "it is a <class 'int'>" messages. */
export function pyType(value: unknown): string {
  if (value === null || value === undefined) return 'NoneType';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'number' || typeof value === 'bigint') return Number.isInteger(value) || typeof value === 'bigint' ? 'int' : 'float';
  if (typeof value === 'string') return 'str';
  if (value instanceof PyDict) return 'dict';
  if (Array.isArray(value)) return 'list';
  return (value as PyOpaque).tag;
}

/** PyYAML's implicit resolvers (yaml/resolver.py), for plain scalars. */
const BOOL = /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/;
const FLOAT =
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
const INT = /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/;
const NULL = /^(?:~|null|Null|NULL|)$/;
const TIMESTAMP =
  /^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$/;
const TAG = 'tag:yaml.org,2002:';
const UNSAFE = '!unsafe';

type Resolved = 'bool' | 'float' | 'int' | 'merge' | 'null' | 'timestamp' | 'value' | 'str';

/** Resolver.resolve: the resolvers registered for the first character, in order. */
function resolvePlain(text: string): Resolved {
  const first = text[0] ?? '';
  if ('yYnNtTfFoO'.includes(first) && first !== '' && BOOL.test(text)) return 'bool';
  if ('-+0123456789.'.includes(first) && first !== '' && FLOAT.test(text)) return 'float';
  if ('-+0123456789'.includes(first) && first !== '' && INT.test(text)) return 'int';
  if (text === '<<') return 'merge';
  if (['~', 'n', 'N', ''].includes(first) && NULL.test(text)) return 'null';
  if ('0123456789'.includes(first) && first !== '' && TIMESTAMP.test(text)) return 'timestamp';
  if (text === '=') return 'value';
  return 'str';
}

/** SafeConstructor.construct_yaml_int. */
function pyInt(text: string): number {
  let value = text.replace(/_/g, '');
  let sign = 1;
  if (value[0] === '-') sign = -1;
  if (value[0] === '-' || value[0] === '+') value = value.slice(1);
  if (value === '0') return 0;
  if (value.startsWith('0b')) return sign * parseInt(value.slice(2), 2);
  if (value.startsWith('0x')) return sign * parseInt(value.slice(2), 16);
  if (value[0] === '0') return sign * parseInt(value, 8);
  if (value.includes(':')) return sign * value.split(':').reduce((n, part) => n * 60 + Number(part), 0);
  return sign * Number(value);
}

/** SafeConstructor.construct_yaml_float. */
function pyFloat(text: string): number {
  let value = text.replace(/_/g, '').toLowerCase();
  let sign = 1;
  if (value[0] === '-') sign = -1;
  if (value[0] === '-' || value[0] === '+') value = value.slice(1);
  if (value === '.inf') return sign * Infinity;
  if (value === '.nan') return NaN;
  if (value.includes(':')) return sign * value.split(':').reduce((n, part) => n * 60 + Number(part), 0);
  return sign * Number(value);
}

interface Loader {
  doc: Document;
  text: string;
  lines: YamlLines;
  file: string;
  warn: (message: string) => void;
  json: boolean;
  building: Set<YamlNode>;
  built: Map<YamlNode, unknown>;
}

/**
 * The data of a YAML or JSON file as Ansible loads it; `warn` gets what Ansible warns
 * about (a key given twice). Errors name the file and the line.
 */
export function loadAnsibleYaml(text: string, file: string, warn: (message: string) => void): unknown {
  const { parseDocument } = yaml();
  let json = false;
  try {
    JSON.parse(text);
    json = true;
  } catch {
    // Not JSON: YAML, as Ansible tries next.
  }
  const lines = newLineCounter();
  const doc = json
    ? parseDocument(text, { schema: 'json', uniqueKeys: false, lineCounter: lines })
    : parseDocument(text, { version: '1.1', schema: 'failsafe', merge: false, uniqueKeys: false, lineCounter: lines });
  const error = firstYamlError(doc);
  if (error !== undefined) throw new InventoryError(error, { file });
  const loader: Loader = { doc, text, lines, file, warn, json, building: new Set(), built: new Map() };
  checkAnchors(loader);
  return doc.contents === null ? null : construct(loader, doc.contents as YamlNode);
}

function fail(loader: Loader, node: YamlNode, message: string): never {
  throw new InventoryError(`${message}${lineOfNode(loader.lines, node)}`, { file: loader.file });
}

/** PyYAML's composer refuses an anchor defined twice (the yaml package would let the later one win). */
function checkAnchors(loader: Loader): void {
  const { visit } = yaml();
  const seen = new Set<string>();
  visit(loader.doc, (_key, node) => {
    const anchor = (node as { anchor?: string } | null)?.anchor;
    if (anchor === undefined) return;
    if (seen.has(anchor)) fail(loader, node as YamlNode, `found duplicate anchor &${anchor}`);
    seen.add(anchor);
  });
}

function construct(loader: Loader, node: YamlNode, asKey = false): unknown {
  const { isAlias, isMap, isScalar, isSeq } = yaml();
  if (isAlias(node)) {
    const target = node.resolve(loader.doc);
    if (!target) fail(loader, node, `unknown alias *${node.source}`);
    return construct(loader, target as YamlNode);
  }
  if (loader.built.has(node)) return loader.built.get(node);
  if (loader.building.has(node)) fail(loader, node, 'a recursive alias (a value that contains itself) is not supported');
  loader.building.add(node);
  let value: unknown;
  if (isScalar(node)) value = scalar(loader, node, asKey);
  else if (isSeq(node)) {
    checkTag(loader, node, 'seq');
    value = node.items.map((item) => (item === null ? null : construct(loader, item as YamlNode)));
  } else if (isMap(node)) {
    checkTag(loader, node, 'map');
    value = mapping(loader, node);
  } else fail(loader, node, 'unexpected YAML node');
  loader.building.delete(node);
  loader.built.set(node, value);
  return value;
}

function checkTag(loader: Loader, node: YamlNode, kind: 'seq' | 'map'): void {
  const tag = node.tag;
  if (tag === undefined || tag === `${TAG}${kind}` || tag === '!' || tag === UNSAFE) return;
  fail(loader, node, `YAML tag ${tag} on a ${kind === 'map' ? 'mapping' : 'sequence'} is not supported`);
}

/** A scalar as SafeConstructor builds it; `asKey`: a mapping key, where a plain `=` is a string (flatten_mapping). */
function scalar(loader: Loader, node: YamlNode & { value: unknown; type?: string; source?: string }, asKey: boolean): unknown {
  if (loader.json) return node.value;
  const text = String(node.value);
  const tag = node.tag;
  let kind: Resolved;
  if (tag === undefined) kind = node.type === 'PLAIN' ? resolvePlain(text) : 'str';
  // !unsafe marks a value Ansible never templates; it is a string still (a template-like
  // one is refused where distrun needs it, as any template is).
  else if (tag === '!' || tag === `${TAG}str` || tag === UNSAFE) kind = 'str';
  else if (tag.startsWith(TAG) && ['bool', 'float', 'int', 'null', 'timestamp'].includes(tag.slice(TAG.length)))
    kind = tag.slice(TAG.length) as Resolved;
  // !vault, !unsafe and the like: Ansible decodes them; they are kept opaque, and refused
  // only where distrun would need their value (an address or a port).
  else return new PyOpaque(tag, text);
  switch (kind) {
    case 'bool':
      return /^(?:yes|true|on)$/i.test(text);
    case 'float':
      return pyFloat(text);
    case 'int':
      return pyInt(text);
    case 'null':
      return null;
    case 'timestamp':
      return new PyOpaque(`${TAG}timestamp`, text);
    // A merge key is handled by flatten(); `<<` anywhere else has no constructor in PyYAML.
    case 'merge':
      return fail(loader, node, `could not determine a constructor for the tag '${TAG}merge' (a plain '<<' that is not a key)`);
    case 'value':
      return asKey ? '=' : fail(loader, node, `could not determine a constructor for the tag '${TAG}value' (a plain '=')`);
    default:
      return text;
  }
}

const isMergeKey = (loader: Loader, key: unknown): boolean => {
  const { isScalar } = yaml();
  if (loader.json || !isScalar(key)) return false;
  if (key.tag === `${TAG}merge`) return true;
  return key.tag === undefined && key.type === 'PLAIN' && key.value === '<<';
};

/** PyYAML's flatten_mapping: the pairs merged in come first, the node's own after them. */
function flatten(loader: Loader, pairs: Array<Pair<unknown, unknown>>, trail: Set<YamlNode>): Array<Pair<unknown, unknown>> {
  const { isAlias, isMap, isSeq } = yaml();
  const deref = (node: unknown): unknown => (isAlias(node) ? node.resolve(loader.doc) : node);
  const merged: Array<Pair<unknown, unknown>> = [];
  const own: Array<Pair<unknown, unknown>> = [];
  const sub = (node: YamlNode): Array<Pair<unknown, unknown>> => {
    if (trail.has(node)) fail(loader, node, 'a merge key that merges its own mapping is not supported');
    return flatten(loader, (node as unknown as { items: Array<Pair<unknown, unknown>> }).items, new Set([...trail, node]));
  };
  for (const pair of pairs) {
    if (!isMergeKey(loader, pair.key)) {
      own.push(pair);
      continue;
    }
    const value = deref(pair.value) as YamlNode;
    if (isMap(value)) merged.push(...sub(value));
    else if (isSeq(value)) {
      const parts = value.items.map((item) => {
        const m = deref(item) as YamlNode;
        if (!isMap(m)) fail(loader, value, 'expected a mapping for merging');
        return sub(m);
      });
      for (const part of parts.reverse()) merged.push(...part);
    } else fail(loader, pair.key as YamlNode, 'expected a mapping or list of mappings for merging');
  }
  return [...merged, ...own];
}

/** An empty plain key not introduced by `?` (`: c`, `a: [b]: c`): the yaml package reads it, PyYAML refuses it. */
function emptyImplicitKey(loader: Loader, key: YamlNode): boolean {
  const { isScalar } = yaml();
  if (loader.json || !isScalar(key) || key.type !== 'PLAIN' || key.range === undefined || key.range === null || key.range[0] !== key.range[1])
    return false;
  let at = key.range[0] - 1;
  while (at >= 0 && /\s/.test(loader.text[at]!)) at--;
  return loader.text[at] !== '?';
}

function mapping(loader: Loader, node: YamlNode & { items: Array<Pair<unknown, unknown>> }): PyDict {
  const dict = new PyDict();
  const own = new Set(node.items);
  const seen = new Set<string>();
  for (const pair of flatten(loader, node.items, new Set([node]))) {
    if (pair.key === null || emptyImplicitKey(loader, pair.key as YamlNode))
      fail(loader, (pair.value ?? node) as YamlNode, 'a mapping key is missing (PyYAML refuses an empty key without ?)');
    const key = construct(loader, pair.key as YamlNode, true);
    if (key instanceof PyDict || Array.isArray(key)) fail(loader, pair.key as YamlNode, 'found unacceptable key (unhashable type)');
    // Ansible warns of a key given twice; a merged key that the mapping overrides is the
    // point of a merge, so only the mapping's own keys are counted.
    if (own.has(pair) && !loader.json) {
      if (seen.has(keyId(key))) loader.warn(`found a duplicate dict key (${pyStr(key)}): using the last value only`);
      seen.add(keyId(key));
    }
    dict.set(key, pair.value === null ? null : construct(loader, pair.value as YamlNode));
  }
  return dict;
}
