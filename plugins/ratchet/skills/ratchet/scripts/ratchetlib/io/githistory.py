"""Branches and commits: the history ratchet writes (the experiment branch,
one commit per kept iteration with a `Ratchet-Iteration: N` trailer, the clean
commits `finalize` builds) and reads back. Commits skip hooks (a hook that
rewrites files would commit something never measured) and fall back to a
`ratchet` identity when the repository has none. Every git call goes
through gitops (hooks off, filter drivers neutralised, a timeout)."""

from __future__ import annotations


from . import gitops

TRAILER = "Ratchet-Iteration"


def create_branch(repo: str, name: str, start: str) -> None:
    """Create branch `name` at commit `start` without checking it out (refuses an existing name)."""
    gitops.git(repo, "update-ref", "-m", "ratchet init", f"refs/heads/{name}", start, "")


def checkout(repo: str, name: str) -> None:
    gitops.git(repo, "checkout", "-q", name)


def commit_paths(repo: str, paths: list, message: str, new: list = ()) -> str:
    """Commit exactly `paths` (adds, edits, deletions) and return the new sha.

    `git commit --only -- paths` records those paths as the work tree has
    them, whatever else is staged (which stays staged), so nothing outside
    `paths` can ride along; the `new` (untracked) ones among them are added
    first, as git commits only paths it knows. Two git processes at most
    where a reset, an add and a commit were three (issue 18). Hooks are
    skipped because a hook that rewrites files would commit something that
    was never measured.
    """
    if new:
        gitops.git(repo, "add", "--", *new)
    gitops.git(repo, *gitops.identity(repo), "commit", "-q", "--no-verify", "--only", "-m", message, "--", *paths)
    return gitops.head_sha(repo)


def commit_tree(repo: str, tree: str, parent: str, message: str) -> str:
    """A commit object of `tree` on `parent` (no ref moves, no work tree)."""
    return gitops.git(repo, *gitops.identity(repo), "commit-tree", tree, "-p", parent, input=message.encode()).strip()


def tree_of(repo: str, rev: str) -> str:
    return gitops.git(repo, "rev-parse", "--verify", "-q", f"{rev}^{{tree}}").strip()


def soft_reset(repo: str, sha: str) -> None:
    """Move the branch back to `sha`, keeping the work tree as it is."""
    gitops.git(repo, "reset", "-q", "--soft", sha)
    gitops.git(repo, "reset", "-q")


def is_ancestor(repo: str, a: str, b: str) -> bool:
    return gitops.run_git(repo, "merge-base", "--is-ancestor", a, b).returncode == 0


def commit_trailer(repo: str, sha: str) -> int | None:
    """The Ratchet-Iteration number in `sha`'s message, if it has one."""
    body = gitops.git(repo, "log", "-1", "--format=%B", sha, check=False)
    for line in body.splitlines():
        if line.startswith(TRAILER + ":"):
            try:
                return int(line.split(":", 1)[1])
            except ValueError:
                return None
    return None
