"""What a trial did to the working tree, from stat alone when that is
certain (issue 18: a `git status` after every trial was five of iterate's
eleven git processes, ~2.5 ms each).

carry.tree() is git's view: every untracked and ignored file with its stat,
and the tracked paths that differ from the index. `scan()` lstat's every
regular file and symlink under the tree (not `.git`, `.ratchet`,
`__pycache__`, as carry skips them) and git's own state: the index, HEAD,
the branch's ref, packed-refs and the configuration files (the repository's
and the user's) that decide what git reports. `derive(tree, before, after)`
is what carry.tree() would say after a run, given what it said when `before`
was scanned, or None when only git can tell:

  - a file git tracks (one the scan saw that the tree does not list among
    its untracked and ignored ones) whose stat moved or that is gone, or a
    new one at a path the tree lists as a changed tracked path: its content
    against the index is git's to judge;
  - git's state moved (the run ran git: add, commit, checkout, config);
  - a `.gitattributes` file came, went or changed (it can change what git
    reports for files nobody touched);
  - a new name that is not ASCII (git and the file system may spell it
    differently: precomposed unicode on macOS);
  - a tracked file changed within RACY_NS of its scan, by the clock that
    stamps the files (`_fs_now`; a write in the same
    clock tick can leave the stat as it was) that hashes differently now or
    was too large to hash (HASH_MAX).
Otherwise the untracked and ignored files are exactly the scan's entries
that are not tracked, with their stat now, and the changed tracked paths are
those of `tree`. A scan is None (git is asked, as before) for a folder
holding `.git` (a submodule or a nested repository: what git lists inside is
its own rule), a layout that is not a plain `.git` folder, and a tree of
more than MAX_FILES files, where the scan (~4 us a file in Python) would
cost more than git's status.

A git status would miss no more than this: untracked files are compared by
stat in both (carry), and assume-unchanged or skip-worktree entries are
invisible to git too.
"""

from __future__ import annotations

import os
import stat as _stat
import time

from ..core import sha256
from . import gitfilters, gitroot

RACY_NS = 2_000_000_000  # harness.stat_key's window: a timestamp may be that coarse
HASH_MAX = 1 << 20
MAX_FILES = 5000
_SKIP = "__pycache__"  # carry skips every path with such a component
_TOP_SKIP = (".git", ".ratchet")
_GIT_FILES = ("index", "HEAD", "packed-refs", "info/attributes", "info/exclude")  # config: gitfilters.config_files


def scan(repo: str, tree: dict) -> dict | None:
    """{"files": {rel: [size, mtime_ns, ctime_ns, inode, mode]}, "hashes":
    {rel: sha256 of a racy file `tree` does not list}, "git": git's state}; None when
    this tree is git's to read (see the module doc)."""
    git_dir = gitroot.plain_git_dir(repo)
    if git_dir is None:
        return None
    files, stack = {}, [""]
    while stack:
        rel_dir = stack.pop()
        try:
            it = os.scandir(os.path.join(repo, rel_dir) if rel_dir else repo)
        except OSError:
            return None
        with it:
            for e in it:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                if e.name == ".git" and rel_dir:
                    return None  # a nested repository, or a submodule's .git file
                if (not rel_dir and e.name in _TOP_SKIP) or e.name == _SKIP:
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(rel)
                    continue
                try:
                    key = _key(e.stat(follow_symlinks=False))
                except OSError:  # gone since the listing: whatever removed it, git's to read
                    return None
                if key is not None:
                    files[rel] = key
                    if len(files) > MAX_FILES:
                        return None
    state = _git_state(repo, git_dir)
    now = _fs_now([*files.values(), *(k for k in state.values() if k)])
    known = tree["files"]
    hashes = {rel: _hash(repo, rel, k) for rel, k in files.items() if rel not in known and _racy(k, now)}
    return {"files": files, "hashes": hashes, "git": _hashed_if_racy(state, now)}


