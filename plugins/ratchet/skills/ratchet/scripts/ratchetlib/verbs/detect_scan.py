"""What `detect` may read of a project, and how: folders walked in sorted
order to a fixed depth and a fixed number of entries, skipping virtualenvs,
caches and `.git`; only the head (or the tail) of a file is read; nothing is
executed or written. Same files in, same walk out, so detect's answer is
deterministic."""

import os

MAX_DEPTH = 4
MAX_ENTRIES = 20000
READ_LIMIT = 256 * 1024
SKIP_DIRS = {".git", ".ratchet", "node_modules", ".venv", "venv", "env", ".env", "__pycache__", ".tox", ".nox",
             ".mypy_cache", ".pytest_cache", ".ruff_cache", "site-packages", "dist", "build", ".idea", ".vscode",
             ".cache", ".ipynb_checkpoints", ".eggs"}


def walk_tree(root: str):
    """(rel_dir, dirnames, filenames) in sorted order, bounded in depth and size."""
    seen = 0
    for here, dirs, files in os.walk(root):
        rel = os.path.relpath(here, root).replace(os.sep, "/")
        depth = 0 if rel == "." else rel.count("/") + 1
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                         and depth < MAX_DEPTH)
        files = sorted(files)
        seen += len(dirs) + len(files)
        yield ("" if rel == "." else rel), dirs, files
        if seen > MAX_ENTRIES:
            return


def join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def read_head(path: str, limit: int = READ_LIMIT) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def read_tail(path: str, limit: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read().decode("utf-8", "replace")
        return data if size <= limit else data.split("\n", 1)[-1]
    except OSError:
        return ""
