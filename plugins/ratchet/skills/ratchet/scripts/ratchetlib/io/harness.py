"""The pinned harness: protected files are hashed at `init` and checked
again around every trial batch, so a change to the evaluation harness is
caught whoever made it (an edit by the agent, a git trick, or candidate code
rewriting files while the benchmark runs) and whether git sees the file or
not (a protected data folder is often git-ignored).

`pin()` walks every file under the protected pathspecs (tracked, untracked
and ignored alike), records its SHA-256, size and mode in
`.ratchet/harness.json` and keeps a copy of each small file under
`.ratchet/harness/<sha256>`, so it can be put back. `verify()` returns what
changed, `{path: "edited" | "deleted" | "added"}` (empty: intact);
`restore()` undoes exactly that and returns the paths it could not restore.

Not pinned: `.ratchet/` (ratchet's own state), any `.git/`, Python's
`__pycache__/` folders (rewritten whenever a protected module is imported),
and the report file (the benchmark writes it every trial). Content only: a
chmod is not a change. A file whose size, inode, mtime and ctime are all as
pinned is not hashed again (user code cannot set a ctime back); a file whose
timestamps were within two seconds of the pin is "racy" (as in git, by the
clock that stamps the files: store_files.fs_now) and is always hashed. `window()`/`rewritten()` catch a protected file rewritten and
put back while candidate code ran (kind "rewritten"). See FORMATS.md for harness.json.
"""

from __future__ import annotations

import os
import stat

from . import fresh, gitops, store, store_files
from ..core import paths, sha256

FORMAT = 1
COPY_MAX_BYTES = 1 << 20       # files up to 1 MiB are copied ...
COPY_TOTAL_BYTES = 32 << 20    # ... until the copies reach 32 MiB in all
SKIP_DIRS = frozenset((".git", "__pycache__"))
_RACY_NS = 2_000_000_000
EDITED, DELETED, ADDED = "edited", "deleted", "added"
REWRITTEN = "rewritten"  # content as pinned, but written during a trial window (rewrite-and-restore)


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def _walk_start(spec: str) -> str:
    """The longest literal folder prefix of `spec` ('' for the repository root)."""
    if spec == ".":
        return ""
    if not _is_glob(spec):
        return spec
    literal = []
    for seg in spec.split("/"):
        if _is_glob(seg):
            break
        literal.append(seg)
    return "/".join(literal)


def _descend(rel_dir: str, spec: str) -> bool:
    """Whether a folder may hold paths that `spec` matches (prunes the walk)."""
    if not _is_glob(spec) or "**" in spec or paths.matches(rel_dir, spec):
        return True
    return rel_dir.count("/") + 1 < spec.count("/") + 1


def protected_files(repo: str, specs, exclude=()) -> tuple:
    """(files, folders): repository-relative POSIX paths under `specs`.

    Files include symlinks (never followed) and nothing in SKIP_DIRS or
    `exclude`; folders are every folder walked, so a restore never prunes a
    folder that existed at the pin.
    """
    files, folders = set(), set()
    for spec in (paths.normalize(s) for s in specs):
        start = _walk_start(spec)
        if start and not paths.contained(repo, start):  # a spec outside the repository (an old config) pins nothing
            continue
        full = os.path.join(repo, start) if start else repo
        if start and (os.path.islink(full) or os.path.isfile(full)):
            if paths.matches(start, spec) and not paths.matches_any(start, exclude):
                files.add(start)
            continue
        if not os.path.isdir(full) or (start and paths.matches_any(start, exclude)):
            continue
        for dirpath, dirnames, filenames in os.walk(full):
            rel_dir = os.path.relpath(dirpath, repo).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir
            folders.add(rel_dir)
            keep = []
            for d in dirnames:
                rel = f"{rel_dir}/{d}" if rel_dir else d
                if d in SKIP_DIRS or paths.matches_any(rel, exclude):
                    continue
                if os.path.islink(os.path.join(dirpath, d)):
                    filenames.append(d)
                elif _descend(rel, spec):
                    keep.append(d)
            dirnames[:] = keep
            for name in filenames:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if paths.matches(rel, spec) and not paths.matches_any(rel, exclude):
                    files.add(rel)
    return sorted(files), sorted(folders)


