"""The working directory as a Ray package, as `ray job submit --working-dir .` makes it (stdlib only).

Reproduces Ray 2.x's ray/_private/runtime_env/packaging.py (get_uri_for_directory,
_zip_files, _dir_travel) and its gitwildmatch patterns (ray/_private/thirdparty/pathspec):

- Walk: from the root, every path, depth first. At each directory its `.gitignore`
  (unless RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1) and `.rayignore` add patterns
  relative to that directory, for it and everything under it. A path matched by
  the excludes or an ignore file is skipped with everything under it.
- Excludes: Ray's defaults (`.git,.venv,venv,__pycache__`, or
  RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES, comma-separated), then the
  runtime env's `excludes`, relative to the root, in gitwildmatch syntax
  (`*`, `?`, `[...]`, `**`, a leading `/` anchors, a trailing `/` is the
  directory's content, `!` re-includes, `#` a comment).
- Symlinks are followed, as Ray does (a link to a file is its content, a link
  to a directory is walked); a link to a directory that contains it (Ray would
  recurse until the path is too long) is refused. A dangling link is left out.
- In the zip (stored, not compressed, as Ray): every file, and every directory
  with nothing in it at all.
- Name: `_ray_pkg_<16 hex>.zip`, the hash of the walk: for every path not
  skipped (directories too, the root as "."), sha1 of its relative path then
  its content; the digests XORed into 8 bytes that start as b"00000000". The
  same content gives the same name, so a package Ray already has is not sent
  again (exec_ray GETs it first). Not a hash of the zip's bytes (mtimes).
- A package of RAY_max_grpc_message_size bytes (default 512 MiB) or more is
  refused, as Ray's GCS would.
"""

import hashlib
import io
import os
import re
import zipfile
from typing import NamedTuple

PREFIX = "_ray_pkg_"
DEFAULT_EXCLUDES = ".git,.venv,venv,__pycache__"
MAX_BYTES = 512 * 1024 * 1024
_BUF = 4 * 1024 * 1024


class PackageError(ValueError):
    """The working directory cannot be packaged as Ray would (symlink loop, too big, unreadable)."""


class Package(NamedTuple):
    name: str      # _ray_pkg_<hash>.zip
    entries: list  # (absolute path, path in the zip) of the files and empty directories


def _segment(seg: str) -> str:
    """One path segment's glob as a regex (pathspec's _translate_segment_glob)."""
    out, i, end, escape = "", 0, len(seg), False
    while i < end:
        c, i = seg[i], i + 1
        if escape:
            escape, out = False, out + re.escape(c)
        elif c == "\\":
            escape = True
        elif c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = i + (1 if i < end and seg[i] == "!" else 0)
            j += 1 if j < end and seg[j] == "]" else 0
            while j < end and seg[j] != "]":
                j += 1
            if j < end:
                expr = "["
                if seg[i] == "!":
                    expr, i = expr + "^", i + 1
                elif seg[i] == "^":
                    expr, i = expr + "\\^", i + 1
                out, i = out + expr + seg[i:j + 1].replace("\\", "\\\\"), j + 1
            else:
                out += "\\["
        else:
            out += re.escape(c)
    return out


def wildmatch(pattern: str) -> tuple:
    """(compiled regex or None, include) of one gitwildmatch line (pathspec's pattern_to_regex)."""
    pattern = pattern.strip()
    if not pattern or pattern.startswith("#") or pattern == "/":
        return None, None
    include = not pattern.startswith("!")
    pattern = pattern if include else pattern[1:]
    pattern = pattern[1:] if pattern.startswith("\\") else pattern
    segs = pattern.split("/")
    if not segs[0]:
        del segs[0]
    elif (len(segs) == 1 or (len(segs) == 2 and not segs[1])) and segs[0] != "**":
        segs.insert(0, "**")
    if not segs[-1] and len(segs) > 1:
        segs[-1] = "**"
    out, need_slash, end = ["^"], False, len(segs) - 1
    for i, seg in enumerate(segs):
        if seg == "**":
            out.append(".+" if i == 0 == end else "(?:.+/)?" if i == 0 else "/.*" if i == end else "(?:/.+)?")
            need_slash = 0 < i < end
            continue
        out.append(("/" if need_slash else "") + ("[^/]+" if seg == "*" else _segment(seg)))
        if seg != "*" and i == end and include:
            out.append("(?:/.*)?")
        need_slash = True
    out.append("$")
    return re.compile("".join(out)), include


