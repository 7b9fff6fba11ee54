// The broker carrier: how one session's bytes travel as NATS messages when the agent is
// reached through a broker (docs/protocol.md, "Through a broker"). The session itself is
// unchanged: the same TLS 1.3 connection, client and agent certificates and frames as on
// a direct connection run end to end inside these messages, so the broker carries bytes
// it can neither read nor alter. This file holds the subjects and the message encoding;
// broker/carrier-stream.ts the state machine. Pure: no I/O.
import { randomBytes } from 'node:crypto';
import { ProtocolError } from '../errors.js';

/** The first token of every subject DistRunner uses. */
export const SUBJECT_ROOT = 'distrun';

/**
 * Carrier message kinds (the first byte). Every message then has a 4-byte big-endian
 * sequence number, counted per direction from 0 over every kind, so that a lost, repeated
 * or reordered message is noticed.
 */
export const CarrierKind = {
  /** The first message each way: version (1 byte), the window granted to the peer (4 bytes), then data. */
  OPEN: 0x4f, // 'O'
  /** Session bytes (TLS records), within the window the peer has granted. */
  DATA: 0x44, // 'D'
  /** More window for the peer: 4 bytes, how many more bytes it may send. */
  WINDOW: 0x57, // 'W'
  /** No more data this way (a half close, like TCP's FIN). */
  END: 0x45, // 'E'
  /** The session is over, abnormally: UTF-8 reason. */
  RESET: 0x52, // 'R'
} as const;
type Kind = (typeof CarrierKind)[keyof typeof CarrierKind];

export const CARRIER_VERSION = 1;
const HEADER = 1 + 4;
const OPEN_HEADER = HEADER + 1 + 4;
/** Session bytes per message at most: a TLS record with room to spare, well under any broker's max_payload. */
export const MAX_CARRIER_DATA = 32 * 1024;
/** A RESET's reason is cut to this many bytes. */
const MAX_REASON_BYTES = 200;
/** Largest window a peer may grant; more is a protocol violation (4 bytes could say 4 GiB). */
const MAX_WINDOW = 16 * 1024 * 1024;

export type CarrierMessage =
  | { kind: typeof CarrierKind.OPEN; seq: number; version: number; window: number; data: Buffer }
  | { kind: typeof CarrierKind.DATA; seq: number; data: Buffer }
  | { kind: typeof CarrierKind.WINDOW; seq: number; grant: number }
  | { kind: typeof CarrierKind.END; seq: number }
  | { kind: typeof CarrierKind.RESET; seq: number; reason: string };

function header(kind: Kind, seq: number, size: number): Buffer {
  const message = Buffer.allocUnsafe(size);
  message[0] = kind;
  message.writeUInt32BE(seq >>> 0, 1);
  return message;
}

export function encodeOpen(seq: number, window: number, data: Buffer): Buffer {
  const message = header(CarrierKind.OPEN, seq, OPEN_HEADER + data.length);
  message[HEADER] = CARRIER_VERSION;
  message.writeUInt32BE(window, HEADER + 1);
  data.copy(message, OPEN_HEADER);
  return message;
}

export function encodeData(seq: number, data: Buffer): Buffer {
  const message = header(CarrierKind.DATA, seq, HEADER + data.length);
  data.copy(message, HEADER);
  return message;
}

export function encodeWindow(seq: number, grant: number): Buffer {
  const message = header(CarrierKind.WINDOW, seq, HEADER + 4);
  message.writeUInt32BE(grant, HEADER);
  return message;
}

export function encodeEnd(seq: number): Buffer {
  return header(CarrierKind.END, seq, HEADER);
}

export function encodeReset(seq: number, reason: string): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.length > MAX_REASON_BYTES) text = Buffer.from(reason.slice(0, MAX_REASON_BYTES / 4), 'utf8');
  const message = header(CarrierKind.RESET, seq, HEADER + text.length);
  text.copy(message, HEADER);
  return message;
}

