"""Injected faults, for tests and benches: what a full disk does to ratchet.

`RATCHET_FAULT` holds comma-separated `KIND:WHERE` entries, read at named
points of the code (never set it in normal use). Only `enospc` exists:
`enospc:state.json` makes the next write of `.ratchet/state.json` fail with
ENOSPC after part of the data went out, as a full disk does; WHERE is the
base name of a state file (`state.json`, `current.json`, `config.json`,
`results.jsonl`, ...) or `*` for every one. The check costs one environment
lookup per state write.
"""

import errno
import os

ENV = "RATCHET_FAULT"


def _armed(kind: str, where: str) -> bool:
    spec = os.environ.get(ENV)
    if not spec:
        return False
    for entry in spec.split(","):
        k, _, w = entry.strip().partition(":")
        if k == kind and w in ("*", where):
            return True
    return False


def on_write(path: str, partial=None) -> None:
    """When `enospc:<basename of path>` is armed: call `partial()` (which
    writes part of the data, as a disk that fills up mid-write does), then
    raise ENOSPC. Otherwise nothing: the normal write follows."""
    if _armed("enospc", os.path.basename(path)):
        if partial is not None:
            partial()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
