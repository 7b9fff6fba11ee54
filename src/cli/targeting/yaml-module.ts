// The yaml package, loaded on first use: a cached inventory needs no YAML parser (it
// takes 30 ms to load), and `distrun -H` none at all.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const yaml = (): typeof import('yaml') => require('yaml') as typeof import('yaml');

/** Where a parsed document's nodes are: the parser's own line table (yaml's LineCounter). */
export interface YamlLines {
  linePos(offset: number): { line: number; col: number };
}

export function newLineCounter(): YamlLines & InstanceType<typeof import('yaml').LineCounter> {
  return new (yaml().LineCounter)();
}

/** ` (line N)` for a node of a document parsed with `lines`, or '' when it has no position. */
export function lineOfNode(lines: YamlLines, node: { range?: [number, number, number] | null } | null | undefined): string {
  const offset = node?.range?.[0];
  return offset === undefined ? '' : ` (line ${lines.linePos(offset).line})`;
}

/** A document's first error as one line, its position said once: `line L, column C: invalid YAML: reason`. */
export function firstYamlError(doc: {
  errors: ReadonlyArray<{ message: string; linePos?: [{ line: number; col: number }, ...unknown[]] }>;
}): string | undefined {
  const first = doc.errors[0];
  if (!first) return undefined;
  const where = first.linePos ? `line ${first.linePos[0].line}, column ${first.linePos[0].col}: ` : '';
  // The yaml package ends its first line with " at line L, column C:": said once, in `where`.
  return `${where}invalid YAML: ${first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`;
}