def digest(full: str, keep_max: int = 0) -> tuple:
    """(sha256 hex, size, the bytes when the file is at most `keep_max`
    bytes, else None; never with keep_max 0), reading the file once in 1 MiB chunks. The one
    content hash of the harness pins, the git-configuration pins (gitguard)
    and the untracked-file snapshot (carry)."""
    size, chunks = 0, []
    with open(full, "rb") as f:
        h = sha256.for_size(os.fstat(f.fileno()).st_size)
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
            if size <= keep_max:
                chunks.append(chunk)
    return h.hexdigest(), size, (b"".join(chunks) if keep_max and size <= keep_max else None)


def stat_key(st: os.stat_result, now_ns: int) -> list | None:
    """What stands for a file's content once hashed: inode, mtime and ctime
    (a write moves the ctime, which user code cannot set back); None while
    racy (changed within two seconds of `now_ns`, as git's racy check: a
    timestamp may be that coarse), and such a file is always hashed."""
    newest = max(st.st_mtime_ns, st.st_ctime_ns)
    return None if now_ns - newest < _RACY_NS else [st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def load(store_root: str) -> dict | None:
    """harness.json, or None for a run started before pinning existed."""
    return store.read_sealed(store_root, "harness.json")


def pin(repo: str, store_root: str, specs, exclude=(), now_ns: int | None = None,
        gitguard: str | None = None) -> dict:
    """Hash every protected file, copy the small ones, write harness.json;
    `gitguard`: the SHA-256 of gitguard.json, sealed here with the pins
    (io/gitguard)."""
    now_ns = store_files.fs_now(store_root) if now_ns is None else now_ns
    found, folders = protected_files(repo, specs, exclude)
    tracked = set(gitops.git(repo, "ls-files", "-z").split("\0")) if found else set()
    store_files.folder(store_root, "harness_copies")
    entries, copied = {}, 0
    for rel in found:
        full = os.path.join(repo, rel)
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            entries[rel] = {"link": os.readlink(full), "tracked": rel in tracked}
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        want_copy = copied + st.st_size <= COPY_TOTAL_BYTES and st.st_size <= COPY_MAX_BYTES
        sha, size, data = digest(full, COPY_MAX_BYTES if want_copy else 0)
        if data is not None and copied + size <= COPY_TOTAL_BYTES:
            store_files.keep_copy(store_root, "harness_copies", sha, data)
            copied += size
        entries[rel] = {"sha256": sha, "size": size, "mode": stat.S_IMODE(st.st_mode), "tracked": rel in tracked,
                        "copy": data is not None, "stat": stat_key(st, now_ns)}
    doc = {"format": FORMAT, "protect": list(specs), "exclude": list(exclude), "pinned": store.now_iso(),
           "files": entries, "folders": folders}
    if gitguard is not None:
        doc["gitguard_sha256"] = gitguard
    store.write_sealed(store_root, "harness.json", doc)
    return {"files": len(entries), "bytes": sum(e.get("size", 0) for e in entries.values()), "copied_bytes": copied}


def same(full: str, entry: dict, follow: bool = False) -> bool:
    """Whether `full` still holds the pinned `entry` (sha256, size, and the
    `stat_key` when it was not racy: then no hash); `follow`: a symlink is
    judged by the file it points to (gitguard's pins), else by its target
    path (`link`)."""
    try:
        st = os.stat(full) if follow else os.lstat(full)
    except OSError:
        return False
    if "link" in entry:
        return stat.S_ISLNK(st.st_mode) and os.readlink(full) == entry["link"]
    if not stat.S_ISREG(st.st_mode) or st.st_size != entry["size"]:
        return False
    if entry.get("stat") == [st.st_ino, st.st_mtime_ns, st.st_ctime_ns]:
        return True
    try:
        return digest(full)[0] == entry["sha256"]
    except OSError:
        return False


def verify(repo: str, store_root: str) -> dict:
    """What changed since the pin: {path: "edited"|"deleted"|"added"}, sorted."""
    pins = load(store_root)
    if not pins:
        return {}
    entries = pins["files"]
    changes = {}
    for rel, entry in entries.items():
        full = os.path.join(repo, rel)
        if not os.path.lexists(full):
            changes[rel] = DELETED
        elif not same(full, entry):
            changes[rel] = EDITED
    found, _ = protected_files(repo, pins.get("protect") or (), pins.get("exclude") or ())
    for rel in found:
        if rel not in entries:
            changes[rel] = ADDED
    return dict(sorted(changes.items()))


def window(repo: str, store_root: str) -> dict:
    """What the file system records of each pinned file now, {rel: [inode,
    mtime, ctime]}: taken right before candidate code runs (trials, the guard).

    A hash before and after cannot see a protected file rewritten and put
    back within the run (same bytes, even the old mtime via utime). The
    kernel sets ctime on every write, chmod, utime, rename or link, and no
    call sets it back; a file put back by rename has a new inode. So a
    changed key across the window is a rewrite, whatever the content. The
    window spans only candidate code: what the user does between commands
    (an editor's save, a `touch`) is never compared. (Read-only files are no
    check: their owner or root writes them anyway, and chmod is one more
    ctime change.)"""
    out = {}
    for rel in ((load(store_root) or {}).get("files") or {}):
        try:
            st = os.lstat(os.path.join(repo, rel))
        except OSError:
            continue
        out[rel] = [st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
    return out


def rewritten(repo: str, before: dict) -> dict:
    """{rel: "rewritten"} for files of `window()` whose key moved since
    (a deleted file is `verify()`'s to report)."""
    out = {}
    for rel, key in before.items():
        try:
            st = os.lstat(os.path.join(repo, rel))
        except OSError:
            continue
        if [st.st_ino, st.st_mtime_ns, st.st_ctime_ns] != key:
            out[rel] = REWRITTEN
    return out


def content_unchanged(repo: str, store_root: str, rel: str) -> bool:
    """True when `rel` is pinned and its content is as pinned (a chmod is fine)."""
    pins = load(store_root)
    entry = (pins or {}).get("files", {}).get(rel)
    return entry is not None and same(os.path.join(repo, rel), entry)


def _pinned_copy(store_root: str, entry: dict) -> bytes | None:
    if not entry.get("copy"):
        return None
    try:
        with open(store.file(store_root, "harness_copies", entry["sha256"]), "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data if sha256.hexdigest(data) == entry["sha256"] else None


def _remove(full: str) -> None:
    if os.path.isdir(full) and not os.path.islink(full):
        import shutil  # a restore is rare (issue 18)
        shutil.rmtree(full)
    elif os.path.lexists(full):
        os.remove(full)


def _prune(repo: str, rel_dir: str, keep) -> None:
    while rel_dir and rel_dir not in keep:
        try:
            os.rmdir(os.path.join(repo, rel_dir))
        except OSError:
            return
        rel_dir = os.path.dirname(rel_dir)


def restore(repo: str, store_root: str, changes: dict | None = None) -> list:
    """Undo `changes` (default: whatever `verify` finds); return what could
    not be restored (a large untracked file has no copy). Idempotent."""
    pins = load(store_root)
    if not pins:
        return []
    changes = verify(repo, store_root) if changes is None else changes
    entries, keep = pins["files"], set(pins.get("folders") or ())
    failed, touched = [], False
    for rel, kind in changes.items():
        if not paths.contained(repo, rel):  # belt and braces: a pin outside the repository is never written
            failed.append(rel)
            continue
        full = os.path.join(repo, rel)
        entry = entries.get(rel)
        if entry is None:  # added: not there at the pin, so this run made it
            _remove(full)
            _prune(repo, os.path.dirname(rel), keep)
            continue
        if same(full, entry):
            continue
        _remove(full)
        os.makedirs(os.path.dirname(full) or repo, exist_ok=True)
        if "link" in entry:
            os.symlink(entry["link"], full)
        else:
            data = _pinned_copy(store_root, entry)
            if data is not None:
                tmp = full + ".ratchet-restore"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.chmod(tmp, entry["mode"])
                os.replace(tmp, full)
            elif entry.get("tracked"):
                gitops.git(repo, "checkout", "-q", "HEAD", "--", rel, check=False)
            entry["stat"] = None
            touched = True
        if not same(full, entry):
            failed.append(rel)
    if touched:
        store.write_sealed(store_root, "harness.json", pins)
    fresh.switched(repo, list(changes))
    return failed


def unrestorable(store_root: str, changes: dict) -> list:
    """The changed paths `restore` has no source for (no copy, not tracked)."""
    entries = (load(store_root) or {}).get("files", {})
    out = []
    for rel, kind in changes.items():
        e = entries.get(rel)
        if kind != REWRITTEN and e is not None and "link" not in e and not e.get("tracked") and _pinned_copy(store_root, e) is None:
            out.append(rel)
    return out


def commands_name(args: dict, repo: str) -> tuple:
    """The tracked files the init flags' run, guard and holdout commands name
    (see `harness_named.named_files`), for `config.build` to protect."""
    cmds = ((args.get(k) or "").strip() for k in ("run_command", "guard_command", "holdout_command"))
    from . import harness_named  # only `init` reads the commands' files
    return tuple(dict.fromkeys(f for cmd in cmds if cmd for f in harness_named.named_files(cmd, repo)))
