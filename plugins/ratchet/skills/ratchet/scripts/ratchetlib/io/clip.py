"""Bound what a trial's captured output keeps on disk: its head and its tail.

A trial's stdout and stderr stream straight to files (runner.py), so a
command that prints a gigabyte costs ratchet no memory, but the disk holds
the whole output until the trial has ended and its metric has been read
from every line. Then `clip` replaces a file larger than HEAD + TAIL by its
first HEAD bytes and last TAIL bytes (cut at line ends when there are any),
with a one-line note where the middle was: the start (what ran, the config
it printed) and the end (the summary, the traceback) are what a reader needs.
So disk use is bounded per finished trial, and temporarily holds the full
output of the trial that runs.

`age` bounds it per run too: a night of iterations of a benchmark that
logs megabytes would otherwise keep HEAD + TAIL of every output of every
trial. Once AGE_AFTER more iterations have been decided, an iteration's
outputs (its trials', verify runs', guard's and agent calls') are cut again,
to OLD_HEAD + OLD_TAIL; the caller spares the baseline and the incumbent's
and best's iterations. The records keep naming the same files.
"""

from __future__ import annotations

import itertools
import os

from .store import atomic_write

HEAD = 1 << 20
TAIL = 4 << 20
_SLACK = 1024
AGE_AFTER = 20
OLD_HEAD, OLD_TAIL = 16 << 10, 64 << 10


def trim(path: str, head: int = HEAD, tail: int = TAIL) -> int | None:
    """Keep `path`'s head and tail with a note between; the bytes cut, or
    None when the file is small enough (or absent)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    if size <= head + tail + _SLACK:  # _SLACK: a clipped file, note included, is never clipped again
        return None
    with open(path, "rb") as f:
        first = f.read(head)
        f.seek(size - tail)
        last = f.read(tail)
    end = first.rfind(b"\n")
    first = first[: end + 1] if end >= 0 else first
    start = last.find(b"\n")
    last = last[start + 1:] if 0 <= start < len(last) - 1 else last
    cut = size - len(first) - len(last)
    sep = "" if first.endswith(b"\n") or not first else "\n"
    note = (f"{sep}[ratchet: {cut} bytes cut here; the output was {size} "
            f"bytes, of which the first {len(first)} and the last {len(last)} are kept]\n")
    atomic_write(path, first + note.encode() + last)
    return cut


def age(store, iteration: int) -> None:
    """Cut every output iteration `iteration` left to OLD_HEAD + OLD_TAIL (see the module doc)."""
    for path in _outputs(store, iteration):
        trim(path, OLD_HEAD, OLD_TAIL)


def _outputs(store, it: int) -> list:
    """The output files of iteration `it` that exist, found by their names
    (FORMATS.md: reports/, agents/), never by listing folders that hold a
    whole run's: its trials' (numbered from 1, its verify runs' from 101, each
    with at least its report), its guard's, its agent calls' (one, or one a slot)."""
    found = []
    for first in (1, 101):
        k = first
        while True:
            have = [p for ext in ("txt", "out", "err", "cancel") for p in [store.report_path(it, k, ext)]
                    if os.path.exists(p)]
            if not have:
                break
            found += have
            k += 1
    found += [p for p in [store.file("reports", f"iter-{it:04d}-guard.txt")] if os.path.exists(p)]
    for slot in itertools.chain([""], (f"-slot-{k}" for k in itertools.count(1))):
        have = [p for ext in ("out", "err") for p in [store.file("agents", f"iter-{it:04d}{slot}.{ext}")]
                if os.path.exists(p)]
        if slot and not have:
            break
        found += have
    return found
