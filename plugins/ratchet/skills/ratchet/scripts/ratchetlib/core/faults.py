"""Injected faults, for tests and benches: a full disk, and kill -9 anywhere.

`RATCHET_FAULT` holds comma-separated `KIND:WHERE` entries, read at named
points of the code (never set it in normal use):

- `enospc:FILE` makes the next write of the state file FILE (`state.json`,
  `current.json`, `config.json`, `results.jsonl`, ... or `*` for every one)
  fail with ENOSPC after part of the data went out, as a full disk does.
- `kill:POINT` (or `kill:POINT@N`, the Nth time the point is reached) makes
  ratchet SIGKILL itself at POINT, one of `POINTS`: the fault-injection suite
  (tests/test_kill_points.py) kills a command at each one, runs the next
  command and checks that nothing was lost.

A point costs one environment lookup when no fault is armed.
"""

import errno
import os

ENV = "RATCHET_FAULT"

# Every named kill point, in the order an iteration meets them, and where it is.
POINTS = {
    "init-config": "init: the config and state are written, the experiment branch not yet checked out",
    "trial": "a trial's (or the guard's, the holdout's) command is running (runner.run; with --executor, its job "
             "is submitted: executor.py)",
    "sweeping": "a command ending what a killed command left running has stopped its keepers, not yet killed them",
    "trial-done": "a trial finished and is buffered in current.json; the next one has not started",
    "swap-saved": "paired: the candidate is saved to .ratchet/swap/, the tree not yet swapped",
    "swap-restored": "paired: a swap restored the incumbent's files, the candidate patch not yet re-applied",
    "swapped": "paired: the tree holds the incumbent while a pair runs",
    "decided": "the decision is in current.json, git has not acted",
    "committed": "a keep is committed, the record not yet written",
    "reverted": "a revert's patch is saved and the incumbent restored, the record not yet written",
    "record-torn": "half of the record line is written to results.jsonl",
    "recorded": "the record is written, state.json not yet replaced",
    "state-renamed": "state.json is replaced, current.json not yet removed",
    "verify-swapped": "verify: the tree holds the start commit's files",
    "verified": "a decision's tail verify (a --threshold confirmation, or due) wrote verify.json, state.json "
                "(`verified`, the stop it confirms) not yet replaced",
    "agent": "loop: the agent is running",
    "stop-saved": "stop: the unfinished change is saved as a patch, not yet undone",
    "finalize-commits": "finalize: the clean commits exist, the branch ref does not",
    "seal-adopt": "a run from before sealing: its key is made, one of its files sealed, the others not yet",
}

_seen = {}


def _entries(kind: str) -> list:
    spec = os.environ.get(ENV)
    if not spec:
        return []
    out = []
    for entry in spec.split(","):
        k, _, w = entry.strip().partition(":")
        if k == kind:
            out.append(w)
    return out


def _armed(kind: str, where: str) -> bool:
    return any(w in ("*", where) for w in _entries(kind))


def on_write(path: str, partial=None) -> None:
    """When `enospc:<basename of path>` is armed: call `partial()` (which
    writes part of the data, as a disk that fills up mid-write does), then
    raise ENOSPC. Otherwise nothing: the normal write follows."""
    if _armed("enospc", os.path.basename(path)):
        if partial is not None:
            partial()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def point(name: str, partial=None) -> None:
    """Kill point `name` (one of POINTS): when `kill:name[@N]` is armed and
    this is the Nth time here (default the first), call `partial()` (a torn
    write) and SIGKILL this process: no cleanup, no finally, as a kill -9."""
    wanted = [w for w in _entries("kill") if w.partition("@")[0] == name]
    if not wanted:
        return
    _seen[name] = _seen.get(name, 0) + 1
    for w in wanted:
        nth = w.partition("@")[2]
        if _seen[name] == (int(nth) if nth.isdigit() else 1):
            if partial is not None:
                partial()
            import signal  # only at a test's kill point: every command imports this module
            os.kill(os.getpid(), signal.SIGKILL)
