"""Nothing one side's run leaves behind reaches the other side (issue 14).

Both sides of a pair run in the same working tree, so a candidate's run
could write a file its diff does not contain (a `json.py` that shadows an
import next to bench.py, a rewritten helper, a data file) or a Python
startup hook outside the repository (startup.py), and the incumbent's next
run would execute it. Every run is bracketed: `watch()` before, `written()`
after.

What a run may write, anywhere: `__pycache__/` folders, `.ratchet/`, its own
diff (the candidate's paths), and the benchmark's outputs: the report file
or folder, `--artifact-glob` matches, `--output` pathspecs, and whatever the
unmodified code wrote in its runs (the baseline's and every incumbent run:
`learn()`; the exact path, or the folder when a new file appeared in a
folder holding no tracked file, e.g. `logs/run-<time>.log` -> `logs`).
Anything else a candidate's run creates, changes or deletes (tracked,
untracked or git-ignored) makes the iteration `tampered`: `undo()` removes
what it created, checks tracked files out of HEAD again, rewrites the user's
untracked files from the snapshot taken at `init` (below) and startup hooks
from the bytes kept before the run, and names what it could not put back.
The incumbent's runs are the same code as HEAD: what they write is learned,
never tampering (only a startup hook they plant is, since no benchmark needs
one).

The user's untracked files (not ignored, there at `init`) are copied to
`.ratchet/untracked/<sha256>` (each up to 1 MiB, 16 MiB in all; larger ones
are hashed only) with their hash and stat in `.ratchet/untracked.json`.
A file whose stat moved between runs (you edited it) is copied again before
the next candidate run, so a restore never brings back an older version.
"""

from __future__ import annotations

import os
import stat as _stat_mod

from . import gitops, gitpatch, harness, startup, store, store_files, treescan
from ..core import paths, sha256, sourcespec
from ..core.state import RunState, with_outputs

FORMAT = 1
COPY_MAX_BYTES = 1 << 20
COPY_TOTAL_BYTES = 16 << 20
MAX_LEARNED = 2000
CREATED, CHANGED, DELETED = "created", "changed", "deleted"


def _skip(rel: str) -> bool:
    return paths.bytecode_cache(rel) or rel == ".ratchet" or rel.startswith(".ratchet/")


# --- the working tree -------------------------------------------------------------

# One git process for the whole tree (issue 18: it runs before and after every
# trial): tracked changes, every untracked file, and the ignored entries as
# `--ignored=matching` names them: a file, or a folder a pattern ignores
# whole, which tree() walks itself (_ignored_folder). `traditional` listed
# every file of every ignored folder from git, .ratchet/ too: a pathspec
# exclude filters git's output but not its walk, so every report a run keeps
# (three a trial: thousands after a night) was listed before every trial.
_TREE = (*gitops.STATUS, "--ignored=matching")


def tree(repo: str, changes: list | None = None) -> dict:
    """{"files": {rel: [size, mtime_ns, ctime_ns, inode]} of every untracked
    and ignored file (not .ratchet/ nor __pycache__), "tracked": [paths git
    reports changed]}; `changes`: a status already read the way _TREE reads
    it (gitops.status_and_ignored's), for the tree as it stands now."""
    if changes is None:
        changes = gitops.parse_status(gitops.git(repo, *_TREE))
    files, tracked = {}, []
    for c in changes:
        if c.xy not in ("??", "!!"):
            tracked.append(c.path)
        elif _skip(c.path.rstrip("/")):
            continue
        elif c.path.endswith("/"):  # a nested repository is one entry, as git shows it; an ignored folder, walked
            if c.xy == "!!":
                _ignored_folder(repo, c.path.rstrip("/"), files)
        else:
            st = _stat(os.path.join(repo, c.path))
            if st is not None:
                files[c.path] = st
    return {"files": files, "tracked": sorted(tracked)}


