// What distrun dials for a host of an Ansible inventory, from the host's variables in
// Ansible's precedence (ansible-data.ts hostVariables). The address is what Ansible's ssh
// connection would connect to: its `host` option reads inventory_hostname, ansible_host,
// ansible_ssh_host, and the last of them that is set (not null) wins. The port is the
// agent's: `distrun_port`, else the inventory's default — never ansible_port,
// ansible_ssh_port or a `host:port` key, which are ssh's. A value distrun cannot compute
// as Ansible would (a Jinja template, an encrypted or tagged value) is refused, naming
// the file, the host and the variable. `distrun_connect` (direct or broker) says how the
// host is reached, and `distrun_broker` (host:port, a list or comma separated) through
// which brokers, set like any variable (on `all`, a group or the host).
import { parseBrokerUrls } from '../../broker/broker-urls.js';
import type { Vars } from './ansible-data.js';
import type { HostEntry } from './model.js';
import { PyOpaque, pyStr } from './ansible-yaml-load.js';

/** Connections that reach the host over ssh, whose address rule this is (smart is ssh). */
const SSH_CONNECTIONS = ['smart', 'ssh', 'ansible.builtin.ssh'];

/** The variables the ssh connection's `host` option reads, lowest first. */
const ADDRESS_VARIABLES = ['ansible_host', 'ansible_ssh_host'];
const PORT_VARIABLE = 'distrun_port';
const CONNECT_VARIABLE = 'distrun_connect';
const BROKER_VARIABLE = 'distrun_broker';

/** Templar.is_possibly_template with Jinja's default delimiters. */
const isTemplate = (value: unknown): boolean => typeof value === 'string' && ['{{', '{%', '{#'].some((start) => value.includes(start));

/** Why a value cannot be used as it is, or undefined. */
function problem(variable: string, value: unknown): string | undefined {
  const instead = variable === PORT_VARIABLE ? '-H ADDRESS:PORT' : '-H ADDRESS';
  if (isTemplate(value)) {
    return (
      `${variable} is a Jinja template (${JSON.stringify(value)}), which distrun does not evaluate (nor does ansible-inventory --list): ` +
      `write the value out, or give the host with ${instead}`
    );
  }
  if (value instanceof PyOpaque) {
    return `${variable} is a YAML ${value.tag} value, which distrun cannot read (${value.tag === '!vault' ? 'ansible-vault' : 'decoded by Ansible only'}): write the value out, or give the host with ${instead}`;
  }
  return undefined;
}

/**
 * The address and port to dial for `host`, or why the host cannot be dialled. A refused
 * host is an error only when it is selected: the rest of the inventory stays usable.
 */
export function dialEntry(host: string, vars: Vars, file: string): HostEntry {
  const entry: HostEntry = {};
  const refuse = (message: string): HostEntry => ({ refused: `${file}: host ${host}: ${message}` });
  // Another connection (local, docker, winrm...) does not ssh to an address: Ansible would
  // run the host's tasks elsewhere than where distrun would dial.
  const connection = vars.ansible_connection;
  if (connection !== undefined && connection !== null) {
    const why = problem('ansible_connection', connection);
    if (why) return refuse(why);
    if (typeof connection !== 'string' || !SSH_CONNECTIONS.includes(connection)) {
      return refuse(
        `ansible_connection is ${pyStr(connection)}: Ansible does not reach this host by ssh to an address, so distrun cannot tell where to dial; give it with -H ADDRESS`,
      );
    }
  }
  let addressVariable: string | undefined;
  for (const variable of ADDRESS_VARIABLES) if (vars[variable] !== undefined && vars[variable] !== null) addressVariable = variable;
  if (addressVariable !== undefined) {
    const value = vars[addressVariable];
    const why = problem(addressVariable, value);
    if (why) return refuse(why);
    if (typeof value !== 'string' || value.trim() === '') return refuse(`${addressVariable} must be a host name or address, got ${pyStr(value)}`);
    entry.address = value;
  }
  const port = vars[PORT_VARIABLE];
  if (port !== undefined && port !== null) {
    const why = problem(PORT_VARIABLE, port);
    if (why) return refuse(why);
    const n = typeof port === 'number' ? port : typeof port === 'string' && /^[0-9]+$/.test(port) ? Number(port) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) return refuse(`${PORT_VARIABLE} must be an integer from 1 to 65535, got ${pyStr(port)}`);
    entry.port = n;
  }
  const connect = vars[CONNECT_VARIABLE];
  let through: 'direct' | 'broker' | undefined;
  if (connect !== undefined && connect !== null) {
    const why = problem(CONNECT_VARIABLE, connect);
    if (why) return refuse(why);
    if (connect !== 'direct' && connect !== 'broker') return refuse(`${CONNECT_VARIABLE} must be direct or broker, got ${pyStr(connect)}`);
    through = connect;
  }
  const brokers = vars[BROKER_VARIABLE];
  let urls: string[] | undefined;
  if (brokers !== undefined && brokers !== null) {
    const why = problem(BROKER_VARIABLE, brokers);
    if (why) return refuse(why);
    const list = Array.isArray(brokers) ? brokers : [brokers];
    if (list.length === 0 || !list.every((b) => typeof b === 'string')) {
      return refuse(`${BROKER_VARIABLE} must be host:port of each broker, a list or comma separated, got ${pyStr(brokers)}`);
    }
    try {
      urls = parseBrokerUrls(list.join(','), BROKER_VARIABLE);
    } catch (err) {
      return refuse((err as Error).message);
    }
  }
  // Naming brokers makes them the way in, unless distrun_connect says otherwise (as --broker does).
  if (through !== undefined || urls !== undefined) {
    entry.reach = {
      through: through ?? 'broker',
      by: `${file}: ${through !== undefined ? CONNECT_VARIABLE : BROKER_VARIABLE} of ${host}`,
      ...(urls ? { urls } : {}),
    };
  }
  return entry;
}
