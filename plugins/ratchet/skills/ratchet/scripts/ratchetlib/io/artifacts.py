"""Checkpoints worth keeping: the files `--artifact-glob` names.

Per trial, `snapshot` (before) and `written` (after) tell which matching
files the trial wrote (`artifacts`: new or changed) and which of those it
created (`artifacts_created`: absent before the trial); both lists go into
the trial's record.

After a keep (and after the baseline), `promote` copies, for each glob, the
newest matching file the iteration's trials wrote into `.ratchet/best/`:
the files under `best/files/<path>` and `best/best.json` saying which
iteration, commit and score they belong to. The swap never exposes a half
written best: the new set is built in `best.tmp-*`, then `best` is renamed
to `best.old-*`, `best.tmp-*` to `best`, and the old set removed. A kill at
any point leaves a complete `best`, or no `best` and a complete
`best.old-*`; `recover` (run by every command that changes state) puts the
old one back and deletes partial builds, and the decided iteration is then
finished again, copy included. A keep whose trials wrote no artifact leaves
the previous best in place (its best.json says which iteration it is).

After any other decision, with `--artifacts-on-revert remove`, `discard`
deletes the files the iteration's trials created; files they only
overwrote, files git tracks and anything that existed before are left.
"""

import glob
import os
import secrets
import shutil

from . import gitops
from ..core import paths
from ..core.errors import UsageError
from .store import _fsync_dir, now_iso, read_json, write_json

BEST, MANIFEST = "best", "best.json"


def _matches(repo: str, pattern: str) -> list:
    hits = glob.glob(pattern, root_dir=repo, recursive=True)
    return sorted(h.replace(os.sep, "/") for h in hits
                  if not (h == ".ratchet" or h.startswith(".ratchet" + os.sep))
                  and os.path.isfile(os.path.join(repo, h)))


def snapshot(repo: str, globs) -> dict:
    """{path: (mtime_ns, size, inode)} of every file the globs match now."""
    out = {}
    for pattern in globs:
        for rel in _matches(repo, pattern):
            try:
                st = os.stat(os.path.join(repo, rel))
            except OSError:
                continue
            out[rel] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return out


def written(repo: str, globs, before: dict, started: float) -> dict:
    """The trial-record fields for the files a trial wrote; {} without globs."""
    if not globs:
        return {}
    after = snapshot(repo, globs)
    changed = sorted(p for p, sig in after.items() if before.get(p) != sig)
    return {"artifacts": changed, "artifacts_created": [p for p in changed if p not in before]}


# --- best ---------------------------------------------------------------------

def recover(root: str) -> list:
    """Undo a swap a kill interrupted; return notes. `root` is .ratchet/."""
    notes = []
    best = os.path.join(root, BEST)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return notes
    olds = [n for n in names if n.startswith(BEST + ".old-")]
    for name in names:
        if name.startswith(BEST + ".tmp-"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            notes.append(f"removed an unfinished copy of the best artifacts ({name})")
    if not os.path.exists(best) and olds:
        os.rename(os.path.join(root, olds[-1]), best)
        _fsync_dir(root)
        olds = olds[:-1]
        notes.append("put the previous best artifacts back after an interrupted swap")
    for name in olds:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return notes


def manifest(root: str):
    """The best.json of .ratchet/best/, or None."""
    return read_json(os.path.join(root, BEST, MANIFEST), "best/best.json")


def _copy(src: str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dest)


def choose(repo: str, globs, trials: list) -> list:
    """For each glob, the newest file matching it that the trials wrote."""
    wrote = {p for t in trials for p in t.get("artifacts") or ()}
    chosen = []
    for pattern in globs:
        found = []
        for rel in set(_matches(repo, pattern)) & wrote:
            try:
                found.append((os.stat(os.path.join(repo, rel)).st_mtime_ns, rel))
            except OSError:
                continue
        if found and max(found)[1] not in chosen:
            chosen.append(max(found)[1])
    return chosen


def promote(root: str, repo: str, rec: dict, globs, metric: str) -> list:
    """Copy the iteration's newest artifacts into best/ atomically; return their paths."""
    recover(root)
    current = manifest(root)
    if current and current.get("iter") == rec["iter"]:
        return [f["path"] for f in current.get("files") or []]  # already done before a kill
    files = choose(repo, globs, rec.get("trials") or [])
    if not files:
        return []
    tmp = os.path.join(root, f"{BEST}.tmp-{rec['iter']:04d}-{secrets.token_hex(3)}")
    os.makedirs(os.path.join(tmp, "files"))
    listed = []
    for rel in files:
        src = os.path.join(repo, rel)
        _copy(src, os.path.join(tmp, "files", rel))
        listed.append({"path": rel, "size": os.path.getsize(src)})
    write_json(os.path.join(tmp, MANIFEST), {"format": 1, "iter": rec["iter"], "sha": rec.get("sha"),
                                             "metric": metric, "score": rec.get("avg"), "files": listed,
                                             "created": now_iso()})
    _fsync_dir(tmp)
    _swap(root, tmp, rec["iter"])
    return files


def _rename(src: str, dest: str) -> None:
    os.rename(src, dest)


def _swap(root: str, tmp: str, iteration: int) -> None:
    best = os.path.join(root, BEST)
    old = os.path.join(root, f"{BEST}.old-{iteration:04d}-{secrets.token_hex(3)}")
    if os.path.exists(best):
        _rename(best, old)
    _rename(tmp, best)
    _fsync_dir(root)
    if os.path.exists(old):
        shutil.rmtree(old)


def discard(repo: str, trials: list) -> list:
    """Delete the untracked files the trials created; return their paths."""
    removed = []
    for rel in sorted({p for t in trials for p in t.get("artifacts_created") or ()}):
        full = os.path.join(repo, rel)
        if not paths.contained(repo, rel) or not os.path.isfile(full) or gitops.git(repo, "ls-files", "--", rel).strip():
            continue
        os.remove(full)
        removed.append(rel)
        parent = os.path.dirname(rel)
        while parent:
            try:
                os.rmdir(os.path.join(repo, parent))
            except OSError:
                break
            parent = os.path.dirname(parent)
    return removed


def apply(root: str, repo: str, cfg, rec: dict) -> dict:
    """The record with its `artifacts` field, after promoting or discarding (idempotent)."""
    if not cfg.artifact_globs:
        return rec
    trials = rec.get("trials") or []
    kept, removed = [], []
    if rec["decision"] in ("keep", "baseline"):
        kept = promote(root, repo, rec, cfg.artifact_globs, cfg.metric_name)
    elif trials and cfg.artifacts_on_revert == "remove":
        removed = discard(repo, trials)
    return {**rec, "artifacts": {"best": kept, "removed": removed}}


def summary(root: str) -> str:
    """One line about .ratchet/best/ for `status`, or ''."""
    try:
        m = manifest(root)
    except UsageError:  # a damaged best.json must not break status
        return ""
    if not m:
        return ""
    names = ", ".join(f["path"] for f in m.get("files") or [])
    return f"best artifacts (iter {m.get('iter')}): .ratchet/best/files/ ({names})"

