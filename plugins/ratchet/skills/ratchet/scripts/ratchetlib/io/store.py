"""Persistence under `.ratchet/`: the only module that writes state files.

The formats and every field are documented in FORMATS.md (format 1). Whole
files are replaced atomically (temp file in the same folder, fsync, rename,
fsync of the folder), so a kill at any instant leaves either the old or the
new version. `results.jsonl` is append-only; a torn last line (a kill in the
middle of an append) is ignored by readers and cut off by `repair()`; any
other unreadable line is refused with its line number (never skipped).
"""

import errno
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from typing import Optional

from ..core import faults, term
from . import seal
from ..core.errors import RatchetError, UsageError

FORMAT = 1
DIRNAME = ".ratchet"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def atomic_write(path: str, data: bytes) -> None:
    """Replace `path` with `data` so a reader never sees a partial file."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            faults.on_write(path, lambda: f.write(data[: len(data) // 2]))  # tests: a full disk part-way
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


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


def _parse(raw: bytes, path: str, what: str) -> dict:
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


def read_json(path: str, what: str) -> Optional[dict]:
    """Load a state file; None when absent, UsageError when unreadable."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    return _parse(raw, path, what)


# --- sealed files (seal.py): the run's contract ---------------------------------

def read_sealed(root: str, name: str) -> Optional[dict]:
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
    return seal.verify(root, name, raw, _parse(raw, path, name))


def write_sealed(root: str, name: str, obj: dict) -> None:
    """The only writer of a sealed file: atomic, the seal inside (see seal.py)."""
    if name == "config.json" and seal.read_key(obj["run_id"]) is None:
        seal.make_key(obj["run_id"])  # a new run (init, chain)
    run_id, key = seal.key_for(root, name, obj)
    data = seal.dump(obj, name, run_id, key)
    atomic_write(os.path.join(root, name), data)
    seal.remember(root, name, data)


def put_back(root: str, names: list) -> None:
    """Rewrite sealed files `names` with the bytes this process last wrote or
    verified (they carry a valid seal), or remove one that was absent then."""
    for name in names:
        _, data = seal.known(root, name)
        if data is None:
            try:
                os.unlink(os.path.join(root, name))
            except FileNotFoundError:
                pass
        else:
            atomic_write(os.path.join(root, name), data)


def adopt(root: str) -> Optional[str]:
    """Seal a run started before sealing existed, as its files are now: the
    key is made first (marked `adopting`, so a kill part-way is finished by
    the next command), then every sealed file is rewritten with its seal,
    state.json noting the last record written before (`sealed_after`:
    unsealed records up to it are the run's own). Returns the line to
    announce, or None when there was nothing to do."""
    run_id, sealed = seal.run_of(root)
    if not run_id or not os.path.exists(os.path.join(root, "config.json")):
        return None
    key = seal.read_key(run_id)
    if key is not None and not seal.adopting(run_id):
        return None  # sealed (or, without config's seal, tampered: read_sealed says so)
    if key is None:
        if sealed:
            return None  # a sealed run whose key is missing: read_sealed says so
        key = seal.make_key(run_id, adopting_run=True)
    done = []
    for name in seal.SEALED:
        obj = read_sealed(root, name)
        if obj is None:
            continue
        if name == "state.json" and "sealed_after" not in obj:
            last = Store.records_in(root, last=1)
            obj = {**obj, "sealed_after": last[-1].get("iter") if last else None}
            if not os.path.exists(os.path.join(root, "harness.json")):
                obj["unpinned"] = True  # started before harness pinning existed: no harness.json to require
        write_sealed(root, name, obj)
        done.append(name)
        faults.point("seal-adopt")
    seal.finish_adoption(run_id, key)
    return (f"sealed this run's contract ({', '.join(done)}) as it is now: the run started before ratchet "
            f"sealed runs, so a change made before now cannot be detected; the key is {seal.key_path(run_id)}")


def seal_problems(root: str) -> list:
    """One line per sealed file that does not verify now (for `reseal`)."""
    out = []
    for name in seal.SEALED:
        try:
            read_sealed(root, name)
        except UsageError as e:
            out.append(str(e).split(";")[0])
    return out


def trust(root: str) -> list:
    """`reseal`, after a person confirmed it: seal every sealed file as it is
    now (a missing or damaged key is replaced by a new one); records written
    so far count as the run's own. Returns the names sealed."""
    run_id = seal.run_of(root)[0]
    seal.key_path(run_id)  # refuses a run id ratchet never made
    try:
        key = seal.read_key(run_id)
    except seal.SealError:
        key = None
    if key is None:
        seal.replace_key(run_id)
    done = []
    for name in seal.SEALED:
        path = os.path.join(root, name)
        try:
            with open(path, "rb") as f:
                obj = _parse(f.read(), path, name)
        except FileNotFoundError:
            continue
        if name == "state.json":
            last = Store.records_in(root, last=1)
            obj = {**obj, "sealed_after": last[-1].get("iter") if last else None}
        write_sealed(root, name, obj)
        done.append(name)
    return done


