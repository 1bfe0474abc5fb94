"""Each side runs its own code, whatever caches the toolchain keeps.

ratchet switches files between sides in one working tree (the paired swap,
verify's start/best, a revert, a parallel proposal applied and undone, the
harness put back), often several times a second, and the two sides often
differ in a few bytes of the same size (`SPEED = 10` -> `SPEED = 20`). Caches
keyed by a file's mtime then serve the other side's code:

  - Python's bytecode cache (`__pycache__/NAME.TAG.pyc`) is valid while the
    source's mtime *in whole seconds* and its size match: two same-size
    versions written within one second share one .pyc;
  - `make`, setuptools' and Cython's "rebuild if newer" compare the source's
    mtime with the build product's. The kernel stamps a write with a coarse
    clock (one tick, 1-10 ms), so a swap right after a build can leave the
    source exactly as old as the product, and make keeps the other side's
    binary.

So after every switch, `switched(repo, paths)` does two things for each path:
  1. sets its mtime to a stamp strictly newer than every earlier stamp of this
     process and not older than now on the fine clock (`time.time_ns()`), so
     anything built before the switch is older than its source, whichever
     version the source went back to;
  2. removes the bytecode caches of a `.py` path (next to it and under
     `PYTHONPYCACHEPREFIX`), so Python compiles the side that is there.

Why not whole-second steps (a new second per switch) for Python too: a 1 ms
benchmark switches dozens of times a second, so the stamps would run minutes
ahead of the clock over an iteration and hours over a night; make would warn
of clock skew and every tool would see files from the future. Removing the
.pyc is exact and cheap. Where the file system keeps coarser times than
nanoseconds (the stamp reads back different), stamps step whole seconds
instead, so they still differ.

Stamps are newer than anything built before them as long as the wall clock
does not step back between commands (within a command they are monotonic).
Separate trees per side would avoid all of this but break relative paths,
ignored data folders and build outputs the benchmark expects in place.
"""

import glob
import os
import time

_SECOND = 1_000_000_000
_STEP_NS = 1_000  # consecutive stamps differ by at least a microsecond (a float mtime tells them apart)
_last_ns = 0
_coarse = False  # set once the file system was seen to keep whole seconds only


def next_stamp(now_ns: int, last_ns: int, coarse: bool = False) -> int:
    """The stamp after `last_ns` at `now_ns` (pure): >= now, > last; whole
    seconds when the file system keeps no finer times."""
    if coarse:
        return max(-(-now_ns // _SECOND), last_ns // _SECOND + 1) * _SECOND
    return max(now_ns, last_ns + _STEP_NS)


def bytecode_caches(full: str, prefix: str = None) -> list:
    """The cached bytecode files Python may use for the source `full`."""
    head, name = os.path.split(full)
    stem = name[:-3] if name.endswith(".py") else name[:-4]
    pattern = glob.escape(stem) + ".*.pyc"
    dirs = [os.path.join(head, "__pycache__")]
    if prefix:
        for h in dict.fromkeys((os.path.abspath(head), os.path.realpath(head))):
            dirs.append(os.path.join(prefix, h.lstrip(os.sep)))
    return [p for d in dirs for p in glob.glob(os.path.join(glob.escape(d), pattern))]


def switched(repo: str, rels) -> None:
    """Call after ratchet wrote, restored or removed the repository-relative
    `rels`: stamp the files that exist, drop the bytecode of `.py` ones."""
    global _last_ns, _coarse
    rels = [r for r in dict.fromkeys(rels) if r]
    if not rels:
        return
    stamp = _last_ns = next_stamp(time.time_ns(), _last_ns, _coarse)
    prefix = os.environ.get("PYTHONPYCACHEPREFIX")
    for rel in rels:
        full = os.path.join(repo, rel)
        if rel.endswith((".py", ".pyw")):
            for cache in bytecode_caches(full, prefix):
                try:
                    os.remove(cache)
                except OSError:
                    pass
        try:
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            os.utime(full, ns=(stamp, stamp))
            if not _coarse and os.stat(full).st_mtime_ns != stamp:
                _coarse = True  # this file system rounds: step whole seconds from now on
                stamp = _last_ns = next_stamp(time.time_ns(), _last_ns, True)
                os.utime(full, ns=(stamp, stamp))
        except OSError:
            pass  # a file that vanished or cannot be stamped keeps its own time (git wrote it just now)
