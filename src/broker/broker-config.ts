// The nats-server configuration for a fleet's broker cluster (`distrun broker config`),
// written from the PKI's record of what it issued. nats-server then enforces, before any
// message moves:
// - who connects: mutual TLS with the fleet CA, each certificate mapped to a user by its
//   full subject (verify_and_map; "OU=agent,O=DistRunner,CN=web1"), which names the role,
//   so an agent and a client of the same name are different users, and a certificate
//   nobody listed gets no connection;
// - what each may do: an agent subscribes only to the sessions addressed to its own
//   names (and to discovery requests) and publishes only replies that name it; a client
//   publishes only requests that name it and subscribes only to its own replies
//   (protocol/carrier.ts, subjects);
// - who is a cluster node: route connections need TLS with the CA and a secret shared by
//   the nodes of this configuration (written 0600; a client's certificate alone is not
//   enough to pose as a node).
// None of this is what keeps commands safe (each session is TLS end to end with its
// agent); it keeps the broker from being a free-for-all.
import { isIP } from 'node:net';
import { UsageError } from '../errors.js';
import { isPlainName } from '../pki/names.js';
import { DISCOVERY_REQUESTS, MAX_CARRIER_DATA, nameToken, SUBJECT_ROOT } from '../protocol/carrier.js';

export interface BrokerNode {
  name: string;
  /** Where clients and agents dial it (its certificate must name it). */
  host: string;
  clientPort: number;
  clusterPort: number;
  files: { cert: string; key: string; ca: string };
}

export interface FleetMember {
  role: 'agent' | 'client';
  /** The certificate's common name. */
  name: string;
  /** Every name an agent answers to (its certificate's DNS and IP names). */
  names: string[];
}

/** A carrier message at most, and room for NATS headers. */
const BROKER_MAX_PAYLOAD = MAX_CARRIER_DATA + 4096;

/** The user nats-server maps a certificate of our PKI to (Go's RFC 2253 form of its subject: CN, O, OU reversed). */
function brokerUser(role: string, name: string): string {
  return `OU=${role},O=DistRunner,CN=${name}`;
}

const quote = (text: string): string => JSON.stringify(text);

function userEntry(member: FleetMember): string {
  const user = quote(brokerUser(member.role, member.name));
  if (member.role === 'agent') {
    const tokens = [...new Set(member.names.map(nameToken))];
    const subscribe = [...tokens.map((t) => quote(`${SUBJECT_ROOT}.agent.${t}.>`)), quote(DISCOVERY_REQUESTS)];
    const publish = tokens.map((t) => quote(`${SUBJECT_ROOT}.client.*.*.${t}.>`));
    return `    { user: ${user}, permissions: { publish: { allow: [${publish.join(', ')}] }, subscribe: { allow: [${subscribe.join(', ')}] } } }`;
  }
  const t = nameToken(member.name);
  const publish = [quote(`${SUBJECT_ROOT}.agent.*.${t}.>`), quote(`${SUBJECT_ROOT}.discover.${t}.*`)];
  return `    { user: ${user}, permissions: { publish: { allow: [${publish.join(', ')}] }, subscribe: { allow: [${quote(`${SUBJECT_ROOT}.client.${t}.>`)}] } } }`;
}

const hostPort = (host: string, port: number): string => (isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`);

/** One node's configuration file; `routeSecret` is the same for every node of the cluster. */
export function brokerConfig(node: BrokerNode, cluster: BrokerNode[], members: FleetMember[], routeSecret: string, written: string): string {
  if (!isPlainName(node.name)) throw new UsageError(`invalid broker name ${quote(node.name)}`);
  const tlsBlock = (indent: string, verify: 'verify_and_map' | 'verify'): string =>
    [
      `${indent}tls {`,
      `${indent}  cert_file: ${quote(node.files.cert)}`,
      `${indent}  key_file: ${quote(node.files.key)}`,
      `${indent}  ca_file: ${quote(node.files.ca)}`,
      `${indent}  ${verify}: true`,
      `${indent}  timeout: 5`,
      `${indent}}`,
    ].join('\n');
  const peers = cluster.filter((n) => n.name !== node.name).map((n) => quote(`nats-route://route:${routeSecret}@${hostPort(n.host, n.clusterPort)}`));
  const agents = members.filter((m) => m.role === 'agent');
  const clients = members.filter((m) => m.role === 'client');
  return [
    `# nats-server configuration for broker ${node.name} of a DistRunner fleet, written by`,
    `# \`distrun broker config\` on ${written}: ${agents.length} agents, ${clients.length} clients.`,
    '# Write it again after issuing or revoking certificates, and reload nats-server (SIGHUP).',
    '# It holds the cluster route secret: keep it 0600.',
    `server_name: ${quote(node.name)}`,
    `listen: ${quote(hostPort(node.host, node.clientPort))}`,
    `max_payload: ${BROKER_MAX_PAYLOAD}`,
    tlsBlock('', 'verify_and_map'),
    'authorization {',
    '  users = [',
    ...members.map(userEntry),
    '  ]',
    '}',
    'cluster {',
    '  name: "distrun"',
    `  listen: ${quote(hostPort(node.host, node.clusterPort))}`,
    tlsBlock('  ', 'verify'),
    `  authorization { user: "route", password: ${quote(routeSecret)}, timeout: 5 }`,
    `  routes: [${peers.join(', ')}]`,
    '}',
    '',
  ].join('\n');
}
