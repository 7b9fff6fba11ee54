// `--script FILE`: the script travels over the stdin channel; on the host a small
// /bin/sh wrapper stores it in a private temp file, runs it with its interpreter (the
// shebang, or /bin/sh) and the given arguments, and removes it again.
import { readFileSync } from 'node:fs';
import { FileError } from '../../errors.js';
import { describeSystemError } from '../../system-errors.js';

// $1 = how many interpreter words follow; then the interpreter; then the arguments.
// The script path goes between the interpreter and the arguments, as the kernel does.
const WRAPPER = [
  'n=$1; shift',
  't=$(mktemp) || exit 126',
  'trap \'rm -f "$t"\' EXIT',
  "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
  'cat > "$t" || exit 126',
  'i=0',
  'for a; do shift; [ "$i" -eq "$n" ] && set -- "$@" "$t"; set -- "$@" "$a"; i=$((i+1)); done',
  '[ "$i" -eq "$n" ] && set -- "$@" "$t"',
  '"$@"',
].join('\n');

/** The interpreter from a `#!` line (Linux passes everything after the path as one argument). */
function interpreterOf(content: Buffer): string[] {
  const firstLine = content.subarray(0, Math.max(0, content.indexOf(0x0a)) || content.length).toString('utf8');
  if (!firstLine.startsWith('#!')) return ['/bin/sh'];
  const line = firstLine.slice(2).trim();
  const space = line.search(/\s/);
  if (line === '') return ['/bin/sh'];
  return space < 0 ? [line] : [line.slice(0, space), line.slice(space).trim()];
}

export function readScript(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new FileError(`cannot read script ${file}: ${describeSystemError(err)}`);
  }
}

/** The wrapper's argv that runs `content` (sent as stdin) with `args`. */
export function scriptArgv(content: Buffer, args: readonly string[]): string[] {
  const interpreter = interpreterOf(content);
  return ['/bin/sh', '-c', WRAPPER, 'distrun-script', String(interpreter.length), ...interpreter, ...args];
}
