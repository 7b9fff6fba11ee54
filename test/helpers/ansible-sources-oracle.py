#!/usr/bin/env python3
# What ansible-core makes of inventory sources, for test/ansible-sources-differential.test.ts:
# one process for every case (Ansible takes about a second to import). Reads a JSON list of
# cases on stdin, each {"id": ..., "sources": [paths]}; prints {id: result}, where a result
# is {"ok": true, "hosts": [...], "groups": {name: [hosts in get_hosts() order]},
# "dial": {host: {"address": ..., "port": ..., "jinja": bool}}} or {"ok": false, "error": ...}.
# A `.json` source is read as inventory-script output (what `ansible-inventory --list`
# prints): Ansible reads that format only from a script, so the script plugin is given
# the file's text as if a script had printed it. A case {"id": ..., "parse": {"values": [...],
# "lines": [...], "patterns": [...]}} gets ini.py's _parse_value, shlex_split and
# _expand_hostpattern of each input instead: {"value": ...}, {"error": ...} or
# {"unsupported": ...} (a value JSON cannot carry).
import json
import math
import os
import subprocess
import sys

# Ansible warns and goes on when a source does not parse: here that is a failure.
os.environ['ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED'] = 'True'
os.environ['ANSIBLE_INVENTORY_UNPARSED_FAILED'] = 'True'
os.environ.setdefault('ANSIBLE_LOCALHOST_WARNING', 'False')

from ansible.inventory.manager import InventoryManager  # noqa: E402
from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.vars.manager import VariableManager  # noqa: E402
import ansible.plugins.inventory.script as script_plugin  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin  # noqa: E402
from ansible.plugins.inventory.ini import InventoryModule as IniModule  # noqa: E402
from ansible.utils.shlex import shlex_split  # noqa: E402


class FileAsScriptOutput:
    """subprocess.Popen for the script plugin: `F.json --list` prints F's text."""

    def __init__(self, cmd, stdout=None, stderr=None):
        self.cmd = cmd
        self.returncode = 0

    def communicate(self):
        if self.cmd[1] == '--list':
            with open(self.cmd[0], 'rb') as f:
                return f.read(), b''
        return b'{}', b''


class Subprocess:
    PIPE = subprocess.PIPE

    @staticmethod
    def Popen(cmd, **kwargs):
        return FileAsScriptOutput(cmd) if cmd[0].endswith('.json') else subprocess.Popen(cmd, **kwargs)


script_plugin.subprocess = Subprocess
_verify = script_plugin.InventoryModule.verify_file
script_plugin.InventoryModule.verify_file = lambda self, path: (path.endswith('.json') and os.path.isfile(path)) or _verify(self, path)

DEFAULT_PORT = 6789


def dial(hostvars, name):
    address = name
    for key in ('ansible_host', 'ansible_ssh_host'):  # ssh.py's `host` vars: the later wins
        if hostvars.get(key) is not None:
            address = hostvars[key]
    # null is unset, as for the connection's own variables
    port = hostvars.get('distrun_port')
    if port is None:
        port = DEFAULT_PORT
    jinja = any(isinstance(v, str) and ('{{' in v or '{%' in v or '{#' in v) for v in (address, port))
    return {'address': address, 'port': port, 'jinja': jinja}


def one(sources):
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=sources)
    variables = VariableManager(loader=loader, inventory=inventory)
    groups = {name: [h.name for h in g.get_hosts()] for name, g in inventory.groups.items()}
    out = {}
    for host in inventory.hosts.values():
        out[host.name] = dial(variables.get_vars(host=host, include_hostvars=False), host.name)
    return {'ok': True, 'hosts': list(inventory.hosts.keys()), 'groups': groups, 'dial': out}


def plain(value):
    """JSON for a value, or raises TypeError for what JSON has no form for (complex, set, ...)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError('non-finite float')
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) or (isinstance(k, int) and not isinstance(k, bool)) for k in value):
            raise TypeError('key')
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(type(value).__name__)


def attempt(fn):
    try:
        result = fn()
    except Exception as e:
        return {'error': str(e)}
    try:
        return {'value': plain(result)}
    except TypeError as e:
        return {'unsupported': str(e)}


def functions(parse):
    """ini.py's value and host-line parsers and the host pattern expansion, on many inputs."""
    return {
        'values': [attempt(lambda v=v: IniModule._parse_value(v)) for v in parse.get('values', [])],
        'lines': [attempt(lambda l=l: shlex_split(l, comments=True)) for l in parse.get('lines', [])],
        'patterns': [attempt(lambda p=p: list(BaseInventoryPlugin._expand_hostpattern(None, p))) for p in parse.get('patterns', [])],
    }


def main():
    results = {}
    for case in json.load(sys.stdin):
        if 'parse' in case:
            results[case['id']] = functions(case['parse'])
            continue
        try:
            results[case['id']] = one(case['sources'])
        except Exception as e:  # the failure is the answer
            results[case['id']] = {'ok': False, 'error': str(e)}
    json.dump(results, sys.stdout, default=str)


main()
