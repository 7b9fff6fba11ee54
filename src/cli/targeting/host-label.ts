// How a host is named in a message about it: its name alone when that says where it
// is, else with the address and port dialled (a wrong port is the usual mistake).
import { DEFAULT_AGENT_PORT } from '../../protocol/constants.js';
import { joinHostPort } from './host-address.js';
import type { Target } from './model.js';

/** `10.0.0.5:6789`, `[2001:db8::5]:6789`: what is dialled. */
export function dialAddress(target: Pick<Target, 'address' | 'port'>): string {
  return joinHostPort(target.address, target.port);
}

/** Whether `target` is reached through the fleet's brokers (by its name) rather than dialled. */
export function throughBroker(target: Pick<Target, 'reach'>): boolean {
  return target.reach?.through === 'broker';
}

/**
 * `web1`; `web1 (10.0.0.5:6790)` when the name is not the address or the port not the
 * default; `10.0.0.5:6790`. A host reached through a broker is its name alone: nothing
 * dials its address.
 */
export function hostLabel(target: Target): string {
  if (throughBroker(target)) return target.name;
  if (target.name === dialAddress(target)) return target.name; // named with its port (selectTargets)
  if (target.name !== target.address) return `${target.name} (${dialAddress(target)})`;
  return target.port === DEFAULT_AGENT_PORT ? target.name : dialAddress(target);
}
