// From the selection options (-i, -g, -H, -x) to the hosts: what every command that
// reaches hosts (run, hosts, ping) does first.
import { findInventorySources, loadInventories, selectTargets } from './inventory.js';
import type { Inventory, Target } from './model.js';

export interface SelectionOptions {
  /** -i, repeatable; `-` is stdin. */
  inventory?: string[];
  /** --ansible-inventory: read the inventory through Ansible's ansible-inventory. */
  ansibleInventory?: boolean;
  group?: string[];
  hosts?: string[];
  exclude?: string[];
}

export function resolveTargets(opts: SelectionOptions): Target[] {
  return resolveSelection(opts).targets;
}

/** The inventory (if any) and the hosts the selection options choose from it. */
export function resolveSelection(opts: SelectionOptions): { inventory: Inventory | undefined; targets: Target[] } {
  const sources = findInventorySources(opts.inventory);
  const inventory = sources ? loadInventories(sources, { throughAnsible: opts.ansibleInventory === true }) : undefined;
  return { inventory, targets: selectTargets(inventory, { groups: opts.group ?? [], hosts: opts.hosts ?? [], exclude: opts.exclude ?? [] }) };
}
