"""Pathspec matching: which changed paths the agent may touch.

ratchet uses its own small pathspec language instead of git's so that a path
can be classified without a subprocess per file. A spec matches a path when it
equals it, is a folder prefix of it (`src` or `src/` matches `src/a.py`), or
matches it as a glob where `*` and `?` stay inside one path segment and `**`
crosses segments (`src/**/*.c`, `*.py` matches only top-level files). Paths and
specs are POSIX-style and relative to the repository root.
"""

import functools
import re

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


def classify(path: str, editable, protect) -> str:
    """PROTECTED beats EDITABLE; an empty editable list means 'all else'."""
    if matches_any(path, protect):
        return PROTECTED
    if not editable or matches_any(path, editable):
        return EDITABLE
    return OUTSIDE
