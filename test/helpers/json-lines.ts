// JSON Lines (distrun --json, audit files) as objects whose fields assertions read
// directly: `any` here, once, instead of a cast at every use.

// biome-ignore lint/suspicious/noExplicitAny: fields are read field by field in assertions
type JsonRecord = Record<string, any>;

/** The non-empty lines of `text`, each parsed. */
export function jsonLines(text: string | Buffer): JsonRecord[] {
  return text
    .toString()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as JsonRecord);
}
