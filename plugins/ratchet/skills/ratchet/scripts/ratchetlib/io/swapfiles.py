"""One side of a paired swap, held as the bytes git wrote, so that every swap
after the first of each side is a few file writes instead of git processes.

Why: swapping by restore + apply (gitpatch) costs a `git reset`, `ls-tree`,
`checkout` and `apply` per switch, most of an `iterate`'s git processes on a
fast benchmark (issue 18). The first switch to each side still goes through
git (the candidate is the tree the agent left, the incumbent what `git
checkout` writes, line endings and modes included); `capture` then keeps
that side's version of the swapped paths in memory, and `restore` writes it
back: each present file through a temporary file and a rename in its own
folder (never half-written), each absent one deleted, emptied folders
removed, as back_to_head does.

Contract:
  - `read_side(repo, rels)` -> a Side ({rel: None (absent) | ("file", mode,
    bytes) | ("link", target)}), or None when a path is something else (a
    folder, a fifo) or the side holds more than MAX_BYTES: the caller then
    swaps through git every time;
  - `write_side(repo, side)` puts every path back to the side: deletions first
    (deepest first), then writes (shallowest first), so a file that became a
    folder on one side (or the reverse) swaps too. It raises OSError when a
    path cannot be written (the caller swaps through git instead, which is
    idempotent).
Nothing is kept on disk: a command killed mid-swap is finished by recovery
from the saved patch (keep/paired.recover), exactly as before; `clear_temps(repo,
rels)` first removes the temporary file a write killed before its rename
left next to one of `rels` (`.ratchet-swap-PID-NAME`).
"""

from __future__ import annotations

import os
import stat

from .gitpatch import prune_empty_dirs
from .store_rename import renamed_into_place

MAX_BYTES = 64 << 20
_TMP = ".ratchet-swap-"


def read_side(repo: str, rels) -> dict | None:
    side, total = {}, 0
    for rel in rels:
        full = os.path.join(repo, rel)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):  # absent, or a file stands where its folder would
            side[rel] = None
            continue
        if stat.S_ISLNK(st.st_mode):
            side[rel] = ("link", os.readlink(full))
        elif stat.S_ISREG(st.st_mode):
            total += st.st_size
            if total > MAX_BYTES:
                return None
            with open(full, "rb") as f:
                side[rel] = ("file", stat.S_IMODE(st.st_mode), f.read())
        else:
            return None
    return side


def write_side(repo: str, side: dict) -> None:
    for rel in sorted((r for r, e in side.items() if e is None), key=lambda r: -r.count("/")):
        full = os.path.join(repo, rel)
        if os.path.lexists(full) and not os.path.isdir(full):
            os.remove(full)
            prune_empty_dirs(repo, os.path.dirname(rel))
    for rel in sorted((r for r, e in side.items() if e is not None), key=lambda r: r.count("/")):
        _write(os.path.join(repo, rel), side[rel])


def clear_temps(repo: str, rels) -> None:
    for folder in sorted({os.path.dirname(os.path.join(repo, rel)) for rel in rels}):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(_TMP) and any(name.endswith("-" + os.path.basename(r)) for r in rels):
                try:
                    os.remove(os.path.join(folder, name))
                except OSError:
                    pass


def _write(full: str, entry: tuple) -> None:
    folder = os.path.dirname(full)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f"{_TMP}{os.getpid()}-{os.path.basename(full)}")
    with renamed_into_place(tmp, full):
        if entry[0] == "link":
            os.symlink(entry[1], tmp)
        else:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(entry[2])
            os.chmod(tmp, entry[1])