def _ignored_folder(repo: str, folder: str, files: dict) -> None:
    """Add every file of an ignored folder to `files` as git's `traditional`
    listing has them: regular files and symlinks (a symlink to a folder
    too), not fifos or sockets; a folder holding `.git` is a nested
    repository, git's one entry, which tree() leaves out; __pycache__ is
    skipped. An ignored folder never holds a tracked file (matching lists
    such a folder's ignored contents one by one)."""
    top = os.path.join(repo, folder)
    if os.path.lexists(os.path.join(top, ".git")):
        return
    for cur, dirs, names in os.walk(top):
        kept = []
        for d in dirs:
            full = os.path.join(cur, d)
            if os.path.islink(full):
                names.append(d)
            elif d != "__pycache__" and not os.path.lexists(os.path.join(full, ".git")):
                kept.append(d)
        dirs[:] = kept
        for name in names:
            full = os.path.join(cur, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if _stat_mod.S_ISREG(st.st_mode) or _stat_mod.S_ISLNK(st.st_mode):
                files[os.path.relpath(full, repo).replace(os.sep, "/")] = _entry(st)


def swapped(repo: str, before: dict, tracked: list, new: list, absent: list, role: str) -> dict:
    """The `tree()` after ratchet's own swap to `role` ("candidate" or
    "incumbent", keep/paired.py), from the tree just before it, without a git
    process (issue 18: one a swap). Only the swap's paths moved, and the
    index is HEAD's throughout the pairs: on the candidate's side its tracked
    paths that HEAD has are changed, and its new files and the tracked paths
    HEAD lacks (`absent`: staged new files) are untracked files with the stat
    they have now; on the incumbent's side none of them is reported. A wrong
    guess could only show as a difference after the next run (tampered),
    never hide one."""
    gone = set(new) | set(absent)
    files = {rel: e for rel, e in before["files"].items() if rel not in gone}
    changed = set(before["tracked"]) - set(tracked)
    if role == "candidate":
        changed |= set(tracked) - set(absent)
        for rel in sorted(gone):
            st = None if _skip(rel) else _stat(os.path.join(repo, rel))
            if st is not None:
                files[rel] = st
    return {"files": files, "tracked": sorted(changed)}


def compare(before: dict, after: dict) -> dict:
    """{path: created|changed|deleted} between two `tree()` results."""
    out = {}
    b, a = before["files"], after["files"]
    for rel, e in a.items():
        if rel not in b:
            out[rel] = CREATED
        elif e != b[rel]:
            out[rel] = CHANGED
    for rel in b:
        if rel not in a:
            out[rel] = DELETED
    was = set(before["tracked"])
    for rel in set(after["tracked"]) ^ was:  # a tracked file the run changed (or put back)
        out[rel] = CHANGED
    return {p: k for p, k in sorted(out.items()) if not _skip(p)}


# --- what may be written ------------------------------------------------------------

def declared(cfg) -> list:
    """The outputs the user declared: report file/folder, artifact globs, --output."""
    src = cfg.source
    out = [src.path] if src.kind not in sourcespec.STREAMS and src.path else []
    return out + list(cfg.artifact_globs) + list(getattr(cfg, "outputs", ()) or ())


def allowed(cfg, state: RunState, own=()) -> list:
    return declared(cfg) + list(state.outputs_seen or ()) + list(own)


def outside(changes: dict, specs: list) -> dict:
    return {p: k for p, k in changes.items() if not paths.matches_any(p, specs)}


def learn(repo: str, state: RunState, changes: dict, specs: list) -> RunState:
    """The state with the paths an incumbent (or baseline) run wrote added to
    `outputs_seen`: those paths, or their folder when the run created a file in
    a folder that holds no tracked file."""
    new = outside(changes, specs)
    if not new:
        return state
    seen = list(state.outputs_seen or ())
    for rel, kind in new.items():
        if paths.matches_any(rel, seen) or len(seen) >= MAX_LEARNED:
            continue
        folder = os.path.dirname(rel)
        spec = rel
        if kind == CREATED and folder and not gitops.git(repo, "ls-files", "-z", "--", folder).strip("\0"):
            spec = folder
        seen.append(spec)
    return with_outputs(state, seen)


# --- one run, bracketed ---------------------------------------------------------------

def watch(run, seen: dict | None = None) -> dict:
    """Everything a run could tilt, as it is before the run. `seen["tree"]`,
    when set, is the tree as the previous run left it (`written` sets it), or
    as ratchet's swap since left it (`swapped`); it is cleared whenever
    anything else touched the tree (an undo), so it stands for a `tree()`.
    With `seen`, the tree is also scanned (io/treescan), so that `written`
    needs no git process when the run touched no tracked file;
    `seen["scan"]` is that scan as the tree stands, or False once a scan
    proved git's to make (a large tree, a nested repository).
    `seen["hooks"]`: the startup hooks as the previous run left them, set
    only when no watched folder is in the repository (startup.within), so
    nothing ratchet does between two runs moves them; a hook planted by
    anyone between two runs is then the next run's (issue 18: one snapshot
    a run, not two)."""
    refresh_user_files(run.repo, run.store.root)
    now, hooks = (seen or {}).get("tree"), (seen or {}).get("hooks")
    before = {"tree": now if now is not None else tree(run.repo), "hooks": hooks if hooks is not None else startup.snapshot()}
    if seen is not None:
        scan = seen.get("scan") if now is not None else None
        before["scan"] = scan if scan is not None else (treescan.scan(run.repo, before["tree"]) or False)
    return before


def written(run, before: dict, own=(), seen: dict | None = None) -> dict:
    """(outside writes {path: kind}, startup hooks {path: kind}) of the run
    that just ended, against `before`; `own`: the candidate's paths. The
    tree read goes to `seen["tree"]`, its scan to `seen["scan"]` (see `watch`)."""
    scan = before.get("scan")
    now = treescan.scan(run.repo, before["tree"]) if scan else None
    after = treescan.derive(run.repo, before["tree"], scan, now) if now else None
    if seen is not None:
        seen["scan"] = now if after is not None else (None if scan else False)
    after = after if after is not None else tree(run.repo)
    if seen is not None:
        seen["tree"] = after
    moved = outside(compare(before["tree"], after), allowed(run.config, run.state, own))
    hooks = startup.snapshot()
    if seen is not None and not startup.within(run.repo):  # ratchet's swap cannot move a hook: the next run's before
        seen["hooks"] = hooks
    return moved, startup.changed(before["hooks"], hooks)


def undo(run, before: dict, moved: dict, hooks: dict) -> list:
    """Put back what a run wrote (see the module docstring); return what
    could not be (paths)."""
    repo, failed = run.repo, []
    pins = (load_user_files(run.store.root) or {}).get("files", {})
    known = set(before["tree"]["tracked"]) | _tracked(repo, list(moved))
    tracked = [p for p in moved if p in known]
    if tracked:
        gitpatch.back_to_head(repo, tracked, [])
    for rel, kind in moved.items():
        if rel in tracked:
            continue
        full = os.path.join(repo, rel)
        if kind == CREATED:
            if os.path.lexists(full) and not os.path.isdir(full):
                os.remove(full)
                gitpatch.prune_empty_dirs(repo, os.path.dirname(rel))
            continue
        if rel in pins and _restore_user_file(run.store.root, repo, rel, pins[rel]):
            continue
        failed.append(rel)
    failed += startup.undo(before["hooks"], hooks)
    return failed


def _tracked(repo: str, rels: list) -> set:
    if not rels:
        return set()
    out = gitops.git(repo, "ls-files", "-z", "--", *rels)
    head = gitops.git(repo, "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *rels)
    return {p for p in (out + "\0" + head).split("\0") if p}


# --- the user's untracked files, snapshot at init ---------------------------------------

def _stat(full: str) -> list | None:
    try:
        return _entry(os.lstat(full))
    except OSError:
        return None


def _entry(st: os.stat_result) -> list:
    """A file's entry in a tree() and in the user-file pins: [size, mtime_ns, ctime_ns, inode]."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _pin_one(store_root: str, repo: str, rel: str, budget: int) -> dict | None:
    full = os.path.join(repo, rel)
    if not os.path.isfile(full) or os.path.islink(full):
        return None
    try:
        sha, size, data = harness.digest(full, COPY_MAX_BYTES)
    except OSError:
        return None
    copy = data is not None and size <= budget
    if copy:
        store_files.keep_copy(store_root, "untracked_copies", sha, data)
    return {"sha256": sha, "size": size, "mode": os.stat(full).st_mode & 0o7777, "copy": copy,
            "stat": _stat(full)}


def pin_user_files(repo: str, store_root: str, rels) -> dict:
    """Snapshot the user's untracked files (init): untracked.json and copies."""
    files, budget = {}, COPY_TOTAL_BYTES
    for rel in sorted(rels):
        if _skip(rel):
            continue
        e = _pin_one(store_root, repo, rel, budget)
        if e is not None:
            files[rel] = e
            budget -= e["size"] if e["copy"] else 0
    store_files.write_doc(store_root, "untracked", {"format": FORMAT, "pinned": store.now_iso(), "files": files})
    return {"files": len(files), "copied": sum(1 for e in files.values() if e["copy"]),
            "hashed_only": sorted(r for r, e in files.items() if not e["copy"])}


def load_user_files(store_root: str) -> dict | None:
    return store_files.read_doc(store_root, "untracked")


def refresh_user_files(repo: str, store_root: str) -> None:
    """Copy again the pinned files whose stat moved since (edited between runs)."""
    doc = load_user_files(store_root)
    if not doc:
        return
    files, moved = doc["files"], False
    used = sum(e["size"] for e in files.values() if e.get("copy"))
    for rel, e in list(files.items()):
        now = _stat(os.path.join(repo, rel))
        if now is None or now == e.get("stat"):
            continue
        budget = COPY_TOTAL_BYTES - used + (e["size"] if e.get("copy") else 0)
        fresh = _pin_one(store_root, repo, rel, budget)
        if fresh is not None:
            used += (fresh["size"] if fresh["copy"] else 0) - (e["size"] if e.get("copy") else 0)
            files[rel], moved = fresh, True
    if moved:
        store_files.write_doc(store_root, "untracked", doc)


def _restore_user_file(store_root: str, repo: str, rel: str, e: dict) -> bool:
    src = store.file(store_root, "untracked_copies", e["sha256"])
    if not e.get("copy") or not os.path.isfile(src):
        return False
    with open(src, "rb") as f:
        data = f.read()
    if sha256.hexdigest(data) != e["sha256"]:
        return False
    full = os.path.join(repo, rel)
    os.makedirs(os.path.dirname(full) or repo, exist_ok=True)
    if os.path.isdir(full) and not os.path.islink(full):
        return False
    tmp = full + ".ratchet-restore"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, e["mode"])
    os.replace(tmp, full)
    return True


def reason(moved: dict, hooks: dict, lost: list, who: str = "the candidate's run") -> str:
    """The `tampered` reason for what a run wrote outside its diff."""
    items = [f"{p} ({k})" for p, k in list(moved.items())[:4]]
    items += [f"startup hook {p} ({k})" for p, k in list(hooks.items())[:3]]
    more = len(moved) + len(hooks) - len(items)
    text = (f"tampered: {who} wrote outside its change: {', '.join(items)}" + (f" and {more} more" if more > 0 else "")
            + "; undone before the other side ran, and the candidate reverted")
    if lost:
        text += f"; could not put back {', '.join(lost[:3])}" + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
    return text
