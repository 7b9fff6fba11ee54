#!/usr/bin/env python3
# Python's own answers for test/python-regex-differential.test.ts: reads
# {"regexes": [...], "globs": [...], "names": [...]} as JSON on stdin and prints, for each
# regex, re.match over every name (or the compile error), and for each glob, fnmatch's
# translate() matched over every name, as Ansible's _match_list applies them.
import fnmatch
import json
import re
import sys
import warnings

warnings.simplefilter('ignore')
data = json.load(sys.stdin)
names = data['names']


def matches(compile_source):
    try:
        pattern = re.compile(compile_source)
    except Exception as err:
        return {'error': str(err)}
    return {'match': [bool(pattern.match(n)) for n in names]}


json.dump({
    'regexes': [matches(r) for r in data['regexes']],
    'globs': [matches(fnmatch.translate(g)) for g in data['globs']],
}, sys.stdout)
