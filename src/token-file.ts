// A token file (the client's --token-file, the agent's token_file): the token is the file's
// text without the trailing newlines editors add; a file with nothing else holds no token.
export function tokenOf(text: string): string | undefined {
  const token = text.replace(/[\r\n]+$/, '');
  return token === '' ? undefined : token;
}
