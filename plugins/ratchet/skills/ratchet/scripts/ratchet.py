#!/usr/bin/env python3
"""ratchet: keep a code change only when a benchmark proves it helped.

Usage: ratchet.py VERB [flags]    (ratchet.py --help lists the verbs)

This file only checks the Python version and calls ratchetlib/cli (the
flags, one handler per verb, the exit codes); the work is in ratchetlib/,
whose __init__.py maps every module by layer.
Exit codes: 0 ok, 2 usage or configuration error (nothing changed),
1 unexpected runtime failure (state left consistent), 130/143 interrupted;
`loop` also exits 3 when one of its budgets ran out (the run can go on).
"""

import sys

if sys.version_info < (3, 10):
    sys.stderr.write("ratchet: error: Python 3.10 or newer is required (this is %d.%d)\n" % sys.version_info[:2])
    sys.exit(2)

import os  # noqa: E402
import _signal as signal  # noqa: E402  (the C module under `signal`, without its enums: issue 18)

if __name__ == "__main__":  # Ctrl-C while the modules load: nothing has started, so a quiet 130; main() takes over
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))

from ratchetlib.cli.main import exit_process, main  # noqa: E402

if __name__ == "__main__":
    code = main()
    # Done: a SIGINT or SIGTERM now (atexit's cleanup, then the interpreter's
    # teardown, where Python puts the default handlers back) would only kill
    # the process and lose its exit code; there is nothing left to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_process(code)
