"""Pathspec matching: which changed paths the agent may touch.

ratchet uses its own small pathspec language instead of git's so that a path
can be classified without a subprocess per file. A spec matches a path when it
equals it, is a folder prefix of it (`src` or `src/` matches `src/a.py`), or
matches it as a glob where `*` and `?` stay inside one path segment and `**`
crosses segments (`src/**/*.c`, `*.py` matches only top-level files). Paths and
specs are POSIX-style and relative to the repository root.
"""

import functools
import os
import posixpath
import re

from .errors import UsageError

PROTECTED, EDITABLE, OUTSIDE = "protected", "editable", "outside"


def normalize(spec: str) -> str:
    """Canonical form of a user-given pathspec ('./src/' -> 'src')."""
    spec = spec.replace("\\", "/").strip()
    while spec.startswith("./"):
        spec = spec[2:]
    return spec.rstrip("/") or "."


@functools.lru_cache(maxsize=512)
def _glob_regex(spec: str) -> "re.Pattern[str]":
    out, i = [], 0
    while i < len(spec):
        if spec.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif spec.startswith("**", i):
            out.append(".*")
            i += 2
        elif spec[i] == "*":
            out.append("[^/]*")
            i += 1
        elif spec[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(spec[i]))
            i += 1
    return re.compile("".join(out) + "(?:/.*)?")


def matches(path: str, spec: str) -> bool:
    """True when `spec` covers `path` (equal, folder prefix, or glob)."""
    spec = normalize(spec)
    if spec == ".":
        return True
    if path == spec or path.startswith(spec + "/"):
        return True
    if any(c in spec for c in "*?["):
        return _glob_regex(spec).fullmatch(path) is not None
    return False


def matches_any(path: str, specs) -> bool:
    return any(matches(path, s) for s in specs)


def bytecode_cache(rel: str) -> bool:
    """Whether `rel` lies in a `__pycache__` folder: Python's bytecode cache,
    which any import of a module rewrites. It is never part of an agent's
    change (keep/candidate: a keep would commit a file every later run
    rewrites, and every swap deletes, io/fresh), nor of what a run wrote
    (io/carry)."""
    return "__pycache__" in rel.split("/")


def classify(path: str, editable, protect) -> str:
    """PROTECTED beats EDITABLE; an empty editable list means 'all else'."""
    if matches_any(path, protect):
        return PROTECTED
    if not editable or matches_any(path, editable):
        return EDITABLE
    return OUTSIDE


def _literal_prefix(spec: str) -> str:
    """The folders and name of `spec` before its first glob segment ('' if none)."""
    out = []
    for seg in spec.split("/"):
        if any(c in seg for c in "*?["):
            break
        out.append(seg)
    return "/".join(out)


def inside(spec: str, repo_root: str, flag: str) -> str:
    """`spec` as a pathspec relative to the repository root, or UsageError
    when it names anything outside: an absolute path elsewhere (or `/`), a
    `..` that leaves the root, or a symlink (of the path or any folder of
    it) that points outside. An absolute path inside is made relative.
    Reads the file system only to resolve symlinks, so a path that does not
    exist yet is judged by its existing folders. Every path flag goes
    through here at `init`, so nothing ratchet pins, restores or deletes is
    ever outside the repository."""
    raw = str(spec).replace("\\", "/").strip()
    root = os.path.realpath(repo_root)
    refuse = UsageError(f"{flag} {spec!r} is outside the repository; give a path inside it ({root})")
    if not raw:
        raise UsageError(f"{flag} needs a path inside the repository (got an empty one)")
    if raw.startswith("/"):
        prefix = _literal_prefix(raw)
        full = os.path.realpath(prefix or "/")
        if not _within(full, root):
            raise refuse
        rel = os.path.relpath(full, root).replace(os.sep, "/")
        rest = raw[len(prefix):].lstrip("/")
        raw = "/".join(p for p in (rel if rel != "." else "", rest) if p) or "."
    norm = posixpath.normpath(normalize(raw))
    if norm == ".." or norm.startswith("../") or norm.startswith("/"):
        raise refuse
    literal = _literal_prefix(norm)
    if literal and not _within(os.path.realpath(os.path.join(root, literal)), root):
        raise refuse
    return normalize(norm)


def _within(full: str, root: str) -> bool:
    return full == root or full.startswith(root.rstrip("/") + "/")


def contained(repo: str, rel: str) -> bool:
    """Whether writing or deleting `rel` (its folders resolved, the last
    part not followed) stays inside `repo`: the guard every restore and
    remove checks before it acts, whatever a config says."""
    root = os.path.realpath(repo)
    norm = posixpath.normpath(str(rel).replace("\\", "/"))
    if os.path.isabs(norm) or norm == ".." or norm.startswith("../") or norm in (".", ""):
        return False
    parent = os.path.realpath(os.path.join(root, posixpath.dirname(norm)))
    return _within(parent, root)
