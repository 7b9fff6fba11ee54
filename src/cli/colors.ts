// Colours for terminals only: none when the stream is not a TTY or NO_COLOR is set
// (https://no-color.org), so pipes and files get plain bytes.

export interface Palette {
  host(text: string): string;
  failure(text: string): string;
  strong(text: string): string;
}

const plain = (text: string) => text;
const ansi = (code: string) => (text: string) => `\x1b[${code}m${text}\x1b[0m`;

export const PLAIN: Palette = { host: plain, failure: plain, strong: plain };
const COLORED: Palette = { host: ansi('36'), failure: ansi('31'), strong: ansi('1') };

export function paletteFor(stream: NodeJS.WritableStream, env: NodeJS.ProcessEnv = process.env): Palette {
  const tty = (stream as NodeJS.WriteStream).isTTY === true;
  return tty && !env.NO_COLOR ? COLORED : PLAIN;
}
