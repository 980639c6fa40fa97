#!/usr/bin/env python3
"""Read `iscsi-test-cu -d` output.  Used by the iSCSI compliance test and
bench/iscsi-compliance.sh; not a test itself.

  cu-results.py FILE
      one "Suite.Test result" line per test (result: pass, fail or skip).
  cu-results.py --check EXPECTED RUN=FILE...
      compare the runs with EXPECTED (lines "RUN Suite.Test result", '#'
      comments): a test expected to pass must pass, one expected to skip
      must skip (or pass: reported, the list wants updating), one expected
      to fail may fail or pass; a test the list does not name must not fail,
      and a test the list names must have run.  Prints every difference
      and the counts over all runs; exits 1 on a
      regression."""
import re
import sys


def results(path):
    text = open(path, errors='replace').read()
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
    return res


def check(expected_path, runs):
    expected = {}
    for line in open(expected_path):
        line = line.split('#', 1)[0].split()
        if line:
            run, test, want = line
            expected[(run, test)] = want
    got = {}
    for arg in runs:
        run, path = arg.split('=', 1)
        for test, r in results(path).items():
            got[(run, test)] = r
    bad = 0
    for key, want in sorted(expected.items()):
        r = got.get(key)
        name = ' '.join(key)
        if r is None:
            print('MISSING: %s (expected %s) did not run' % (name, want))
            bad += 1
        elif want == 'pass' and r != 'pass':
            print('REGRESSION: %s: %s, expected pass' % (name, r))
            bad += 1
        elif want == 'skip' and r == 'fail':
            print('REGRESSION: %s: fail, expected skip' % name)
            bad += 1
        elif want == 'skip' and r == 'pass':
            print('note: %s passes now (expected skip): update the list' % name)
        elif want == 'fail' and r == 'fail':
            print('known failure: %s' % name)
        elif want == 'fail' and r == 'pass':
            print('note: %s passes now (a known failure): update the list' % name)
    for key, r in sorted(got.items()):
        if key not in expected:
            print('%s: %s %s (not in the list)' % (
                'FAILED' if r == 'fail' else 'note', ' '.join(key), r))
            bad += r == 'fail'
    vals = list(got.values())
    print('iscsi-test-cu results: %d pass, %d fail, %d skip' % (
        vals.count('pass'), vals.count('fail'), vals.count('skip')))
    return 1 if bad else 0


if len(sys.argv) > 2 and sys.argv[1] == '--check':
    sys.exit(check(sys.argv[2], sys.argv[3:]))
for k, v in results(sys.argv[1]).items():
    print(k, v)
