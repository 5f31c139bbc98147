#!/usr/bin/env python3
"""Runs every tests/integration/test_*.py against a cocod binary and prints
one line per test and a summary "integration: N passed, N failed" (skipped
tests are listed and not counted as passed)."""

import argparse
import os
import sys
import time
import unittest


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cocod", default="build/cocod")
    ap.add_argument("-k", dest="pattern", action="append", help="only tests matching")
    args = ap.parse_args()
    os.environ["COCOD_BIN"] = os.path.abspath(args.cocod)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = [f"*{p}*" for p in args.pattern]
    suite = loader.discover(here, pattern="test_*.py", top_level_dir=here)
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=Result)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    skipped = len(res.skipped)
    # A class skipped in setUpClass is one skip entry but no test run.
    ran_skipped = len([t for t, _ in res.skipped if isinstance(t, unittest.TestCase)])
    passed = res.testsRun - failed - ran_skipped
    print(f"integration: {passed} passed, {failed} failed ({skipped} skipped)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
