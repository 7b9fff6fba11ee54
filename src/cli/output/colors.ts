// Colours for terminals only: none when the stream is not a TTY, when NO_COLOR is set
// (https://no-color.org) or when the terminal has none (TERM=dumb, FORCE_COLOR=0), so
// pipes and files get plain bytes.

export interface Palette {
  host(text: string): string;
  failure(text: string): string;
  strong(text: string): string;
  /** A control character or sequence from a host, shown visibly: in reverse video, as less shows them. */
  control(text: string): string;
}

const plain = (text: string) => text;
const ansi = (code: string) => (text: string) => `\x1b[${code}m${text}\x1b[0m`;

export const PLAIN: Palette = { host: plain, failure: plain, strong: plain, control: plain };
const COLORED: Palette = {
  host: ansi('36'),
  failure: ansi('31'),
  strong: ansi('1'),
  // Reverse video off (27), not a full reset: the host's own colours go on after the mark.
  control: (text) => `\x1b[7m${text}\x1b[27m`,
};

export function isTerminal(stream: NodeJS.WritableStream): boolean {
  return (stream as NodeJS.WriteStream).isTTY === true;
}

export function paletteFor(stream: NodeJS.WritableStream, env: NodeJS.ProcessEnv = process.env): Palette {
  if (!isTerminal(stream) || env.NO_COLOR) return PLAIN;
  // The terminal's own answer: TERM (dumb has none), FORCE_COLOR, NODE_DISABLE_COLORS.
  const tty = stream as NodeJS.WriteStream;
  return typeof tty.hasColors === 'function' && tty.hasColors(env) ? COLORED : PLAIN;
}
