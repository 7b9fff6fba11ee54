// What targeting produces and every later layer reads: the hosts to run on and the
// inventory they came from. Types only, so that readers and loaders need not import each other.
import type { AnsibleView } from './ansible-data.js';

/**
 * How a host is reached, when something says so: directly (its address dialled) or through
 * the fleet's NATS brokers (addressed by its name). `by` names what said so (an inventory
 * entry, --broker, a recorded run); `urls`, the brokers that entry names, if any.
 */
export interface Reach {
  through: 'direct' | 'broker';
  by: string;
  urls?: string[];
}

/** One host to run on: `name` is how output shows it, `address` what is dialled. */
export interface Target {
  name: string;
  address: string;
  port: number;
  /** Which part of the selection chose this host (for `distrun hosts --explain`). */
  via?: string;
  /** Undefined: the inventory does not say (directly, unless --broker; execution/broker-route.ts). */
  reach?: Reach;
}

export interface HostEntry {
  address?: string;
  port?: number;
  reach?: Reach;
  /** Why this host cannot be dialled as its inventory means (an error when it is selected). */
  refused?: string;
}

export interface Inventory {
  file: string | undefined;
  /** `reach`: how hosts the inventory says nothing else of are reached. */
  defaults: { port: number; reach?: Reach };
  hosts: Map<string, HostEntry>;
  /** Group name → members: host names (optionally `name:port`) or `@group`. */
  groups: Map<string, string[]>;
  /** Host name → how it is reached, from lists of hosts and groups (a host's own entry wins over these). */
  reaches?: Map<string, Reach>;
  /** An Ansible inventory: patterns are then Ansible's (ansible-data.ts, issue 15). */
  ansible?: AnsibleView;
  /** What reading the inventory warned about (Ansible's warnings), shown on each load. */
  warnings?: string[];
}

/** The selection options (-g, -H, -x) as selectTargets takes them. */
export interface Selection {
  groups: string[];
  hosts: string[];
  exclude: string[];
}
