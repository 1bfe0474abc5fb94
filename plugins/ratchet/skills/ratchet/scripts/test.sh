#!/usr/bin/env bash
# Runs ratchet's whole test suite (stdlib unittest). Extra arguments go to unittest.
set -euo pipefail
cd "$(dirname "$0")"
exec python3 -m unittest discover -s tests -t . "$@"
