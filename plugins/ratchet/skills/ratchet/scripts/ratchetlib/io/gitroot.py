"""The work-tree root of a plain repository found without starting git.

Why: `status`, `history` and `tail` are called hundreds of times a night and
their whole budget is about an interpreter start (issue 18); a `git
rev-parse` process and the subprocess machinery are a third of it. When the
layout is the plain one, the root is the nearest folder at or above `cwd`
holding `.git` (symlinks resolved, as git prints it), which is what git finds.

Contract: `plain_root(cwd)` returns that folder only when nothing could
make git answer differently: no GIT_DIR, GIT_WORK_TREE, GIT_COMMON_DIR,
GIT_CEILING_DIRECTORIES or GIT_DISCOVERY_ACROSS_FILESYSTEM in the
environment, `cwd` not inside a `.git` folder, no file-system boundary
crossed, the folder and its `.git` owned and readable by this user (git's
safe.directory check), git on PATH (its absence is one line, BAD-INPUT e07),
and a ratchet run there (`.ratchet/config.json`). Otherwise None,
and the caller asks git (gitops.find_root), which also words every error.

`plain_git_dir(repo)`, by the same rule: `repo/.git` when it is a folder and
no variable above is set, which is what `git rev-parse --git-common-dir`
and `--git-path NAME` resolve to (`.git`, `.git/NAME`); else None.
"""

from __future__ import annotations

import os
import time

_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM")


def git_executable(path: str | None = None) -> str | None:
    """The `git` that `shutil.which("git", path=path)` finds, without
    importing shutil (with its compression modules: ~2 ms of every verb on a
    clean interpreter, issue 18); None when there is none. The answer for a
    PATH is kept for KEEP_SECONDS while that file is still an executable
    file: an iterate asks ~10 times, ~0.08 ms a search, and a git installed
    earlier on the PATH meanwhile is found by the next command, or a few
    seconds later by a long-running one (`loop`)."""
    path = os.environ.get("PATH", os.defpath) if path is None else path
    if not path:  # as shutil.which: an empty PATH finds nothing
        return None
    full, when = _FOUND.get(path, (None, 0.0))
    if full and time.monotonic() - when < KEEP_SECONDS and _runnable(full):
        return full
    for folder in path.split(os.pathsep):
        full = os.path.join(folder, "git")
        if _runnable(full):
            _FOUND[path] = (full, time.monotonic())
            return full
    return None


KEEP_SECONDS = 5.0
_FOUND = {}  # PATH -> (the git found on it, when): git_executable


def _runnable(full: str) -> bool:
    return os.path.isfile(full) and os.access(full, os.X_OK)


def _git_on_path() -> bool:
    return git_executable() is not None


def plain_root(cwd: str) -> str | None:
    if any(name in os.environ for name in _GIT_ENV) or not _git_on_path():
        return None
    try:
        here = os.path.realpath(cwd)
        dev = os.stat(here).st_dev
    except (OSError, ValueError):
        return None
    while True:
        if os.path.basename(here) == ".git":
            return None
        found = _root_here(here, dev)
        if found is not False:
            return found
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def plain_git_dir(repo: str) -> str | None:
    if any(name in os.environ for name in _GIT_ENV):
        return None
    path = os.path.join(repo, ".git")
    return path if os.path.isdir(path) and not os.path.islink(path) else None


def _root_here(folder: str, dev: int):
    """`folder` when it is the root, None when unsure, False to look higher."""
    try:
        top, dot = os.stat(folder), os.lstat(os.path.join(folder, ".git"))
    except FileNotFoundError:
        try:
            return False if os.stat(folder).st_dev == dev else None
        except OSError:
            return None
    except OSError:
        return None
    uid = os.geteuid()
    if top.st_dev != dev or top.st_uid != uid or dot.st_uid != uid or not os.access(folder, os.R_OK | os.X_OK):
        return None
    if os.path.isdir(os.path.join(folder, ".git")) and not os.access(os.path.join(folder, ".git"), os.R_OK | os.X_OK):
        return None
    return folder if os.path.isfile(os.path.join(folder, ".ratchet", "config.json")) else None


