// What a name in a certificate may look like: host-name characters only. The same rule
// decides what `distrun certs` issues and what the agent accepts as a client's name.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

/** Letters, digits, `.`, `-`, `_`, starting with a letter or digit, no `..`. */
export function isPlainName(name: string): boolean {
  return NAME_PATTERN.test(name) && !name.includes('..');
}