def matcher(base: str, lines: list):
    """A test of an absolute path against the lines, relative to `base` (the last matching line decides)."""
    specs = [s for s in (wildmatch(ln) for ln in lines) if s[0] is not None]

    def match(path: str) -> bool:
        rel = os.path.relpath(path, base) if path != base else "."
        found = False
        for regex, include in specs:
            if regex.match(rel) is not None:
                found = include
        return found
    return match


def _ignore_files(folder: str, gitignore: bool) -> list:
    out = []
    for name in (".gitignore", ".rayignore") if gitignore else (".rayignore",):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, errors="replace") as f:
                out.append(matcher(folder, f.readlines()))
    return out


def _walk(path: str, excludes: list, visit, gitignore: bool, stack: tuple) -> None:
    """Ray's _dir_travel: `visit(path)` for every path not excluded, the ignore files of each directory added."""
    added = _ignore_files(path, gitignore) if os.path.isdir(path) else []
    excludes.extend(added)
    try:
        if any(e(path) for e in excludes):
            return
        visit(path)
        if os.path.isdir(path):
            real = os.path.realpath(path)
            if real in stack:
                raise PackageError(f"{path} is a symlink to a directory that contains it; Ray would follow it "
                                   f"without end: exclude it (runtime env 'excludes', .rayignore)")
            for name in sorted(os.listdir(path)):
                _walk(os.path.join(path, name), excludes, visit, gitignore, stack + (real,))
    finally:
        del excludes[len(excludes) - len(added):]


def _digest(path: str, rel: str) -> bytes:
    sha = hashlib.sha1(rel.encode())
    if os.path.isfile(path):  # Ray opens any non-directory; a FIFO would block it: only regular files here
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(_BUF), b""):
                    sha.update(block)
        except OSError:  # Ray hashes the name only of a file it cannot open
            pass
    return sha.digest()


def excludes_default() -> list:
    val = os.environ.get("RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES", DEFAULT_EXCLUDES)
    return [x.strip() for x in val.split(",") if x.strip()]


def package(root: str, excludes: list) -> Package:
    """The package of `root` with Ray's default excludes, then `excludes` (module docstring)."""
    root = os.path.abspath(root)
    gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    acc, entries = bytearray(b"0" * 8), []

    def visit(path: str) -> None:
        rel = os.path.relpath(path, root) if path != root else "."
        for i, b in enumerate(_digest(path, rel)[:8]):
            acc[i] ^= b
        if os.path.isfile(path) or (os.path.isdir(path) and path != root and not os.listdir(path)):
            entries.append((path, rel))
    try:
        _walk(root, [matcher(root, excludes_default() + list(excludes))], visit, gitignore, ())
    except RecursionError:
        raise PackageError(f"{root} is nested too deeply to package") from None
    except OSError as e:
        raise PackageError(f"cannot read {e.filename or root}: {e.strerror or e}") from None
    return Package(PREFIX + bytes(acc).hex() + ".zip", entries)


def zip_bytes(pkg: Package) -> bytes:
    """The zip Ray would upload (stored entries, as zipfile.ZipFile.write makes them)."""
    buf = io.BytesIO()
    limit = int(os.environ.get("RAY_max_grpc_message_size") or MAX_BYTES)
    try:
        with zipfile.ZipFile(buf, "w", strict_timestamps=False) as z:
            for path, rel in pkg.entries:
                z.write(path, rel)
    except OSError as e:
        raise PackageError(f"cannot read {e.filename or '?'}: {e.strerror or e}") from None
    if buf.tell() >= limit:
        raise PackageError(f"the working directory's package is {buf.tell() / 2**20:.2f}MiB, at or over Ray's "
                           f"limit of {limit / 2**20:.2f}MiB: exclude large files (.gitignore, .rayignore, "
                           f"runtime env 'excludes')")
    return buf.getvalue()