/** One carrier message; a ProtocolError says what is wrong with a malformed one. */
export function decodeCarrier(message: Uint8Array): CarrierMessage {
  const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  if (bytes.length < HEADER) throw new ProtocolError(`carrier message of ${bytes.length} bytes is too short`);
  const kind = bytes[0];
  const seq = bytes.readUInt32BE(1);
  const body = bytes.subarray(HEADER);
  switch (kind) {
    case CarrierKind.OPEN: {
      if (body.length < OPEN_HEADER - HEADER) throw new ProtocolError('carrier OPEN is too short');
      const window = body.readUInt32BE(1);
      if (window > MAX_WINDOW) throw new ProtocolError(`carrier OPEN grants a window of ${window} bytes (at most ${MAX_WINDOW})`);
      return { kind, seq, version: body[0]!, window, data: body.subarray(5) };
    }
    case CarrierKind.DATA:
      if (body.length === 0 || body.length > MAX_CARRIER_DATA)
        throw new ProtocolError(`carrier DATA of ${body.length} bytes (1 to ${MAX_CARRIER_DATA})`);
      return { kind, seq, data: body };
    case CarrierKind.WINDOW: {
      if (body.length !== 4) throw new ProtocolError('carrier WINDOW must hold 4 bytes');
      const grant = body.readUInt32BE(0);
      if (grant === 0 || grant > MAX_WINDOW) throw new ProtocolError(`carrier WINDOW grants ${grant} bytes (1 to ${MAX_WINDOW})`);
      return { kind, seq, grant };
    }
    case CarrierKind.END:
      if (body.length !== 0) throw new ProtocolError('carrier END carries nothing');
      return { kind, seq };
    case CarrierKind.RESET:
      return { kind, seq, reason: body.subarray(0, MAX_REASON_BYTES).toString('utf8') };
    default:
      throw new ProtocolError(`unknown carrier message kind 0x${(kind ?? 0).toString(16)}`);
  }
}

// Subjects. A client C's session S of run R with agent A:
//   client → agent   distrun.agent.<A>.<C>.<R>.<S>
//   agent → client   distrun.client.<C>.<R>.<A>.<S>
// Discovery (`distrun hosts --discover`, best effort): client C asks every agent at once,
//   client → agents  distrun.discover.<C>.<R>
// and each agent answers once for each name A it answers to, with an empty message:
//   agent → client   distrun.client.<C>.<R>.<A>.discover
// The broker configuration we generate (broker/broker-config.ts) lets an agent subscribe
// only to its own names' requests (and to discovery) and publish only replies that name
// it, and a client publish only requests that name it and subscribe only to its own replies.

/** Runs and sessions are named by random tokens of these characters. */
const ID_PATTERN = /^[A-Za-z0-9_-]{8,32}$/;
/** A new run or session id: 12 random bytes, base64url (16 characters). */
export function newId(): string {
  return randomBytes(12).toString('base64url');
}

/** What nameToken makes of a name. */
const TOKEN_PATTERN = /^[a-z0-9][a-z0-9_~:-]{0,252}$/;

/**
 * A certificate name as one subject token: NATS separates tokens with '.', which host
 * names contain, so '.' becomes '~' (which a name cannot hold: one name, one token).
 * Lower case, as host names compare.
 */
export function nameToken(name: string): string {
  // Host-name characters, and ':' for IPv6 addresses; never '~', '*', '>' or white space.
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}$/.test(name)) {
    throw new ProtocolError(`${JSON.stringify(name)} is not a plain name and cannot be reached through a broker`);
  }
  return name.toLowerCase().replaceAll('.', '~');
}

function checkId(id: string, what: string): string {
  if (!ID_PATTERN.test(id)) throw new ProtocolError(`invalid ${what} id ${JSON.stringify(id)}`);
  return id;
}

export interface SessionAddress {
  agent: string;
  client: string;
  run: string;
  session: string;
}

