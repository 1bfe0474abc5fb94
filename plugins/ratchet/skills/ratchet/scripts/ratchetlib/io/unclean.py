"""The UNCLEAN marker: no trial runs while an earlier trial's processes live.

`runner` kills a trial's whole tree; a process can still survive (stuck in
uninterruptible sleep on a GPU driver or a network filesystem, or owned by
another user after a sudo). It would hold the GPU or the CPU and skew every
later measurement, so ratchet writes `.ratchet/UNCLEAN` (FORMATS.md) and
refuses to start another trial until `ratchet.py clean` has killed them again
and found none left. The marker is not archived with a run: it guards the
machine, not one run.
"""

import json
import os

from . import procs, runner
from ..core.errors import RatchetError, UsageError
from . import store_files
from .store import Store, now_iso, read_json
from .store_lock import Lock

NAME = "UNCLEAN"


def path(store: Store) -> str:
    return store.file("unclean")


def _pids(procs) -> str:
    shown = ", ".join(str(p.get("pid") or p.get("job")) for p in procs[:6])
    return shown + (f" and {len(procs) - 6} more" if len(procs) > 6 else "")


CORRUPT = {"corrupt": True}  # what `load` returns for a marker it cannot read


def load(store: Store):
    """The marker: None when there is none, CORRUPT when it cannot be read (a
    torn write, a stray edit); UsageError when a newer ratchet wrote it. A
    corrupt marker still blocks trials: which processes survived is unknown."""
    try:
        with open(path(store), "rb") as f:
            obj = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        return CORRUPT
    if not isinstance(obj, dict):
        return CORRUPT
    return read_json(path(store), NAME)  # the format check


def _corrupt_message() -> str:
    return (".ratchet/UNCLEAN (written when an earlier trial's processes survived the kill) is unreadable, so "
            "which processes is unknown; no trial runs until it is cleared: check for leftover trial processes "
            "(ps), then run `ratchet.py clean`, which sets it aside")


def _shown(procs) -> str:
    """pid (command) of the first few, for a one-line message."""
    more = f" and {len(procs) - 3} more" if len(procs) > 3 else ""
    return "; ".join(f"{p['pid']} ({(p.get('cmd') or '?')[:60]})" for p in procs[:3]) + more


def suspects_line(suspects: list) -> str:
    """The one line that tells of processes that may be a killed trial's but are not provably so."""
    return (f"{len(suspects)} process(es) started during the killed trial may be its but are not provably so, "
            f"so they were left running and recorded in .ratchet/UNCLEAN: {_shown(suspects)}; check them (ps), "
            f"stop the trial's, then run `ratchet.py clean` (it never kills these)")


def refuse_if_marked(store: Store) -> None:
    """UsageError when the marker exists: trials are blocked until `clean`."""
    marker = load(store)
    if marker is None:
        return
    if marker is CORRUPT:
        raise UsageError(_corrupt_message())
    if not marker.get("processes") and marker.get("suspects"):
        raise UsageError(f"processes that may be an earlier trial's are recorded in .ratchet/UNCLEAN "
                         f"({_shown(marker['suspects'])}); no trial runs until you have checked them: stop the "
                         f"trial's, then run `ratchet.py clean`")
    raise UsageError(f"processes of an earlier trial survived the kill (pid {_pids(marker.get('processes') or [])}); "
                     f"no trial runs until they are gone: stop them, then run `ratchet.py clean`")


def mark(store: Store, tr: "runner.TrialRun", iteration: int, trial: int) -> None:
    """Write the marker for a trial whose processes survived, then fail the command."""
    store_files.write_doc(store.root, "unclean", {"format": 1, "marker": tr.marker, "processes": list(tr.survivors),
                                                  "iter": iteration, "trial": trial, "created": now_iso()})
    jobs = all(p.get("job") for p in tr.survivors)
    what = "job(s) are still listed after the cancel (job" if jobs else "process(es) survived the kill (pid"
    raise RatchetError(f"trial {trial} of iteration {iteration}: {len(tr.survivors)} {what} "
                       f"{_pids(list(tr.survivors))}); this measurement is void and trials are blocked: "
                       f"stop them, then run `ratchet.py clean`")


def write(store: Store, source: str, processes: list, suspects: list = ()) -> None:
    """The marker for processes a killed command left that survived recovery's kill
    (`processes`), or that may be its but are not provably so (`suspects`, never killed)."""
    store_files.write_doc(store.root, "unclean", {"format": 1, "marker": None, "processes": processes,
                                                  "suspects": list(suspects), "source": source, "created": now_iso()})


def still_running(marker: dict, key: str = "processes") -> list:
    """The marker's processes (or `suspects`) that still live: same pid and start
    time, or (processes) the trial's env marker."""
    found = {}
    for p in marker.get(key) or []:
        info = procs.process_info(p.get("pid")) if isinstance(p.get("pid"), int) else None
        if info and info["start"] == p.get("start"):
            found[info["pid"]] = info
    for pid in procs.find_marked(marker.get("marker") or "-") if key == "processes" else ():
        info = procs.process_info(pid)
        if info:
            found[pid] = info
    from . import executor  # remote jobs (slurm, ray) that a cancel did not end
    return [found[pid] for pid in sorted(found)] + executor.still_listed(marker.get("processes") or [])


def clean(repo: str):
    """`ratchet.py clean`: kill what is left, re-check, clear the marker.

    Returns (killed, spared): the processes it killed and the suspects still
    running that it left alone, or None when there is no marker (then
    nothing changes). UsageError, marker kept, when some still live. Suspects
    (not provably a trial's) are never killed: running `clean` after being
    told of them is the user's word that they were checked.
    """
    store = Store(repo)
    if not os.path.exists(path(store)):
        return None
    with Lock(store, "clean"):
        marker = load(store) or {}
        left = still_running(marker)
        for p in left:
            if isinstance(p.get("pid"), int):
                procs.kill_pid(p["pid"])
        if left:
            from . import executor
            executor.cancel_entries(left)
            procs.wait_gone([p["pid"] for p in left if isinstance(p.get("pid"), int)])
        alive = still_running(marker)
        if alive:
            shown = "; ".join(f"{p.get('pid') or p.get('job')} ({p['cmd'][:60] or '?'})" for p in alive[:4])
            raise UsageError(f"still running after SIGKILL: {shown}; they may be stuck in the kernel or owned by "
                             f"another user: end them (sudo kill -9 PID, or reboot), then run `ratchet.py clean` again")
        spared = still_running(marker, "suspects")
        store_files.remove(store.root, "unclean")
    return left, spared


def set_aside_if_corrupt(repo: str):
    """`clean` on an unreadable marker: rename it to UNCLEAN.corrupt-TIME
    (kept, never deleted) and say so, since its processes cannot be checked;
    None when the marker is readable or absent (then `clean` does the work)."""
    store = Store(repo)
    if load(store) is not CORRUPT:
        return None
    with Lock(store, "clean"):
        if load(store) is not CORRUPT:
            return None
        moved = store.set_aside(NAME)
    return (f".ratchet/UNCLEAN was unreadable: set aside as {moved}; the processes it named could not be "
            f"checked, so look for leftover trial processes (ps) before trusting a measurement; trials may run again")