def rescan(repo: str, before: dict, rels, tree: dict) -> dict:
    """`before` with `rels` (ratchet's own swap wrote them) scanned again."""
    files, hashes, moved = dict(before["files"]), dict(before["hashes"]), {}
    for rel in rels:
        try:
            key = _key(os.lstat(os.path.join(repo, rel)))
        except OSError:
            key = None
        files.pop(rel, None)
        hashes.pop(rel, None)
        if key is not None:
            files[rel] = moved[rel] = key
    now = _fs_now(list(moved.values()))
    for rel, key in moved.items():
        if rel not in tree["files"] and _racy(key, now):
            hashes[rel] = _hash(repo, rel, key)
    return {**before, "files": files, "hashes": hashes}


def derive(repo: str, tree: dict, before: dict, after: dict) -> dict | None:
    """carry.tree() after the run, or None (see the module doc)."""
    if not _same_git(before["git"], after["git"]):
        return None
    known, dirty, hashes = tree["files"], set(tree["tracked"]), before["hashes"]
    b, a = before["files"], after["files"]
    for rel in b.keys() | a.keys():
        was, now = b.get(rel), a.get(rel)
        if was != now and rel.rsplit("/", 1)[-1] == ".gitattributes":
            return None
        if rel in known:
            continue
        if was is None:  # new: untracked, unless the index has it (then git showed it deleted)
            if rel in dirty or not rel.isascii():
                return None
        elif now != was:
            return None  # a tracked file changed or went: git judges
        elif rel in hashes and (hashes[rel] is None or hashes[rel] != _hash(repo, rel, now)):
            return None
    files = {rel: k[:4] for rel, k in a.items() if rel in known or rel not in b}
    return {"files": files, "tracked": list(tree["tracked"])}


def _same_git(before: dict | None, after: dict | None) -> bool:
    if before is None or after is None or before.keys() != after.keys():
        return False
    for full, was in before.items():
        now = after[full]
        if (was is None) != (now is None) or (was is not None and was[:5] != now[:5]):
            return False
        if was is not None and len(was) > 5 and _hash(os.path.dirname(full), os.path.basename(full), was) != was[5]:
            return False
    return True


def _key(st: os.stat_result) -> list | None:
    if not (_stat.S_ISREG(st.st_mode) or _stat.S_ISLNK(st.st_mode)):
        return None  # git lists neither a fifo nor a socket
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode]


def _fs_now(keys: list) -> int:
    """The file system's time now, from below: this machine's clock, or the
    newest timestamp among `keys` when that is older (a file server whose clock
    runs behind ours). Racy is judged against the clock that stamps the files,
    as git judges against its index file's mtime; from below, more files are
    racy, never fewer."""
    return min([time.time_ns(), max((max(k[1], k[2]) for k in keys), default=time.time_ns())])


def _racy(key: list, now_ns: int) -> bool:
    return now_ns - max(key[1], key[2]) < RACY_NS


def _hash(repo: str, rel: str, key: list) -> str | None:
    """The bytes' SHA-256 (a symlink's target path), None when too large or unreadable."""
    full = os.path.join(repo, rel)
    try:
        if _stat.S_ISLNK(key[4]):
            return "link:" + os.readlink(full)
        if key[0] > HASH_MAX:
            return None
        with open(full, "rb") as f:
            return sha256.hexdigest(f.read(HASH_MAX + 1))
    except OSError:
        return None


def _git_state(repo: str, git_dir: str) -> dict:
    """What decides git's report besides the tree: {path: stat} of each state
    file and of every configuration file git reads here (gitfilters'
    list), None when absent."""
    names = [os.path.join(git_dir, n) for n in _GIT_FILES]
    head = _small(os.path.join(git_dir, "HEAD")) or ""
    if head.startswith("ref: "):
        names.append(os.path.join(git_dir, *head[5:].strip().split("/")))
    names += gitfilters.config_files(repo, os.environ)
    state = {}
    for full in names:
        try:
            st = os.stat(full)
        except OSError:
            state[full] = None
            continue
        state[full] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode]
    return state


def _hashed_if_racy(state: dict, now_ns: int) -> dict | None:
    """`state` with each racy file's bytes' hash added (git writes these files
    by rename, a trial may write in place); None when a racy one is too large
    to hash."""
    out = {}
    for full, key in state.items():
        if key is not None and _racy(key, now_ns):
            digest = _hash(os.path.dirname(full), os.path.basename(full), key)
            if digest is None:
                return None
            key = key + [digest]
        out[full] = key
    return out


def _small(full: str) -> str | None:
    try:
        with open(full, "rb") as f:
            return f.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