_HEX = frozenset("0123456789abcdef")


def plain_head(repo: str) -> tuple | None:
    """(branch, sha) of HEAD read from `.git` itself, as `git symbolic-ref
    --short HEAD` and `git rev-parse --verify HEAD^{commit}` print them; None
    when unsure, and the caller asks git. Sure means: a plain `.git` folder
    (`plain_git_dir`), no reftable and no replace refs, HEAD a regular file
    naming a branch under refs/heads/ (or a detached commit id), the branch a
    loose ref or a packed-refs line, and its object a loose object whose
    header says `commit` (the check ^{commit} makes; a packed object, as
    after gc, is git's to read). Why: every `iterate` asks for HEAD several
    times, a git process each (issue 18)."""
    git_dir = plain_git_dir(repo)
    if git_dir is None or os.path.exists(os.path.join(git_dir, "reftable")) \
            or os.path.exists(os.path.join(git_dir, "refs", "replace")) or "GIT_NO_REPLACE_OBJECTS" in os.environ:
        return None
    head = _small_file(os.path.join(git_dir, "HEAD"))
    if head is None:
        return None
    if head.startswith("ref: refs/heads/") and head.endswith("\n"):
        branch = head[len("ref: refs/heads/"):-1]
        if not branch or ".." in branch or branch.startswith("/") or "\\" in branch or any(c < " " for c in branch):
            return None
        packed = _packed_refs(git_dir)
        if _ambiguous(git_dir, branch, packed):  # `--short` would print heads/NAME
            return None
        sha = _ref(git_dir, "refs/heads/" + branch, packed)
    elif _is_sha(head.rstrip("\n")) and head.endswith("\n"):
        branch, sha = None, head[:-1]
    else:
        return None
    return (branch, sha) if sha is not None and _loose_commit(git_dir, sha) else None


def _small_file(path: str) -> str | None:
    try:
        if not os.path.isfile(path) or os.path.islink(path):
            return None
        with open(path, "rb") as f:
            return f.read(4096).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and set(text) <= _HEX


def _packed_refs(git_dir: str) -> dict:
    """{ref name: its id, None when the line's id is not one} from packed-refs
    ({} without the file), read once for `_ambiguous` and `_ref`; a name's
    first line with a valid id wins."""
    try:
        with open(os.path.join(git_dir, "packed-refs"), "rb") as f:
            packed = f.read().decode("utf-8", "surrogateescape")
    except OSError:
        return {}
    out = {}
    for line in packed.splitlines():
        sha, _, ref = line.partition(" ")
        if ref and out.get(ref) is None:
            out[ref] = sha if _is_sha(sha) else None
    return out


def _ref(git_dir: str, name: str, packed: dict) -> str | None:
    """The id a loose ref holds, else its packed-refs line's; None when neither (or a symbolic ref)."""
    loose = os.path.join(git_dir, *name.split("/"))
    if os.path.lexists(loose):
        text = _small_file(loose)
        return text[:-1] if text and text.endswith("\n") and _is_sha(text[:-1]) else None
    return packed.get(name)


def _ambiguous(git_dir: str, branch: str, packed: dict) -> bool:
    """Whether another ref (or a `.git` file) answers to `branch` too, by the
    rules `git rev-parse` resolves a short name with."""
    names = [branch, f"refs/{branch}", f"refs/tags/{branch}", f"refs/remotes/{branch}", f"refs/remotes/{branch}/HEAD"]
    return any(os.path.lexists(os.path.join(git_dir, *n.split("/"))) or n in packed for n in names)


def _loose_commit(git_dir: str, sha: str) -> bool:
    import zlib
    try:
        with open(os.path.join(git_dir, "objects", sha[:2], sha[2:]), "rb") as f:
            start = zlib.decompressobj().decompress(f.read(512), 16)
    except (OSError, zlib.error):
        return False
    return start.startswith(b"commit ")
