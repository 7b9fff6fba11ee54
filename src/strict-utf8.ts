// UTF-8 decoding that refuses invalid bytes instead of replacing them (U+FFFD would hide
// that the bytes were not text) and keeps a leading BOM as a character.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text, or undefined when the bytes are not valid UTF-8. */
export function strictUtf8(bytes: Uint8Array): string | undefined {
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}
