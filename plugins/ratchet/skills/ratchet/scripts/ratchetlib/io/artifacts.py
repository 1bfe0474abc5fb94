"""Checkpoints worth keeping: the files `--artifact-glob` names.

Per trial, `snapshot` (before) and `written` (after) tell which matching
files the trial wrote (`artifacts`: new or changed) and which of those it
created (`artifacts_created`: absent before the trial); both lists go into
the trial's record.

After a keep (and after the baseline), `choose` picks, for each glob, the
newest matching file the iteration's trials wrote, and `store_best.promote`
copies them into `.ratchet/best/`: the files under `best/files/<path>` and
`best/best.json` saying which iteration, commit and score they belong to
(the crash-safe swap is store_best's). A keep whose trials wrote no artifact
leaves the previous best in place (its best.json says which iteration it is).

After any other decision, with `--artifacts-on-revert remove`, `discard`
deletes the files the iteration's trials created; files they only
overwrote, files git tracks and anything that existed before are left.
"""

import glob
import os

from . import gitops
from ..core import paths
from ..core.errors import UsageError
from . import store_best


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
        chosen = choose(repo, cfg.artifact_globs, trials)
        kept = store_best.promote(root, repo, rec, chosen, cfg.metric_name)
    elif trials and cfg.artifacts_on_revert == "remove":
        removed = discard(repo, trials)
    return {**rec, "artifacts": {"best": kept, "removed": removed}}


def summary(root: str) -> str:
    """One line about .ratchet/best/ for `status`, or ''."""
    try:
        m = store_best.manifest(root)
    except UsageError:  # a damaged best.json must not break status
        return ""
    if not m:
        return ""
    names = ", ".join(f["path"] for f in m.get("files") or [])
    return f"best artifacts (iter {m.get('iter')}): .ratchet/best/files/ ({names})"

