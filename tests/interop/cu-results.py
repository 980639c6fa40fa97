#!/usr/bin/env python3
"""Turn `iscsi-test-cu -d` output into one "Suite.Test result" line per
test (result: pass, fail or skip).  Used by the iSCSI compliance test and
bench/iscsi-compliance.sh; not a test itself."""
import re
import sys

text = open(sys.argv[1], errors='replace').read()
suite, cur, buf, res = None, None, '', {}


def flush():
    if cur is None:
        return
    # CUnit's verdict is a bare "passed" or "FAILED"; "[FAILED] ..." and
    # "[SKIPPED] ..." are libiscsi's log lines (cleanup noise included).
    if re.search(r'(?<!\[)FAILED(?!\])', buf):
        res[cur] = 'fail'
    elif '[SKIPPED]' in buf and re.search(r'(?<!\[)passed', buf):
        res[cur] = 'skip'   # the whole test or a part skipped itself
    elif re.search(r'(?<!\[)passed', buf):
        res[cur] = 'pass'
    else:
        res[cur] = 'fail'   # cut off (a crash or a timeout)


for tok in re.split(r'(Suite: [^\n]*|\n  Test: \S* \.\.\.)', text):
    if tok.startswith('Suite: '):
        flush()
        cur, buf = None, ''
        suite = tok[7:].strip()
    elif tok.startswith('\n  Test: '):
        flush()
        buf = ''
        cur = suite + '.' + tok[9:-4]
    else:
        buf += tok
flush()
for k, v in res.items():
    print(k, v)
