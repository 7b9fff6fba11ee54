// The agent's side of the broker: one outbound connection to the fleet's NATS cluster,
// a subscription per name the agent answers to, and for each session a client opens a
// carrier stream (broker/carrier-stream.ts) handed to the agent's TLS listener as if it
// were a TCP connection. From there on it is the direct path's code: the same TLS
// handshake and client certificate checks, allowedClients, policy, limits and audit.
//
// What reaches the agent through the broker before a session exists is bounded like TCP
// connections: each carrier counts in the connection gate (per claimed client, and in
// total) until its session starts, and holds at most its window. A message for a session
// the agent does not know (the agent restarted, or it was dropped) is answered with a
// RESET, so that the client learns at once instead of waiting for a timeout.
//
// Discovery (`distrun hosts --discover`): the agent answers a client's request with one
// empty message per name, if that client is in allowedClients, at most DISCOVERY_BURST
// requests at once and one a second after that, whoever asks: a client cannot make the
// agent publish faster than that.
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { connectBroker, describeNatsError, type BrokerLogin, type Msg, type NatsConnection, type Subscription } from '../broker/broker-connection.js';
import { CarrierStream } from '../broker/carrier-stream.js';
import {
  agentInbox,
  CarrierKind,
  DISCOVERY_REQUESTS,
  discoveryAnswerSubject,
  encodeReset,
  nameOfToken,
  parseAgentSubject,
  parseDiscoverySubject,
  replySubjectOf,
} from '../protocol/carrier.js';

/** How many bytes each session's client may send ahead (and so what the agent buffers per session). */
const SESSION_WINDOW = 256 * 1024;
const CONNECT_TIMEOUT_MS = 10_000;
const DISCOVERY_BURST = 10;
const DISCOVERY_PER_SECOND = 1;
const NOTHING = Buffer.alloc(0);

export interface BrokerServiceOptions {
  login: BrokerLogin;
  /** The names clients address this agent by. */
  names: string[];
  /** Where a new session's carrier goes: the agent's TLS listener ('connection'). */
  listener: EventEmitter;
  /** Whether the client of this name may learn that the agent is connected (allowedClients, as reloaded). */
  mayDiscover(client: string): boolean;
  log: Logger;
}

/** A token bucket: `burst` at once, then `perSecond`. */
export class AnswerBudget {
  private tokens: number;
  private at: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class BrokerService {
  private nc: NatsConnection | undefined;
  private readonly sessions = new Map<string, CarrierStream>();
  private readonly subscriptions: Subscription[] = [];
  private readonly discoveryBudget = new AnswerBudget(DISCOVERY_BURST, DISCOVERY_PER_SECOND, Date.now());
  private closed = false;

  constructor(private readonly options: BrokerServiceOptions) {}

  /** Connects in the background (and for ever, with backoff and jitter); the agent does not wait for it. */
  start(): void {
    const { login, log } = this.options;
    connectBroker(login, { persistent: true, timeoutMs: CONNECT_TIMEOUT_MS })
      .then((nc) => {
        if (this.closed) return void nc.close();
        this.nc = nc;
        for (const name of this.options.names) {
          this.subscriptions.push(
            nc.subscribe(agentInbox(name), { callback: (err, msg) => (err ? this.subscriptionFailed(err) : this.onMessage(msg)) }),
          );
        }
        this.subscriptions.push(
          nc.subscribe(DISCOVERY_REQUESTS, {
            callback: (err, msg) => (err ? this.discoveryRefused(err) : this.onDiscovery(msg)),
          }),
        );
        void this.watch(nc);
        // Said once the broker has the subscriptions: from then on clients find this agent.
        return nc.flush().then(() => log.info({ broker: nc.getServer(), names: this.options.names }, 'connected to the broker'));
      })
      .catch((err: unknown) => log.error({ reason: describeNatsError(err) }, 'cannot use the broker: no sessions through it'));
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.options.log.warn({ broker: status.server }, 'lost the broker connection; stopping its sessions');
        this.failAll('the agent lost its broker connection');
      } else if (status.type === 'reconnect') {
        this.options.log.info({ broker: status.server }, 'connected to the broker again');
      } else if (status.type === 'error') {
        this.options.log.warn({ reason: describeNatsError(status.error) }, 'broker error');
      }
    }
  }

  private subscriptionFailed(err: Error): void {
    this.options.log.error({ reason: describeNatsError(err) }, 'the broker refused a subscription: is this agent in the broker configuration?');
  }

  // Sessions do not need it: the agent still serves them.
  private discoveryRefused(err: Error): void {
    this.options.log.warn(
      { reason: describeNatsError(err) },
      'the broker refused the discovery subscription (a configuration from before discovery? write it again with distrun broker config): distrun hosts --discover will not see this agent',
    );
  }

  private onDiscovery(msg: Msg): void {
    let request: { clientToken: string; run: string };
    try {
      request = parseDiscoverySubject(msg.subject);
    } catch {
      return;
    }
    if (!this.options.mayDiscover(nameOfToken(request.clientToken))) return;
    if (!this.discoveryBudget.take(Date.now())) {
      this.options.log.debug({ client: request.clientToken }, 'discovery request not answered: more than the agent answers a second');
      return;
    }
    for (const name of this.options.names) this.publish(discoveryAnswerSubject(request, name), NOTHING);
  }

  private onMessage(msg: Msg): void {
    let reply: string;
    try {
      reply = replySubjectOf(msg.subject);
    } catch {
      return;
    }
    let carrier = this.sessions.get(msg.subject);
    if (!carrier) {
      // Only an OPEN starts a session; anything else is for one that is gone.
      if (msg.data[0] !== CarrierKind.OPEN || msg.data[1] !== 0 || msg.data[2] !== 0 || msg.data[3] !== 0 || msg.data[4] !== 0) {
        if (msg.data[0] !== CarrierKind.RESET)
          this.publish(reply, encodeReset(0, 'the agent no longer has this session (it restarted, or lost its broker connection)'));
        return;
      }
      carrier = this.open(msg.subject, reply);
    }
    carrier.receive(msg.data);
  }

  private open(subject: string, reply: string): CarrierStream {
    const { clientToken } = parseAgentSubject(subject);
    const carrier = new CarrierStream({
      window: SESSION_WINDOW,
      opens: false,
      remoteAddress: `broker:${clientToken}`,
      send: (message) => {
        if (!this.publish(reply, message)) throw new Error('no broker connection');
      },
    });
    this.sessions.set(subject, carrier);
    carrier.once('close', () => this.sessions.delete(subject));
    this.options.listener.emit('connection', carrier);
    return carrier;
  }

  private publish(subject: string, message: Buffer): boolean {
    const nc = this.nc;
    if (!nc || nc.isClosed()) return false;
    try {
      nc.publish(subject, message);
      return true;
    } catch {
      return false;
    }
  }

  private failAll(reason: string): void {
    for (const carrier of [...this.sessions.values()]) carrier.fail(reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll('the agent is shutting down');
    for (const sub of this.subscriptions) sub.unsubscribe();
    await this.nc?.drain().catch(() => {});
  }
}

export function brokerLogin(files: { ca: Buffer; cert: Buffer; key: Buffer }, urls: string[], names: string[]): BrokerLogin {
  return { ...files, urls, name: `distrunner-agent ${names.join(',')}` };
}