/** Where the client's messages for one session go. */
export function toAgentSubject(address: SessionAddress): string {
  const { agent, client, run, session } = address;
  return `${SUBJECT_ROOT}.agent.${nameToken(agent)}.${nameToken(client)}.${checkId(run, 'run')}.${checkId(session, 'session')}`;
}

/** Where the agent's messages for one session go. */
export function toClientSubject(address: SessionAddress): string {
  const { agent, client, run, session } = address;
  return `${SUBJECT_ROOT}.client.${nameToken(client)}.${checkId(run, 'run')}.${nameToken(agent)}.${checkId(session, 'session')}`;
}

/** What an agent subscribes to for one of its names: every session of every client. */
export function agentInbox(agent: string): string {
  return `${SUBJECT_ROOT}.agent.${nameToken(agent)}.>`;
}

/** What a client subscribes to for one run: every agent's replies in it. */
export function runInbox(client: string, run: string): string {
  return `${SUBJECT_ROOT}.client.${nameToken(client)}.${checkId(run, 'run')}.>`;
}

/** The tokens of a subject an agent received, or why it is not one of ours. */
export function parseAgentSubject(subject: string): { agentToken: string; clientToken: string; run: string; session: string } {
  const parts = subject.split('.');
  if (parts.length !== 6 || parts[0] !== SUBJECT_ROOT || parts[1] !== 'agent') throw new ProtocolError(`not a session subject: ${subject}`);
  const [, , agentToken, clientToken, run, session] = parts as [string, string, string, string, string, string];
  checkId(run, 'run');
  checkId(session, 'session');
  return { agentToken, clientToken, run, session };
}

/** The reply subject for a message an agent received on `subject` (the same session, the other way). */
export function replySubjectOf(subject: string): string {
  const { agentToken, clientToken, run, session } = parseAgentSubject(subject);
  return `${SUBJECT_ROOT}.client.${clientToken}.${run}.${agentToken}.${session}`;
}

/** The tokens of a subject a client received in its run inbox. */
export function parseClientSubject(subject: string): { clientToken: string; run: string; agentToken: string; session: string } {
  const parts = subject.split('.');
  if (parts.length !== 6 || parts[0] !== SUBJECT_ROOT || parts[1] !== 'client') throw new ProtocolError(`not a session subject: ${subject}`);
  const [, , clientToken, run, agentToken, session] = parts as [string, string, string, string, string, string];
  return { clientToken, run, agentToken, session };
}

/** The session token of a discovery answer (never a session's: theirs are random, 16 characters). */
export const DISCOVERY_SESSION = 'discover';

/** What every agent subscribes to: discovery requests from any client. */
export const DISCOVERY_REQUESTS = `${SUBJECT_ROOT}.discover.*.*`;

/** Where client `client` asks who is connected, its answers to come to its run inbox `run`. */
export function discoverySubject(client: string, run: string): string {
  return `${SUBJECT_ROOT}.discover.${nameToken(client)}.${checkId(run, 'run')}`;
}

/** The client token and run of a discovery request, or why it is not one. */
export function parseDiscoverySubject(subject: string): { clientToken: string; run: string } {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== SUBJECT_ROOT || parts[1] !== 'discover' || !TOKEN_PATTERN.test(parts[2] ?? '')) {
    throw new ProtocolError(`not a discovery subject: ${subject}`);
  }
  return { clientToken: parts[2]!, run: checkId(parts[3]!, 'run') };
}

/** Where an agent answers a discovery request for its name `agent`. */
export function discoveryAnswerSubject(request: { clientToken: string; run: string }, agent: string): string {
  return `${SUBJECT_ROOT}.client.${request.clientToken}.${request.run}.${nameToken(agent)}.${DISCOVERY_SESSION}`;
}

/** The name a subject token stands for (nameToken's inverse, in lower case). */
export function nameOfToken(token: string): string {
  return token.replaceAll('~', '.');
}
