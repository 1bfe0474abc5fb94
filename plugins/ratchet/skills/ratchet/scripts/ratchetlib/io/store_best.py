"""`.ratchet/best/`: the incumbent's checkpoints (FORMATS.md `best/`), kept
by the store (only io/store* writes under `.ratchet/`).

`promote` copies the files `artifacts.choose` picked into a new set, built in
`best.tmp-*` (each file fsynced, then best.json, then the folder), then
renames `best` to `best.old-*` and `best.tmp-*` to `best`, and removes the
old set. A kill at any point leaves a complete `best`, or no `best` and a
complete `best.old-*`; `recover` (run by every command that changes state)
puts the old one back and deletes partial builds, and the decided iteration
is then finished again, copy included.
"""

import os

from .store import FILES, _fsync_dir, now_iso, read_json, write_json

BEST, MANIFEST = FILES["best"].rstrip("/"), "best.json"


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
            _rmtree(os.path.join(root, name))
            notes.append(f"removed an unfinished copy of the best artifacts ({name})")
    if not os.path.exists(best) and olds:
        os.rename(os.path.join(root, olds[-1]), best)
        _fsync_dir(root)
        olds = olds[:-1]
        notes.append("put the previous best artifacts back after an interrupted swap")
    for name in olds:
        _rmtree(os.path.join(root, name))
    return notes


def _rmtree(path: str, ignore_errors: bool = True) -> None:
    import shutil  # only when there is something to remove: every verb runs recover() (issue 18)
    shutil.rmtree(path, ignore_errors=ignore_errors)


def manifest(root: str):
    """The best.json of .ratchet/best/, or None."""
    return read_json(os.path.join(root, BEST, MANIFEST), "best/best.json")


def _copy(src: str, dest: str) -> None:
    import shutil  # see _rmtree
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dest)


def promote(root: str, repo: str, rec: dict, files: list, metric: str) -> list:
    """Copy `files` (repository paths, `artifacts.choose`) into best/ atomically
    for iteration `rec`; return their paths."""
    recover(root)
    current = manifest(root)
    if current and current.get("iter") == rec["iter"]:
        return [f["path"] for f in current.get("files") or []]  # already done before a kill
    if not files:
        return []
    tmp = os.path.join(root, f"{BEST}.tmp-{rec['iter']:04d}-{os.urandom(3).hex()}")
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
    old = os.path.join(root, f"{BEST}.old-{iteration:04d}-{os.urandom(3).hex()}")
    if os.path.exists(best):
        _rename(best, old)
    _rename(tmp, best)
    _fsync_dir(root)
    if os.path.exists(old):
        _rmtree(old, ignore_errors=False)
