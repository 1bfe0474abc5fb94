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

import os
import shutil
from typing import Optional

_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM")


def plain_root(cwd: str) -> Optional[str]:
    if any(name in os.environ for name in _GIT_ENV) or shutil.which("git") is None:
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


def plain_git_dir(repo: str) -> Optional[str]:
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