class Store:
    """The `.ratchet/` folder of one repository."""

    def __init__(self, repo: str):
        self.repo = repo
        self.root = os.path.join(repo, DIRNAME)
        self.taken_over = None  # the lock body of a killed command whose lock this one took over

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def exists(self) -> bool:
        return os.path.exists(self.path("config.json"))

    def set_aside(self, name: str) -> str:
        """Rename an unreadable state file to NAME.corrupt-TIME (kept, never
        deleted); the new path, relative to the repository."""
        dest = self.path(f"{name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.path(name), dest)
        return os.path.relpath(dest, self.repo)

    def ensure_dirs(self) -> None:
        for sub in ("reports", "patches"):
            os.makedirs(self.path(sub), exist_ok=True)

    # --- whole-file state -------------------------------------------------
    def read_config(self) -> Optional[dict]:
        return read_sealed(self.root, "config.json")

    def write_config(self, cfg: dict) -> None:
        write_sealed(self.root, "config.json", cfg)

    def read_state(self) -> Optional[dict]:
        return read_sealed(self.root, "state.json")

    def write_state(self, state: dict) -> None:
        write_sealed(self.root, "state.json", {"format": FORMAT, **state, "updated": now_iso()})

    def read_current(self) -> Optional[dict]:
        return read_sealed(self.root, "current.json")

    def write_current(self, cur: dict) -> None:
        write_sealed(self.root, "current.json", {"format": FORMAT, **cur})

    def clear_current(self) -> None:
        try:
            os.unlink(self.path("current.json"))
        except FileNotFoundError:
            pass
        seal.remember(self.root, "current.json", None)

    # --- records ----------------------------------------------------------
    def append_record(self, record: dict) -> None:
        """Append one complete line and fsync it before returning."""
        run_id, key = seal.key_for(self.root, seal.RECORDS)
        line = seal.record_line({"format": FORMAT, **record}, run_id, key)
        fd = os.open(self.path("results.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            faults.on_write(self.path("results.jsonl"), lambda: os.write(fd, line[: len(line) // 2]))
            faults.point("record-torn", lambda: os.write(fd, line[: len(line) // 2]))
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self, last: Optional[int] = None) -> list:
        """Finished records, oldest first; `last` reads only the file's tail.
        A record of a newer format than FORMAT is refused (UsageError), as
        read_json refuses a state file: guessing at it could mislead a decision.
        Each keeps its `seal` (see `record_trusted`)."""
        return Store.records_in(self.root, last)

    def record_trusted(self, rec: dict) -> bool:
        """Whether `rec` (from `records`) was written by this run's ratchet:
        its seal verifies, or the run is not sealed, or it predates the
        sealing of a run adopted from before seals (state `sealed_after`)."""
        run_id, key = seal.key_for(self.root, seal.RECORDS)
        if key is None or seal.record_verifies(rec, run_id, key):
            return True
        after = (self.read_state() or {}).get("sealed_after")
        return seal.FIELD not in rec and isinstance(after, int) and isinstance(rec.get("iter"), int) \
            and rec["iter"] <= after

    @staticmethod
    def records_in(root: str, last: Optional[int] = None) -> list:
        path = os.path.join(root, "results.jsonl")
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
                raise UsageError(Store._corrupt_record(root, raw))
            if isinstance(rec, dict):
                fmt = rec.get("format", FORMAT)
                if not isinstance(fmt, int) or fmt > FORMAT:
                    raise UsageError(f"results.jsonl has a record of format {fmt!r}, newer than this ratchet "
                                     f"understands ({FORMAT}); upgrade ratchet")
                out.append(rec)
        return out[-last:] if last else out

    @staticmethod
    def _corrupt_record(root: str, raw: bytes) -> str:
        """The one line for a complete but unreadable record: which line and
        how to fix it. Never dropped silently: a record skipped is a decision
        (a keep, the incumbent's score) forgotten. Only a torn LAST line, an
        append a kill cut short, is repaired (`repair`)."""
        with open(os.path.join(root, "results.jsonl"), "rb") as f:
            number = f.read().splitlines(keepends=True).index(raw) + 1
        shown = raw.decode("utf-8", "replace").strip()
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        return (f".ratchet/results.jsonl line {number} is not a JSON record ({shown!r}); the other lines are intact: "
                f"restore that line from a backup or delete it (one record is then forgotten), then run the "
                f"command again")

    def repair(self) -> Optional[str]:
        """Cut a torn final line off results.jsonl; say what was done."""
        path = self.path("results.jsonl")
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
    def archive(self) -> Optional[str]:
        """Move the current run's files to runs/<run-id>/; return that id."""
        if not self.exists():
            return None
        run_id = seal.run_of(self.root)[0]  # a corrupt, too new or unsealed config is archived all the same
        if not seal.valid_run_id(run_id) or os.path.exists(self.path("runs", run_id)):
            run_id = time.strftime("%Y%m%d-%H%M%S")
        dest = self.path("runs", run_id)
        os.makedirs(dest, exist_ok=False)
        for name in os.listdir(self.root):
            if name in ("runs", "lock", "UNCLEAN"):  # UNCLEAN guards the machine, not one run
                continue
            shutil.move(self.path(name), os.path.join(dest, name))
        seal.forget(self.root)
        return run_id

    # --- headless loop (loop.json, agents/) -----------------------------------
    def read_loop(self) -> Optional[dict]:
        return read_sealed(self.root, "loop.json")

    def write_loop(self, loop: dict) -> None:
        write_sealed(self.root, "loop.json", {"format": FORMAT, **loop, "updated": now_iso()})

    def agent_path(self, iteration: int, ext: str, slot: Optional[int] = None) -> str:
        """`agents/iter-NNNN[-slot-K].EXT`: an agent call's prompt and output."""
        os.makedirs(self.path("agents"), exist_ok=True)
        name = f"iter-{iteration:04d}" + (f"-slot-{slot}" if slot else "")
        return self.path("agents", f"{name}.{ext}")

    def report_path(self, iteration: int, trial: int, ext: str = "txt") -> str:
        return self.path("reports", f"iter-{iteration:04d}-trial-{trial:02d}.{ext}")

    def patch_path(self, iteration: int) -> str:
        return self.path("patches", f"iter-{iteration:04d}.patch")


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


class Lock:
    """An exclusive lock on the repository's `.ratchet/` for one command.

    Created with O_EXCL; a lock whose pid no longer runs on this host is
    stale (its holder was killed) and is taken over: its body (pid, start
    time, verb) is left in `store.taken_over` for `recover.recover`, which
    kills what the dead command left running.
    """

    def __init__(self, store: Store, verb: str):
        self.store = store
        self.path = store.path("lock")
        self.verb = verb

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": now_iso(),
                           "verb": self.verb, "pid_start": pid_start(os.getpid())}).encode()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder and _alive(holder):
                    raise UsageError(
                        f"another ratchet command (`{holder.get('verb') or 'ratchet'}`, pid {holder.get('pid')}) is working "
                        f"on this repository; wait for it, or stop it first")
                self.store.taken_over = holder
                if holder:  # announced: a command was killed while it held the lock
                    sys.stderr.write(term.printable(f"ratchet: recovered: took over the lock of a killed "
                                                    f"`{holder.get('verb') or 'ratchet'}` (pid {holder.get('pid')})",
                                                    multiline=False) + "\n")
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            except PermissionError:
                raise UsageError(f"cannot write {os.path.dirname(self.path)}: permission denied; make it writable"
                                 + _owner_hint(os.path.dirname(self.path))) from None
            except OSError as e:
                if e.errno == errno.EROFS:
                    raise UsageError(f"cannot write {os.path.dirname(self.path)}: read-only file system; run ratchet "
                                     f"on a writable copy of the repository") from None
                raise
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            return self
        raise RatchetError("could not take the ratchet lock; retry")

    def holder(self) -> Optional[dict]:
        """The lock file's body ({} when unreadable, None when there is no lock)."""
        try:
            with open(self.path, "rb") as f:
                obj = json.loads(f.read() or b"{}")
            return obj if isinstance(obj, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        return False


def _owner_hint(path: str) -> str:
    """` (it belongs to uid N, not to you: ...)` when another user owns `path`."""
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    if uid == os.geteuid():
        return ""
    return f" (it belongs to uid {uid}, not to this user: run ratchet as that user, or chown it)"


def _alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") not in (None, socket.gethostname()):
        return holder.get("host") not in (None, socket.gethostname())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = holder.get("pid_start")  # a pid reused by another process (after a reboot) is not the holder
    return start is None or pid_start(pid) in (None, start)


def pid_start(pid: int) -> Optional[int]:
    """The kernel's start time of `pid` (Linux /proc), None elsewhere or when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
