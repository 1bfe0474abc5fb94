"""Git's own configuration is harness: pinned at `init`, checked like it.

A smudge/clean filter (`.git/config` + an attributes file), a hook, an
exclude pattern or an `core.*` setting changes what ratchet's own git calls
do: a smudge filter rewrites the incumbent's files as the swap checks them
out, an exclude pattern hides a candidate's new file from `git status` (so
it is never reverted). ratchet's git calls run with hooks and filters
disabled (gitops), and on top of that a change to any of these files is
`tampered`: the candidate is reverted and the files put back from the copies
kept here.

Pinned (`pin`, at `init`): git's `config`, `config.worktree`,
`info/attributes`, `info/exclude` and every file under `hooks/` (paths as
`git rev-parse --git-path` resolves them, so a linked worktree is covered),
each as SHA-256, mode and a copy under `.ratchet/gitguard/<sha256>`; a file
that did not exist is pinned as absent. `.gitattributes` files in the work
tree are the candidate's diff, so the engine refuses them there
(`ATTRIBUTES`). Files over 1 MiB are hashed only. See FORMATS.md
(gitguard.json).

gitguard.json is written once, at `init`, and its SHA-256 is sealed in
harness.json (`gitguard_sha256`, see io/seal.py): a trial's code or an
agent that rewrites both `.git/config` and its pin is refused like a forged
harness.json. A run pinned before this has no digest there, and its
gitguard.json is read as it is.

A pin is named by its label (`.git/config`, `.git/hooks/<name>`), which is
resolved again in the repository at every check and restore: the project
folder may have moved since `init`, and a path kept from then could name
another repository's files by now (older pins also hold a `path`, never
read). A label that would lead out of the hooks folder is ignored.
"""

from __future__ import annotations

import os

from ..core import sha256
from . import gitops, gitroot, harness, seal, store, store_files

FORMAT = 1
COPY_MAX_BYTES = 1 << 20
FILES = ("config", "config.worktree", "info/attributes", "info/exclude")
HOOKS = "hooks"
ATTRIBUTES = ".gitattributes"
EDITED, DELETED, ADDED = "edited", "deleted", "added"


def _git_paths(repo: str) -> tuple:
    """({label: absolute path} of every pinned file that exists now, plus the
    fixed files whether they exist or not (label: `.git/<name>`); the hooks
    folder)."""
    # `--git-path hooks` would name /dev/null: ratchet's git calls set core.hooksPath to
    # keep hooks out of them (gitops._SAFE), so the hooks folder is the common dir's own.
    names = list(FILES)
    plain = gitroot.plain_git_dir(repo)  # checked around every trial: no git process when the layout is plain
    if plain:
        out = [plain] + [os.path.join(plain, n) for n in names]
    else:
        out = gitops.git(repo, "rev-parse", "--git-common-dir", *[a for n in names for a in ("--git-path", n)]).splitlines()
    resolved = {n: (p if os.path.isabs(p) else os.path.join(repo, p)) for n, p in zip(["common"] + names, out)}
    found = {f".git/{n}": resolved[n] for n in FILES}
    hooks = os.path.join(resolved["common"], HOOKS)
    for top, _, files in os.walk(hooks):
        for name in files:
            full = os.path.join(top, name)
            found[_HOOK + os.path.relpath(full, hooks).replace(os.sep, "/")] = full
    return found, hooks


_HOOK = ".git/hooks/"


def _at(label: str, now: dict, hooks: str) -> str | None:
    """Where the file pinned as `label` is in this repository now (a hook
    removed since has no entry in `now`); None for a label that names no
    pinnable file."""
    if label in now:
        return now[label]
    parts = label[len(_HOOK):].split("/") if label.startswith(_HOOK) else []
    if not parts or any(p in ("", ".", "..") for p in parts):
        return None
    return os.path.join(hooks, *parts)


def pin(repo: str, store_root: str) -> dict:
    """Hash (and copy) git's configuration files now; write gitguard.json."""
    store_files.folder(store_root, "gitguard_copies")
    files, now_ns = {}, store_files.fs_now(store_root)
    for label, full in _git_paths(repo)[0].items():
        if not os.path.isfile(full):
            files[label] = {"absent": True}
            continue
        st = os.stat(full)
        sha, size, _ = harness.digest(full)
        copy = size <= COPY_MAX_BYTES
        if copy:
            store_files.keep_copy(store_root, "gitguard_copies", sha, src=full)
        files[label] = {"sha256": sha, "size": size, "mode": st.st_mode & 0o7777,
                        "copy": copy, "stat": harness.stat_key(st, now_ns) if st.st_size == size else None}
    store_files.write_doc(store_root, "gitguard", {"format": FORMAT, "pinned": store.now_iso(), "files": files})
    return files


def load(store_root: str) -> dict | None:
    """The pins, checked against the digest harness.json seals (SealError
    when they do not match or are gone)."""
    want = (harness.load(store_root) or {}).get("gitguard_sha256")
    got = pins_digest(store_root) if want is not None else None
    if want is not None and got != want:
        how = "is missing: it was deleted outside ratchet" if got is None else \
            "was changed outside ratchet (it does not match the digest harness.json seals)"
        raise seal.changed_outside(store_root, "gitguard.json", how)
    return store_files.read_doc(store_root, "gitguard")


def pins_digest(store_root: str) -> str | None:
    """SHA-256 of gitguard.json's bytes; None when there is none."""
    try:
        with open(store.file(store_root, "gitguard"), "rb") as f:
            return sha256.hexdigest(f.read())
    except FileNotFoundError:
        return None


def verify(repo: str, store_root: str) -> dict:
    """{label: edited|deleted|added} since the pin; {} when intact or never pinned."""
    pins = load(store_root)
    if not pins:
        return {}
    entries, (now, hooks) = pins["files"], _git_paths(repo)
    changes = {}
    for label, e in entries.items():
        full = _at(label, now, hooks)
        if full is None:
            continue
        there = os.path.isfile(full)
        if e.get("absent"):
            if there:
                changes[label] = ADDED
        elif not there:
            changes[label] = DELETED
        elif not harness.same(full, e, follow=True):  # its stat as pinned: not hashed again
            changes[label] = EDITED
    for label, full in now.items():
        if label not in entries and os.path.lexists(full):
            changes[label] = ADDED
    return dict(sorted(changes.items()))


def restore(repo: str, store_root: str, changes: dict | None = None) -> list:
    """Undo `changes` (default: what `verify` finds); return the labels that
    could not be restored (a file over the copy cap)."""
    pins = load(store_root)
    if not pins:
        return []
    changes = verify(repo, store_root) if changes is None else changes
    (now, hooks), failed = _git_paths(repo), []
    for label in changes:
        e = pins["files"].get(label)
        full = _at(label, now, hooks)
        if full is None:
            continue
        try:
            if e is None or e.get("absent"):
                if os.path.lexists(full):
                    os.remove(full)
                continue
            src = store.file(store_root, "gitguard_copies", e["sha256"])
            if not e.get("copy") or not os.path.isfile(src):
                failed.append(label)
                continue
            os.makedirs(os.path.dirname(full), exist_ok=True)
            tmp = full + ".ratchet-restore"
            import shutil  # a restore is rare (issue 18)
            shutil.copyfile(src, tmp)
            os.chmod(tmp, e["mode"])
            os.replace(tmp, full)
        except OSError:
            failed.append(label)
    return failed


def attributes_in(paths) -> list:
    """The `.gitattributes` files among a candidate's changed paths."""
    return [p for p in paths if os.path.basename(p) == ATTRIBUTES]
