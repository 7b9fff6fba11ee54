#!/usr/bin/python3
"""What ansible-core makes of Ansible YAML inventories: the reference for
test/ansible-yaml-differential.test.ts. One process reads every inventory given on the
command line (Ansible takes about a second to import) and prints one JSON object:

  { FILE: { "yaml": null or the yaml plugin's error,
            "warnings": [...],
            "groups": [[name, [hosts in get_hosts() order]], ...],
            "hosts": [[name, {"address": ..., "distrun_port": ...,
                              "templated": [variables holding Jinja]}], ...] } }

"address" is what the ssh connection dials: its `host` option, whose variables are
inventory_hostname, ansible_host, ansible_ssh_host (the last one set wins). Variables come
from VariableManager.get_vars, as `ansible-inventory --host` gets them (group_vars/ and
host_vars/ next to the inventory included)."""
import json
import math
import sys

from ansible.inventory.data import InventoryData
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.utils.display import Display
from ansible.vars.manager import VariableManager

warnings = []
_warning = Display.warning


def _capture(self, msg, formatted=False):
    warnings.append(str(msg))


Display.warning = _capture

DIAL = ('ansible_host', 'ansible_ssh_host', 'distrun_port')


def templated(value):
    return isinstance(value, str) and any(s in value for s in ('{{', '{%', '{#'))


def plain(value):
    """JSON for a variable's value: dates and the like as their str(), inf and nan as 'inf', 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return json.loads(json.dumps(value, default=str))


def read(path):
    loader = DataLoader()
    # The yaml plugin on its own: did it read the file, or what did it say?
    yaml_error = None
    try:
        plugin = inventory_loader.get('yaml')
        if not plugin.verify_file(path):
            yaml_error = 'declined (verify_file)'
        else:
            plugin.parse(InventoryData(), loader, path, cache=False)
    except Exception as e:  # the plugin's own error is what we report
        yaml_error = '%s: %s' % (type(e).__name__, e)
    del warnings[:]
    inventory = InventoryManager(loader=loader, sources=[path])
    manager = VariableManager(loader=loader, inventory=inventory)
    result = {'yaml': yaml_error, 'warnings': list(warnings), 'groups': [], 'hosts': []}
    for name, group in inventory.groups.items():
        result['groups'].append([name, [h.name for h in group.get_hosts()]])
    for name, host in inventory.hosts.items():
        hostvars = manager.get_vars(host=host, include_hostvars=False, stage='all')
        address = name
        for var in ('ansible_host', 'ansible_ssh_host'):
            if hostvars.get(var) is not None:
                address = hostvars[var]
        result['hosts'].append([name, {
            'address': plain(address),
            'distrun_port': plain(hostvars.get('distrun_port')),
            'connection': plain(hostvars.get('ansible_connection')),
            'templated': [v for v in DIAL if templated(hostvars.get(v))],
        }])
    return result


def read_or_error(path):
    """Ansible itself failing on a source (InventoryManager raises) is an answer too."""
    try:
        return read(path)
    except Exception as e:
        return {'yaml': 'ansible failed: %s: %s' % (type(e).__name__, e), 'warnings': list(warnings), 'groups': [], 'hosts': []}


print(json.dumps({path: read_or_error(path) for path in sys.argv[1:]}, ensure_ascii=False))
