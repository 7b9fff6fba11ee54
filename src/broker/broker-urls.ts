// Broker addresses as users write them (`--broker`, $DISTRUN_BROKER, `broker:` in an
// inventory or agent.yaml): `host:port`, `tls://host:port` or `nats://host:port`, several
// separated by commas. Always TLS whatever the scheme says (a broker link without TLS is
// refused when it is made, broker-connection.ts). Kept apart from the NATS client so that
// reading a configuration does not load it.
import { isIP } from 'node:net';
import { UsageError } from '../errors.js';
import { isPlainName } from '../pki/names.js';

/** nats-server's own default client port. */
export const DEFAULT_BROKER_PORT = 4222;

/** `host:port` for each address in `text` (IPv6 in brackets), in order, without repeats. */
export function parseBrokerUrls(text: string, where: string): string[] {
  const urls: string[] = [];
  for (const raw of text.split(',').map((s) => s.trim())) {
    if (raw === '') throw new UsageError(`${where}: an empty broker address in ${JSON.stringify(text)}`);
    const rest = raw.replace(/^(tls|nats):\/\//, '');
    if (rest.includes('/') || rest.includes('@')) {
      throw new UsageError(
        `${where}: broker address ${JSON.stringify(raw)} must be host[:port] (credentials come from the certificate, not the address)`,
      );
    }
    const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(rest);
    const host = match?.[1] ?? match?.[2];
    const port = match?.[3] === undefined ? DEFAULT_BROKER_PORT : Number(match[3]);
    if (!host || !(isIP(host) || isPlainName(host)) || (match?.[1] !== undefined && isIP(host) !== 6) || port < 1 || port > 65535) {
      throw new UsageError(`${where}: invalid broker address ${JSON.stringify(raw)} (use host:port, e.g. nats1.example.com:4222)`);
    }
    const address = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
    if (!urls.includes(address)) urls.push(address);
  }
  return urls;
}
