#!/usr/bin/env python3
# The real ansible-core as an oracle for host patterns (test/ansible-patterns-differential.test.ts).
# One process per inventory: `ansible-pattern-oracle.py INVENTORY < patterns.json` loads
# INVENTORY with ansible's InventoryManager and prints, as JSON, the inventory as Ansible
# holds it (hosts in order, each group's get_hosts()) and, for every pattern, the host
# names list_hosts() gives in order (or the error), with the warnings Ansible printed.
import json
import sys

from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.utils.display import Display

warnings = []
Display.warning = lambda self, msg, formatted=False: warnings.append(msg)


def main():
    inventory = InventoryManager(loader=DataLoader(), sources=[sys.argv[1]])
    patterns = json.load(sys.stdin)
    data = inventory._inventory
    view = {
        'hosts': list(data.hosts.keys()),
        'groups': {name: [h.name for h in g.get_hosts()] for name, g in data.groups.items()},
    }
    del warnings[:]
    results = []
    for pattern in patterns:
        # Each pattern on its own: no cached matches, no implicit localhost left from before.
        inventory.clear_caches()
        data.localhost = None
        del warnings[:]
        try:
            hosts = inventory.list_hosts(pattern)
            results.append({'hosts': [getattr(h, 'name', h) for h in hosts], 'warnings': list(warnings)})
        except Exception as err:  # what ansible would stop with
            results.append({'error': '%s: %s' % (type(err).__name__, err), 'warnings': list(warnings)})
    json.dump({'view': view, 'results': results}, sys.stdout)


main()
