"""The writers of `.ratchet/`'s files other than the run's own state
(store.py): every module that keeps something under `.ratchet/` asks for it
here by its name in `store.FILES` (ideas, bandit, holdout, verify, UNCLEAN,
parent.json, program.md, the content-addressed copies of the pins, agent
prompts, trial captures, slot worktrees).

Each function keeps the durability its callers had: JSON and text documents
are replaced atomically (`store.atomic_write`: temp file, fsync, rename, fsync
of the folder); content-addressed copies are written once under their hash,
without fsync, as before (a restore checks a harness or untracked copy's hash
before it trusts it); an agent prompt is regenerated on resume, so it is
written plainly. These functions take the run folder (`Store.root`), the one
address the pins, the holdout and the learn files were already given.
"""

from __future__ import annotations

import json
import os
import time

from .store_rename import renamed_into_place
from .store import FILES, atomic_write, file, new_beside, read_json, write_json


def write_doc(root: str, name: str, obj: dict) -> None:
    """Replace JSON file `name` atomically (ideas, bandit, holdout, verify, ...)."""
    write_json(file(root, name), obj)


def read_doc(root: str, name: str) -> dict | None:
    """JSON file `name`: None when absent, UsageError when unreadable or newer."""
    return read_json(file(root, name), FILES[name])


def write_text(root: str, name: str, text: str) -> None:
    """Replace text file `name` atomically (program.md)."""
    atomic_write(file(root, name), text.encode("utf-8"))


def write_plain(path: str, text: str) -> None:
    """Write a file that is regenerated whenever it is needed (an agent's
    prompt), so no fsync and no temp file: a torn one is simply written again."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def capture(path: str):
    """A child's stdout or stderr file, opened for `runner` (truncated, binary,
    no fsync: a capture a kill cut short belongs to a trial that is run again).
    The path is the store's (`Store.report_path`, `agent_path`, holdout/) or,
    for `doctor`, its temporary folder's."""
    return open(path, "wb")


def write_read_only(root: str, name: str, obj: dict | None) -> None:
    """Write JSON file `name` once and make it read-only (0444); first remove
    a stray one (an init killed before its config.json). None: only remove."""
    remove(root, name)
    if obj is None:
        return
    write_json(file(root, name), obj)
    os.chmod(file(root, name), 0o444)


def remove(root: str, name: str) -> None:
    """Remove file `name` when it is there."""
    try:
        os.unlink(file(root, name))
    except FileNotFoundError:
        pass


def folder(root: str, name: str, *parts: str) -> str:
    """Folder `name` (with `parts` below it), made when missing; its path."""
    path = file(root, name, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def fs_now(root: str) -> int:
    """The time now by the clock that stamps files in the store's folder,
    from below: the mtime of a file made there this moment, or this
    machine's clock when that is earlier (or nothing can be made). Racy
    stat pins are judged against it, as git judges against its index's
    mtime: a file server whose clock runs behind ours cannot make a file
    changed just now look settled."""
    now = time.time_ns()
    try:
        fd, tmp = new_beside(root, "clock")
    except OSError:
        return now
    try:
        return min(now, os.fstat(fd).st_mtime_ns)
    finally:
        os.close(fd)
        os.unlink(tmp)


def keep_copy(root: str, name: str, sha: str, data: bytes | None = None, src: str | None = None) -> None:
    """Content-addressed copy `<name>/<sha>` (harness, gitguard, untracked
    copies) of `data` or of file `src`; written once (same name, same bytes)."""
    dest = file(root, name, sha)
    if os.path.exists(dest):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if src is not None:
        import shutil  # shutil (with its compression modules) only where a file is copied: the read verbs never (issue 18)
        shutil.copyfile(src, dest)
    else:
        with open(dest, "wb") as f:
            f.write(data)


def move_in(src: str, dest: str) -> None:
    """Rename file `src` to `dest`, a path the store named (a trial's stdout
    becoming its report, a report file moved aside before a trial)."""
    os.replace(src, dest)


def quarantine(root: str, path: str) -> str:
    """Move file `path` (a startup hook outside the repository) into
    `quarantine/` (FORMATS.md), never deleting it: its absolute path with
    `/` written `__`, after the time; returns the new path."""
    import shutil  # see keep_copy
    import time
    name = path.strip(os.sep).replace(os.sep, "__")
    dest, n = os.path.join(folder(root, "quarantine"), time.strftime("%Y%m%dT%H%M%S-") + name), 1
    while os.path.lexists(dest):  # the same hook moved twice within a second: keep both
        n += 1
        dest = os.path.join(folder(root, "quarantine"), time.strftime("%Y%m%dT%H%M%S-") + f"{n}-{name}")
    shutil.move(path, dest)  # a rename, or a copy then a removal across file systems
    return dest


def copy_in(src: str, dest: str, keep_times: bool = False) -> None:
    """Copy file `src` (the repository's, a worktree's) to `dest`, a path the
    store named; `keep_times`: with its mode and times (a staged checkpoint,
    whose mtime later says which is newest)."""
    import shutil  # see keep_copy
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    (shutil.copy2 if keep_times else shutil.copyfile)(src, dest)


def remove_path(path: str, strict: bool = True) -> None:
    """Remove a file or folder tree the store named (an empty capture, slot
    worktrees left over), when it is there; `strict=False`: best effort."""
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil  # see keep_copy
        shutil.rmtree(path, ignore_errors=not strict)
    elif os.path.lexists(path):
        os.remove(path)


def write_record(path: str, obj: dict) -> None:
    """A trial's process record (`procs/<marker>.json`, for io/runner):
    its folder made when missing, the file written aside then renamed, so the
    next command after a kill reads a whole record or none. No fsync: the
    record serves only a command that follows a SIGKILL of this one, which
    leaves the page cache (so the renamed file) intact; after a power loss,
    the one case an fsync covers, no process of the trial is left to find,
    and a record lost or torn by it is skipped by its reader (leftovers)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, ".tmp-" + os.path.basename(path))
    with renamed_into_place(tmp, path), \
            os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(json.dumps(obj).encode())


def remove_record(path: str) -> None:
    """A trial's process record once its tree is swept, and `procs/` once
    empty (it is no part of a run's files)."""
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass
