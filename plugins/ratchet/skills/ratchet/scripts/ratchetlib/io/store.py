"""Persistence under `.ratchet/`: the only writer of anything in it.

`FILES` names every file and folder the store holds (FORMATS.md's table, same
rows); other modules ask for a path by name (`file`, `Store.file`) and write
through the store modules, never with a raw open/rename/copy of their own
(tests/test_store_writer.py checks it): this one (the primitives, the sealed
files, the run's config/state/current/records/loop and its archive),
store_files (every other named file), store_lock (the lock), store_seal
(adopting a run from before seals, `reseal`) and store_best (`best/`).
The formats and every field are documented in FORMATS.md (format 1). Whole
files are replaced atomically (temp file in the same folder, fsync, rename,
fsync of the folder), so a kill at any instant leaves either the old or the
new version. `results.jsonl` is append-only; a torn last line (a kill in the
middle of an append) is ignored by readers and cut off by `repair()`; any
other unreadable line is refused with its line number (never skipped).
"""

from __future__ import annotations

import json
import os
import time

from ..core import faults
from ..core.state import RunState
from ..core.state import from_json as state_from_json
from . import seal
from .store_rename import renamed_into_place
from ..core.errors import UsageError

FORMAT = 1
DIRNAME = ".ratchet"

# Every file and folder under `.ratchet/` by name (a trailing `/`: a folder).
# FORMATS.md's table lists the same paths with their writers; a new file is a
# row here and there (tests/test_store_writer.py compares the two).
FILES = {
    "config": "config.json", "state": "state.json", "results": "results.jsonl", "current": "current.json",
    "lock": "lock", "reports": "reports/", "ideas": "ideas.json", "bandit": "bandit.json",
    "program": "program.md", "patches": "patches/", "harness": "harness.json", "harness_copies": "harness/",
    "gitguard": "gitguard.json", "gitguard_copies": "gitguard/", "untracked": "untracked.json",
    "untracked_copies": "untracked/", "holdout": "holdout.json", "holdout_runs": "holdout/", "runs": "runs/",
    "report_html": "report.html", "parent": "parent.json", "best": "best/", "unclean": "UNCLEAN",
    "loop": "loop.json", "stop_hook": "stop-hook.json", "agents": "agents/", "worktrees": "worktrees/",
    "swap": "swap/", "verify": "verify.json", "procs": "procs/", "gitconfig": "gitconfig.json",
    "quarantine": "quarantine/",
}


def file(root: str, name: str, *parts: str) -> str:
    """The path of `.ratchet/` entry `name` (a key of FILES) in run folder
    `root`, with `parts` below it for a folder."""
    return os.path.join(root, FILES[name].rstrip("/"), *parts)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def atomic_write(path: str, data: bytes, durable: bool = True) -> None:
    """Replace `path` with `data` so a reader never sees a partial file. The
    data is always fsynced before the rename (after a power loss the path holds
    the old bytes or the new, never an empty file); `durable` also fsyncs the
    folder, so the rename itself survives a power loss, which every write a
    later step depends on needs. Only progress a recovery can do without
    (Store.write_current's `progress`) skips that: the old version it may
    fall back to is just as valid."""
    folder = os.path.dirname(path) or "."
    fd, tmp = new_beside(folder, os.path.basename(path))
    with renamed_into_place(tmp, path), os.fdopen(fd, "wb") as f:
        faults.on_write(path, lambda: f.write(data[: len(data) // 2]))  # tests: a full disk part-way
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if durable:
        _fsync_dir(folder)


def new_beside(folder: str, name: str) -> tuple:
    """(fd, path) of a new file `.tmp-<random>NAME` in `folder`, created
    exclusively, mode 0600: what tempfile.mkstemp makes, without loading
    tempfile (with random and weakref: ~3 ms of every writing verb on a
    clean interpreter, issue 18)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    while True:
        tmp = os.path.join(folder, f".tmp-{os.urandom(6).hex()}{name}")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str, obj: dict) -> None:
    atomic_write(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def parse_doc(raw: bytes, path: str, what: str) -> dict:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"{what} ({path}) is corrupt; restore it or start a new run with `init`") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{what} ({path}) is not a JSON object; restore it or start a new run with `init`")
    fmt = obj.get("format", FORMAT)
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise UsageError(f"{what} has format {fmt!r}, newer than this ratchet understands ({FORMAT}); upgrade ratchet")
    return obj


def read_json(path: str, what: str) -> dict | None:
    """Load a state file; None when absent, UsageError when unreadable."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    return parse_doc(raw, path, what)


# --- sealed files (seal.py): the run's contract ---------------------------------

def read_sealed(root: str, name: str) -> dict | None:
    """Load sealed file `name` of the store at `root` without its seal; None
    when absent; UsageError when corrupt (as read_json), SealError when it
    does not verify."""
    path = os.path.join(root, name)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        seal.remember(root, name, None)
        return None
    return seal.verify(root, name, raw, parse_doc(raw, path, name))


def write_sealed(root: str, name: str, obj: dict, durable: bool = True) -> None:
    """The only writer of a sealed file: atomic, the seal inside (see seal.py)."""
    if name == "config.json" and seal.read_key(obj["run_id"]) is None:
        seal.make_key(obj["run_id"])  # a new run (init, chain)
    run_id, key = seal.key_for(root, name, obj)
    data = seal.dump(obj, name, run_id, key)
    atomic_write(os.path.join(root, name), data, durable)
    seal.remember(root, name, data)


class Store:
    """The `.ratchet/` folder of one repository."""

    def __init__(self, repo: str):
        self.repo = repo
        self.root = os.path.join(repo, DIRNAME)
        self.taken_over = None  # the lock body of a killed command whose lock this one took over

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def file(self, name: str, *parts: str) -> str:
        """Entry `name` of FILES in this store (see `file`)."""
        return file(self.root, name, *parts)

    def archived(self, run_id: str) -> "Store":
        """The store of run `run_id` as `init` archived it (`runs/<run-id>/`),
        read with the same methods (its config, records)."""
        other = Store(self.repo)
        other.root = self.file("runs", run_id)
        return other

    def exists(self) -> bool:
        return os.path.exists(self.file("config"))

    def set_aside(self, name: str) -> str:
        """Rename an unreadable state file to NAME.corrupt-TIME (kept, never
        deleted); the new path, relative to the repository."""
        dest = self.path(f"{name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.path(name), dest)
        return os.path.relpath(dest, self.repo)

    def ensure_dirs(self) -> None:
        for sub in ("reports", "patches"):
            os.makedirs(self.file(sub), exist_ok=True)

    # --- whole-file state -------------------------------------------------
    def read_config(self) -> dict | None:
        return read_sealed(self.root, "config.json")

    def write_config(self, cfg: dict) -> None:
        write_sealed(self.root, "config.json", cfg)

    def read_state(self) -> RunState | None:
        found = read_sealed(self.root, "state.json")
        return None if found is None else state_from_json(found)

    def write_state(self, state: RunState) -> None:
        write_sealed(self.root, "state.json", {**state.to_json(), "updated": now_iso()})

    def read_current(self) -> dict | None:
        return read_sealed(self.root, "current.json")

    def write_current(self, cur: dict, progress: bool = False) -> None:
        """`progress`: a trial added to a `measuring` buffer (or the side now
        in the tree), whose trials recovery discards (it measures again) and
        whose `swap` the durable write before the first switch already
        holds: its rename is not made durable (atomic_write). Every other
        write of current.json orders a later step and is."""
        write_sealed(self.root, "current.json", {"format": FORMAT, **cur}, durable=not progress)

    def clear_current(self) -> None:
        try:
            os.unlink(self.file("current"))
        except FileNotFoundError:
            pass
        seal.remember(self.root, "current.json", None)

    # --- records ----------------------------------------------------------
    def append_record(self, record: dict) -> None:
        """Append one complete line and fsync it before returning."""
        run_id, key = seal.key_for(self.root, seal.RECORDS)
        line = seal.record_line({"format": FORMAT, **record}, run_id, key)
        fd = os.open(self.file("results"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            faults.on_write(self.file("results"), lambda: os.write(fd, line[: len(line) // 2]))
            faults.point("record-torn", lambda: os.write(fd, line[: len(line) // 2]))
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self, last: int | None = None) -> list:
        """Finished records, oldest first; `last` reads only the file's tail.
        A record of a newer format than FORMAT is refused (UsageError), as
        read_json refuses a state file: guessing at it could mislead a decision.
        Each keeps its `seal` (see `record_trusted`)."""
        return records_in(self.root, last)

    def record_trusted(self, rec: dict) -> bool:
        """Whether `rec` (from `records`) was written by this run's ratchet:
        its seal verifies, or the run is not sealed, or it predates the
        sealing of a run adopted from before seals (state `sealed_after`)."""
        run_id, key = seal.key_for(self.root, seal.RECORDS)
        if key is None or seal.record_verifies(rec, run_id, key):
            return True
        st = self.read_state()
        after = st.sealed_after if st is not None else None
        return seal.FIELD not in rec and isinstance(after, int) and isinstance(rec.get("iter"), int) \
            and rec["iter"] <= after

    def repair(self) -> str | None:
        """Cut a torn final line off results.jsonl; say what was done."""
        path = self.file("results")
        try:
            with open(path, "rb+") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if size == 0:
                    return None
                f.seek(max(0, size - 1))
                if f.read(1) == b"\n":
                    return None
                chunk = 1 << 16
                pos = size
                while pos > 0:
                    start = max(0, pos - chunk)
                    f.seek(start)
                    buf = f.read(pos - start)
                    i = buf.rfind(b"\n")
                    if i >= 0:
                        cut = start + i + 1
                        break
                    pos = start
                else:
                    cut = 0
                f.truncate(cut)
                os.fsync(f.fileno())
                return f"removed a torn last line ({size - cut} bytes) from results.jsonl"
        except FileNotFoundError:
            return None

    # --- run archive --------------------------------------------------------
    def archive(self) -> str | None:
        """Move the current run's files to runs/<run-id>/; return that id."""
        if not self.exists():
            return None
        run_id = seal.run_of(self.root)[0]  # a corrupt, too new or unsealed config is archived all the same
        if not seal.valid_run_id(run_id) or os.path.exists(self.file("runs", run_id)):
            run_id = time.strftime("%Y%m%d-%H%M%S")
        dest = self.file("runs", run_id)
        os.makedirs(dest, exist_ok=False)
        import shutil  # archiving is rare: the read verbs never load it
        for name in os.listdir(self.root):
            if name in (FILES["runs"].rstrip("/"), FILES["lock"], FILES["unclean"]):  # UNCLEAN guards the machine, not one run
                continue
            shutil.move(self.path(name), os.path.join(dest, name))
        seal.forget(self.root)
        return run_id

    # --- headless loop (loop.json, agents/) -----------------------------------
    def read_loop(self) -> dict | None:
        return read_sealed(self.root, "loop.json")

    def write_loop(self, loop: dict) -> None:
        write_sealed(self.root, "loop.json", {"format": FORMAT, **loop, "updated": now_iso()})

    def agent_path(self, iteration: int, ext: str, slot: int | None = None) -> str:
        """`agents/iter-NNNN[-slot-K].EXT`: an agent call's prompt and output."""
        os.makedirs(self.file("agents"), exist_ok=True)
        name = f"iter-{iteration:04d}" + (f"-slot-{slot}" if slot else "")
        return self.file("agents", f"{name}.{ext}")

    def report_path(self, iteration: int, trial: int, ext: str = "txt") -> str:
        return self.file("reports", f"iter-{iteration:04d}-trial-{trial:02d}.{ext}")

    def patch_path(self, iteration: int) -> str:
        return self.file("patches", f"iter-{iteration:04d}.patch")


def records_in(root: str, last: int | None = None) -> list:
    """The records of the results.jsonl in run folder `root` (see `Store.records`)."""
    path = file(root, "results")
    try:
        with open(path, "rb") as f:
            data = _tail_lines(f, last) if last else f.read().splitlines(keepends=True)
    except FileNotFoundError:
        return []
    out = []
    for raw in data:
        if not raw.endswith(b"\n"):
            continue  # torn final line: the append never completed
        if not raw.strip():
            continue  # a blank line holds no record
        try:
            rec = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            rec = None
        if not isinstance(rec, dict):
            raise UsageError(_corrupt_record(root, raw))
        if isinstance(rec, dict):
            fmt = rec.get("format", FORMAT)
            if not isinstance(fmt, int) or fmt > FORMAT:
                raise UsageError(f"results.jsonl has a record of format {fmt!r}, newer than this ratchet "
                                 f"understands ({FORMAT}); upgrade ratchet")
            out.append(rec)
    return out[-last:] if last else out

def _corrupt_record(root: str, raw: bytes) -> str:
    """The one line for a complete but unreadable record: which line and
    how to fix it. Never dropped silently: a record skipped is a decision
    (a keep, the incumbent's score) forgotten. Only a torn LAST line, an
    append a kill cut short, is repaired (`repair`)."""
    with open(file(root, "results"), "rb") as f:
        number = f.read().splitlines(keepends=True).index(raw) + 1
    shown = raw.decode("utf-8", "replace").strip()
    shown = shown if len(shown) <= 40 else shown[:39] + "…"
    return (f".ratchet/results.jsonl line {number} is not a JSON record ({shown!r}); the other lines are intact: "
            f"restore that line from a backup or delete it (one record is then forgotten), then run the "
            f"command again")


def _tail_lines(f, n: int) -> list:
    """The last `n` complete lines (plus a torn one, if any) of a binary file."""
    f.seek(0, os.SEEK_END)
    pos = f.tell()
    buf = b""
    while pos > 0 and buf.count(b"\n") <= n:
        step = min(1 << 16, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
    lines = buf.splitlines(keepends=True)
    return lines if pos == 0 else lines[1:]
