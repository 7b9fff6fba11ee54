// `distrun hosts --discover`: which agents are connected to the brokers right now. One
// request to every agent (protocol/carrier.ts, discovery), and the names that answer on
// this client's own inbox within the wait. Best effort, and said so: an answer is one
// NATS message that the broker's permissions let only an agent of that name publish,
// not a TLS session with the agent (`distrun ping` is that), and an agent that is slow,
// of an older version, or that does not allow this client does not answer.
import { BrokerError, type NatsConnection } from '../../broker/broker-connection.js';
import { DISCOVERY_SESSION, discoverySubject, nameOfToken, nameToken, newId, parseClientSubject, runInbox } from '../../protocol/carrier.js';

/** Names that answered beyond the selected ones, kept at most. */
const MAX_OTHER_NAMES = 100_000;

/** The name as an answer gives it back (lower case); undefined for one no agent could answer to through a broker. */
function answerName(name: string): string | undefined {
  try {
    return nameOfToken(nameToken(name));
  } catch {
    return undefined;
  }
}

export interface Discovery {
  /** Whether an agent of this name answered. */
  answered(name: string): boolean;
  /** The names that answered and were not asked about (as answers give them: lower case). */
  others: string[];
  /** How long it waited. */
  waitedMs: number;
}

/**
 * Asks every agent; resolves once each of `expected` (names) has answered, or after
 * `waitMs`. A broker that does not let this client ask (a configuration written before
 * discovery existed) is an error, not an empty answer.
 */
export async function discoverAgents(nc: NatsConnection, client: string, expected: readonly string[], waitMs: number): Promise<Discovery> {
  const run = newId();
  const asked = new Set(expected.map(answerName).filter((name) => name !== undefined));
  const waiting = new Set(asked);
  const answered = new Set<string>();
  const started = Date.now();
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let refused: Error | undefined;
  const fail = (err: Error): void => {
    refused = err;
    finish();
  };
  nc.subscribe(runInbox(client, run), {
    callback: (err, msg) => {
      if (err) return fail(err);
      let agent: string;
      try {
        const { agentToken, session } = parseClientSubject(msg.subject);
        if (session !== DISCOVERY_SESSION) return;
        agent = nameOfToken(agentToken);
      } catch {
        return;
      }
      // Whatever the broker delivers, what is kept is bounded.
      if (answered.size >= expected.length + MAX_OTHER_NAMES && !waiting.has(agent)) return;
      answered.add(agent);
      waiting.delete(agent);
      if (expected.length > 0 && waiting.size === 0) finish();
    },
  });
  const request = discoverySubject(client, run);
  void (async () => {
    for await (const status of nc.status()) {
      const error = status.type === 'error' ? (status.error as Error & { operation?: string; subject?: string }) : undefined;
      if (error?.operation === 'publish' && error.subject === request) fail(error);
    }
  })();
  // The subscription is in place before anyone is asked; a refusal of the request comes
  // before the answer to the flush after it (or, at the latest, before the wait is over).
  await nc.flush();
  nc.publish(request);
  const timer = setTimeout(finish, waitMs);
  await nc.flush().catch((err: Error) => fail(err));
  await done;
  clearTimeout(timer);
  if (refused) {
    throw new BrokerError(
      `the broker does not let client ${client} ask who is connected (${refused.message}); ` +
        'write its configuration again with distrun broker config (discovery needs this version of it) and reload nats-server',
    );
  }
  return {
    answered: (name) => answered.has(answerName(name) ?? ''),
    others: [...answered].filter((name) => !asked.has(name)),
    waitedMs: Date.now() - started,
  };
}
