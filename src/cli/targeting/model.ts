// What targeting produces and every later layer reads: the hosts to run on and the
// inventory they came from. Types only, so that readers and loaders need not import each other.
import type { AnsibleView } from './ansible-data.js';

/** One host to run on: `name` is how output shows it, `address` what is dialled. */
export interface Target {
  name: string;
  address: string;
  port: number;
  /** Which part of the selection chose this host (for `distrun hosts --explain`). */
  via?: string;
}

export interface HostEntry {
  address?: string;
  port?: number;
  /** Why this host cannot be dialled as its inventory means (an error when it is selected). */
  refused?: string;
}

export interface Inventory {
  file: string | undefined;
  defaults: { port: number };
  hosts: Map<string, HostEntry>;
  /** Group name → members: host names (optionally `name:port`) or `@group`. */
  groups: Map<string, string[]>;
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
