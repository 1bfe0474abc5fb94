"""A change as a patch: save the candidate's edits out of the work tree
(`diff_patch`, binary, new files included), put the tracked paths back to
HEAD (`back_to_head`: only files the iteration created are deleted), apply a
patch again (`apply_patch`, atomic), or take a whole worktree's difference
from a commit (`tree_patch`, for parallel proposals). This is how the
incumbent and the candidate are swapped in one working tree. Every git call
goes through gitops (hooks off, filter drivers neutralised, a timeout)."""

from __future__ import annotations

import os

from . import gitops


def back_to_head(repo: str, tracked_paths: list, new_files: list, index_is_head: bool = False) -> list:
    """Put `tracked_paths` back to HEAD and delete `new_files` (untracked);
    return the tracked paths HEAD lacks (staged new files: deleted too, and
    untracked once the index is HEAD's again). `index_is_head` (the caller
    read it from the candidate's status: nothing staged) makes it a checkout
    alone: no reset is needed, and HEAD has every tracked path (issue 18:
    two git processes fewer).

    Callers pass only files this iteration created as `new_files`; anything
    the user had is never in that list.
    """
    absent = []
    if not index_is_head:
        gitops.git(repo, "reset", "-q")
        if tracked_paths:
            listed = gitops.git(repo, "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *tracked_paths)
            in_head = set(listed.split("\0")) - {""}
            absent = [p for p in tracked_paths if p not in in_head]
    _put_head(repo, [p for p in tracked_paths if p not in absent], list(new_files) + absent)
    return absent


def _put_head(repo: str, in_head: list, remove: list) -> None:
    """Check `in_head` (paths HEAD has) out of HEAD and delete the files `remove`."""
    if in_head:
        gitops.git(repo, "checkout", "-q", "HEAD", "--", *sorted(in_head))
    for p in remove:
        full = os.path.join(repo, p)
        if os.path.lexists(full) and not os.path.isdir(full):
            os.remove(full)
            prune_empty_dirs(repo, os.path.dirname(p))


def prune_empty_dirs(repo: str, rel: str) -> None:
    while rel:
        full = os.path.join(repo, rel)
        try:
            os.rmdir(full)
        except OSError:
            return
        rel = os.path.dirname(rel)


def diff_patch(repo: str, tracked_paths: list, new_files: list) -> str:
    """A `git apply`-able binary patch of the candidate against HEAD."""
    if new_files:
        gitops.git(repo, "add", "-N", "--", *new_files)
    try:
        paths = list(tracked_paths) + list(new_files)
        return gitops.git(repo, "diff", "--binary", "HEAD", "--", *paths) if paths else ""
    finally:
        if new_files:
            gitops.git(repo, "reset", "-q", "--", *new_files)


def apply_patch(repo: str, patch: bytes) -> str | None:
    """`git apply` a binary patch to the work tree; None on success, else
    git's last error line (nothing is applied then: git apply is atomic)."""
    p = gitops.run_git(repo, "apply", "--binary", "--whitespace=nowarn", "-", input=patch)
    if p.returncode == 0:
        return None
    msg = p.stderr.decode("utf-8", "replace").strip().splitlines()
    return msg[-1] if msg else f"git apply exited {p.returncode}"


def tree_patch(worktree: str, base: str) -> bytes:
    """Everything in `worktree` that differs from commit `base` (edits, new
    and deleted files, commits made on top) as one binary patch."""
    gitops.git(worktree, "add", "-A")
    return gitops.git(worktree, "diff", "--binary", "--cached", base).encode("utf-8", "surrogateescape")
