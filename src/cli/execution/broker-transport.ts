// Hosts reached through the fleet's NATS brokers (`--broker`, $DISTRUN_BROKER). One
// broker connection per run, one subscription for the run's replies; each host session
// is a carrier (broker/carrier-stream.ts) with the same TLS connection to the agent as a
// direct session (tls-transport.ts), checked by name, CA and CRL in the same code. The
// broker only carries TLS records.
//
// "No answer" is exact: a host whose agent is not connected to the broker is reported at
// once (NATS answers the first message with "no responders"); a session cut by the broker
// link or by lost messages is reported with that reason; one that goes silent ends in the
// session's own timeouts, as on a direct connection.
import { BrokerError, type Msg, type NatsConnection } from '../../broker/broker-connection.js';
import { CarrierStream } from '../../broker/carrier-stream.js';
import { ErrorCodes } from '../../errors.js';
import { nameToken, newId, parseClientSubject, runInbox, toAgentSubject, toClientSubject, type SessionAddress } from '../../protocol/carrier.js';
import { TlsTransport, type TlsTransportOptions } from './tls-transport.js';
import type { ConnectionProblem } from './transport.js';

/** What all sessions of a run may have in flight from their agents together, spread over the fanout. */
const RUN_WINDOW_BYTES = 16 * 1024 * 1024;
const MIN_WINDOW = 64 * 1024;
const MAX_WINDOW = 1024 * 1024;
/** NATS's status for a message nobody subscribes to. */
const NO_RESPONDERS = 503;

interface Route {
  stream: CarrierStream;
  /** Why the session ended, when the broker or the carrier knows better than TLS. */
  problem?: ConnectionProblem;
  /** The agent's first message has come. */
  answered: boolean;
}

export class BrokerRun {
  readonly run = newId();
  private readonly routes = new Map<string, Route>();
  private readonly window: number;
  private lost: string | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly client: string,
    fanout: number,
  ) {
    this.window = Math.min(MAX_WINDOW, Math.max(MIN_WINDOW, Math.floor(RUN_WINDOW_BYTES / fanout)));
  }

  /** Connects, subscribes to the run's replies and makes sure the broker has the subscription before anything is sent. */
  static async open(nc: NatsConnection, client: string, fanout: number): Promise<BrokerRun> {
    const run = new BrokerRun(nc, client, fanout);
    let refused: Error | undefined;
    nc.subscribe(runInbox(client, run.run), {
      callback: (err, msg) => {
        if (err) {
          refused = err;
          run.failAll({ code: ErrorCodes.BROKER, message: `the broker refused our subscription: ${err.message}` });
        } else run.onMessage(msg);
      },
    });
    await nc.flush();
    if (refused) throw new BrokerError(`the broker refused our subscription (is client ${client} in its configuration?): ${refused.message}`);
    void run.watch();
    return run;
  }

  private async watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') {
        this.lost = `the broker connection (${status.server}) was lost`;
        this.failAll({ code: ErrorCodes.DISCONNECTED, message: `${this.lost} during the session` });
      } else if (status.type === 'reconnect') {
        this.lost = undefined;
      }
    }
  }

  /** A transport to the agent `address` (the name it is checked by, and addressed by in subjects). */
  transport(options: Omit<TlsTransportOptions, 'stream'>): TlsTransport {
    return new BrokerTransport(this, options);
  }

  /** A new session's carrier to `agent`, registered for its replies. */
  route(agent: string): Route {
    const address: SessionAddress = { agent, client: this.client, run: this.run, session: newId() };
    const toAgent = toAgentSubject(address);
    const reply = toClientSubject(address);
    const key = `${nameToken(agent)}.${address.session}`;
    let first = true;
    const stream = new CarrierStream({
      window: this.window,
      opens: true,
      remoteAddress: `broker:${agent}`,
      send: (message) => {
        if (this.lost !== undefined || this.nc.isClosed()) throw new Error('no broker connection');
        // The first message names a reply subject, so that the broker says at once when no agent has this name.
        this.nc.publish(toAgent, message, first ? { reply } : undefined);
        first = false;
      },
    });
    const route: Route = { stream, answered: false };
    this.routes.set(key, route);
    stream.once('close', () => this.routes.delete(key));
    if (this.lost !== undefined) route.problem = { code: ErrorCodes.BROKER, message: `not started: ${this.lost}` };
    return route;
  }

  private onMessage(msg: Msg): void {
    let key: string;
    try {
      const { agentToken, session } = parseClientSubject(msg.subject);
      key = `${agentToken}.${session}`;
    } catch {
      return;
    }
    const route = this.routes.get(key);
    if (!route) return;
    if (msg.headers?.code === NO_RESPONDERS) {
      route.problem = { code: ErrorCodes.OFFLINE, message: 'offline: no agent of this name is connected to the broker' };
      route.stream.fail(route.problem.message);
      return;
    }
    route.answered = true;
    route.stream.receive(msg.data);
  }

  private failAll(problem: ConnectionProblem): void {
    for (const route of [...this.routes.values()]) {
      route.problem ??= problem;
      route.stream.fail(problem.message);
    }
  }

  async close(): Promise<void> {
    await this.nc.close().catch(() => {});
  }
}

class BrokerTransport extends TlsTransport {
  private route: Route | undefined;

  private readonly name: string;

  constructor(run: BrokerRun, options: Omit<TlsTransportOptions, 'stream'>) {
    super({
      ...options,
      stream: () => {
        this.route = run.route(options.address);
        return this.route.stream;
      },
    });
    this.name = options.address;
  }

  override describeFailure(err: Error, agentAnswered: boolean): ConnectionProblem {
    if (this.route?.problem) return this.route.problem;
    // Nothing was dialled: what answered is not the host this session was addressed to.
    if ((err as NodeJS.ErrnoException).code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return {
        code: ErrorCodes.TLS,
        message: `the agent that answered through the broker is not ${this.name} (its certificate does not name it); refusing to talk to it`,
      };
    }
    return super.describeFailure(err, agentAnswered);
  }

  override describeSilence(limit: string): ConnectionProblem {
    if (this.route?.problem) return this.route.problem;
    if (!this.route?.answered) {
      return {
        code: ErrorCodes.HANDSHAKE_TIMEOUT,
        message: `no answer through the broker within ${limit} (its agent subscribes but does not answer)`,
      };
    }
    return super.describeSilence(limit);
  }
}
