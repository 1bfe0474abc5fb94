#!/usr/bin/env bash
# Runs ratchet's whole test suite (stdlib unittest), one process per test
# class, several at once (tests/parallel.py says how). With arguments, plain
# `python3 -m unittest` runs instead and the arguments go to it
# (e.g. `test.sh tests.test_stats -v`; `test.sh discover -s tests -t .` is the serial whole suite).
set -euo pipefail
cd "$(dirname "$0")"
if [ "$#" -eq 0 ]; then
    exec python3 tests/parallel.py
fi
exec python3 -m unittest "$@"
