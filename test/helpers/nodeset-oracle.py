#!/usr/bin/env python3
"""ClusterShell's own answers about node sets, for test/nodeset-differential.test.ts.

One JSON request per line on stdin, one JSON answer per line on stdout, all in one
process (starting Python once per node set would make a few thousand of them slow).

  {"pattern": "n[1-3],m1"}     a node set string, as `nodeset -e/-f/-c` read it
  {"names": ["n1", "n2"]}      a set of single names, as `nodeset -f n1 n2` reads them

answer: {"expand": [...], "fold": "...", "count": N} or {"error": "..."}
"""
import json
import sys

from ClusterShell.Defaults import DEFAULTS
from ClusterShell.NodeSet import NodeSet, NodeSetException, RESOLVER_NOGROUP
from ClusterShell.RangeSet import RangeSetException

# The machine's defaults.conf must not change the reference: fold on every axis, no
# groups (nothing here is a group; `@` and wildcards would consult groups.conf).
DEFAULTS.fold_axis = ()

for line in sys.stdin:
    request = json.loads(line)
    try:
        if "names" in request:
            nodeset = NodeSet.fromlist(request["names"], resolver=RESOLVER_NOGROUP)
        else:
            nodeset = NodeSet(request["pattern"], resolver=RESOLVER_NOGROUP)
        answer = {"expand": list(nodeset), "fold": str(nodeset), "count": len(nodeset)}
    except (NodeSetException, RangeSetException, ValueError) as exc:
        answer = {"error": str(exc) or type(exc).__name__}
    sys.stdout.write(json.dumps(answer) + "\n")
