// A small, strict DER reader for the few structures read from peers and files
// (certificate names, CRLs). Strict: definite minimal lengths, one-byte tags, nothing
// past the end. It keeps the exact bytes of every element, which signature checks and
// name comparisons need (re-encoding a parsed tree is not guaranteed to give them back),
// and keeps node-forge (about 45 ms to load) out of distrun's start-up.
import { PkiError } from '../errors.js';

export interface DerElement {
  /** The identifier octet: class, constructed bit and tag number. */
  tag: number;
  /** The whole element: identifier, length and content. */
  bytes: Buffer;
  content: Buffer;
}

export const DerTag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** [n] with the constructed bit (EXPLICIT tags and constructed IMPLICIT ones). */
export const contextTag = (n: number, constructed = true): number => 0x80 | (constructed ? 0x20 : 0) | n;

export class DerError extends PkiError {}

/** The element that starts at `offset`. */
function readElement(buffer: Buffer, offset = 0): DerElement {
  const fail = (why: string): never => {
    throw new DerError(`malformed DER at byte ${offset}: ${why}`);
  };
  if (offset + 2 > buffer.length) fail('truncated');
  const tag = buffer[offset]!;
  if ((tag & 0x1f) === 0x1f) fail('multi-byte tags are not used here');
  let length = buffer[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0) fail('indefinite length');
    if (octets > 4) fail('length too large');
    if (offset + 2 + octets > buffer.length) fail('truncated');
    length = 0;
    for (let i = 0; i < octets; i += 1) length = length * 256 + buffer[offset + 2 + i]!;
    if (length < 0x80 || buffer[offset + 2] === 0) fail('length not in its shortest form');
    header += octets;
  }
  const end = offset + header + length;
  if (end > buffer.length) fail('truncated');
  return { tag, bytes: buffer.subarray(offset, end), content: buffer.subarray(offset + header, end) };
}

/** The one element `buffer` holds, with nothing after it. */
export function readWhole(buffer: Buffer): DerElement {
  const element = readElement(buffer);
  if (element.bytes.length !== buffer.length) throw new DerError(`malformed DER: ${buffer.length - element.bytes.length} bytes after the end`);
  return element;
}

/** The elements of a constructed element (SEQUENCE, SET, explicit tag). */
export function childrenOf(element: DerElement): DerElement[] {
  if (!(element.tag & 0x20)) throw new DerError(`malformed DER: element with tag 0x${element.tag.toString(16)} is not constructed`);
  const items: DerElement[] = [];
  for (let offset = 0; offset < element.content.length; ) {
    const child = readElement(element.content, offset);
    items.push(child);
    offset += child.bytes.length;
  }
  return items;
}

export function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element?.tag !== tag) throw new DerError(`malformed DER: ${what} missing or of the wrong type`);
  return element;
}

export function oidOf(element: DerElement): string {
  const bytes = expectTag(element, DerTag.OID, 'object identifier').content;
  if (bytes.length === 0) throw new DerError('malformed DER: empty object identifier');
  const parts: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  const first = parts.shift()!;
  return [first < 80 ? Math.floor(first / 40) : 2, first < 80 ? first % 40 : first - 80, ...parts].join('.');
}

/** An INTEGER as lower-case hex without leading zeros: how serial numbers are compared. */
export function integerHex(element: DerElement): string {
  const hex = expectTag(element, DerTag.INTEGER, 'integer').content.toString('hex').replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

export function timeOf(element: DerElement): Date {
  const text = element.content.toString('latin1');
  const match =
    element.tag === DerTag.UTC_TIME
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : element.tag === DerTag.GENERALIZED_TIME
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
        : null;
  if (!match) throw new DerError(`malformed DER: not a UTC time: ${JSON.stringify(text)}`);
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  // RFC 5280: two-digit years 50-99 are 19xx.
  const fullYear = element.tag === DerTag.UTC_TIME ? (year >= 50 ? 1900 + year : 2000 + year) : year;
  return new Date(Date.UTC(fullYear, month - 1, day, hour, minute, second));
}

/** A directory string's text (the string types names use), or undefined for other types. */
export function stringOf(element: DerElement): string | undefined {
  switch (element.tag) {
    case DerTag.UTF8_STRING:
      return element.content.toString('utf8');
    case DerTag.PRINTABLE_STRING:
    case DerTag.IA5_STRING:
    case DerTag.TELETEX_STRING:
      return element.content.toString('latin1');
    case DerTag.BMP_STRING:
      return Buffer.from(element.content).swap16().toString('utf16le');
    default:
      return undefined;
  }
}

/** Decodes the one PEM block of `type` in `text`; anything else in it is refused. */
export function pemBlock(text: string, type: string, what: string): Buffer {
  const pattern = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  const blocks = [...text.matchAll(pattern)];
  const outside = text.replace(pattern, '').trim();
  if (blocks.length !== 1 || blocks[0]![1] !== type || outside !== '') {
    const found = blocks.map((b) => b[1]).join(', ') || 'no PEM block';
    throw new DerError(`${what} must be exactly one PEM block '${type}' (found: ${found}${outside ? ', and other text' : ''})`);
  }
  const body = blocks[0]![2]!.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) throw new DerError(`${what}: the PEM block is not valid base64`);
  return Buffer.from(body, 'base64');
}

/** Every certificate in a PEM file (a CA file may hold several), as PEM blocks. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}
