"""The `init` flags that name paths in the repository: the report source,
the artifact globs, the declared outputs, the instructions file. Each must
lie inside the repository (no symlinked folder out of it) and outside
`.ratchet/`, which ratchet owns; a mistake is a one-line UsageError before
anything is touched. Reads only the file system's shape (realpath), never git."""

from __future__ import annotations

import os
import posixpath

from . import paths, sourcespec
from .errors import UsageError


def check_report_source(source: str, repo_root: str):
    """(the report source as stored, the repo-relative path to protect or None)."""
    root = os.path.realpath(repo_root)
    if os.path.isabs(source.strip()):  # a plain report file given by its absolute path
        full = os.path.realpath(source.strip())
        if os.path.commonpath([full, root]) != root or full == root:
            raise UsageError(f"--report-source {source!r} is outside the repository; give a path inside {root}")
        source = "./" + os.path.relpath(full, root).replace(os.sep, "/")
    try:
        src = sourcespec.parse_source(source)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if src.kind in sourcespec.STREAMS:
        return src.kind, None
    if src.kind != sourcespec.TEXT:
        if src.path == ".":
            raise UsageError(f"--report-source '{src.spec}' names the whole repository; name the file or "
                             f"folder the trainer writes instead (e.g. {src.kind}:logs)")
        paths.inside(src.path, repo_root, "--report-source")  # no folder of it a symlink to elsewhere
        return src.spec, src.path
    full = os.path.realpath(os.path.join(repo_root, src.path))
    if os.path.commonpath([full, root]) != root or full == root:
        raise UsageError(f"--report-source {source!r} is outside the repository; give a path inside {root}")
    rel = os.path.relpath(full, root).replace(os.sep, "/")
    # A file named like `kind:x` or `stdout` keeps a `./` so it is never re-read as a source kind.
    return (rel if _is_plain_path(rel) else "./" + rel), rel


def _is_plain_path(rel: str) -> bool:
    try:
        return sourcespec.parse_source(rel).kind == sourcespec.TEXT
    except ValueError:
        return False


def check_artifacts(globs, on_revert, repo_root: str) -> tuple:
    out = []
    for g in globs or ():
        spec = paths.normalize(posixpath.normpath(str(g).replace("\\", "/"))) if str(g).strip() else ""
        if not spec or spec == "." or os.path.isabs(g) or spec == ".." or spec.startswith("../"):
            raise UsageError(f"--artifact-glob {g!r} must be a glob relative to the repository root, inside it")
        spec = paths.inside(spec, repo_root, "--artifact-glob")  # its folders may not be symlinks to elsewhere
        if spec == ".ratchet" or spec.startswith(".ratchet/"):
            raise UsageError(f"--artifact-glob {g!r} points into .ratchet/, which ratchet owns")
        out.append(spec)
    if on_revert not in ("keep", "remove"):
        raise UsageError(f"--artifacts-on-revert must be keep or remove (got {on_revert!r})")
    return tuple(dict.fromkeys(out))


def check_outputs(specs) -> tuple:
    """--output PATHSPEC: inside the repository, not all of it, not .ratchet/."""
    out = []
    for g in specs or ():
        spec = paths.normalize(posixpath.normpath(str(g).replace("\\", "/"))) if str(g).strip() else ""
        if not spec or os.path.isabs(g) or spec == ".." or spec.startswith("../"):
            raise UsageError(f"--output {g!r} must be a path relative to the repository root, inside it")
        if spec in (".", "*", "**") or spec == ".ratchet" or spec.startswith(".ratchet/"):
            raise UsageError(f"--output {g!r} would declare every file (or ratchet's own) an output; name the "
                             f"folder or files the benchmark writes, e.g. --output build")
        out.append(spec)
    return tuple(dict.fromkeys(out))


def read_instructions(path: str | None, repo_root: str) -> str:
    if path is None:
        return ""
    full = os.path.join(repo_root, paths.inside(path, repo_root, "--instructions-file"))
    try:
        with open(full, encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--instructions-file {path!r} cannot be read: {e.strerror or e}") from None


def repo_relative(path: str, repo_root: str) -> str | None:
    full = os.path.realpath(os.path.join(repo_root, path))
    root = os.path.realpath(repo_root)
    if os.path.commonpath([full, root]) != root:
        return None
    return os.path.relpath(full, root).replace(os.sep, "/")
