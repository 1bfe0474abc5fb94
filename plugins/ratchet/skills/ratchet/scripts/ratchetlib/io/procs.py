"""Finding and ending processes one by one: by pid, or by the trial marker
(RATCHET_TRIAL_ID) every trial's processes carry in their environment. The
trial's own tree is ended by its keeper (runner.py, keeper.py); these are
for what is found later: leftovers of a killed command (leftovers.py),
UNCLEAN's survivors, a killed loop's agents. Linux /proc; off Linux the
searches find nothing."""

from __future__ import annotations

import os
import select
import signal
import time

from . import keeper

MARKER = keeper.MARKER  # the keeper sets it, so it owns the name


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_pid(pid: int) -> None:
    """SIGKILL one process, ignoring one that is gone or not ours."""
    signal_pid(pid, signal.SIGKILL)


def wait_gone(pids, seconds: float = 1.0) -> None:
    """Wait up to `seconds` for every pid to exit (or become a zombie)."""
    end = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.02)


def alive(pid: int) -> bool:
    stat = keeper.stat_fields(pid)
    return stat is not None and stat[0] != b"Z"


def argv_of(pid: int) -> list:
    """A process's command line as its words ([] when gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [w.decode("utf-8", "replace") for w in f.read().split(b"\0") if w]
    except OSError:
        return []


def process_info(pid: int) -> dict | None:
    """{pid, start, cmd} of a live (non-zombie) process, or None."""
    stat = keeper.stat_fields(pid)
    if stat is None or stat[0] == b"Z":
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        cmd = ""
    return {"pid": pid, "start": int(stat[19]) if len(stat) > 19 else 0, "cmd": cmd[:200]}


def kill_marked(markers) -> int:
    """Kill every process bearing one of `markers` (a tree whose session
    leader is gone, e.g. after the loop itself was SIGKILLed); how many."""
    markers = [m for m in markers if m]
    found = keeper.freeze_kill(lambda: [pid for m in markers for pid in find_marked(m)],
                               send=lambda pid, sig: signal_pid(pid, sig)) if markers else {}
    return len(found)


def find_marked(marker: str, prefix: bool = False, among=None) -> list:
    """Pids whose environment holds MARKER=marker, or a marker starting with
    `marker` when `prefix` (Linux /proc; [] elsewhere).

    `among`: only these pids are read (a trial's sweep passes the processes
    started since its shell: no other can carry a marker first given to it).
    Each environment read is an open of /proc: on a desktop with hundreds of
    processes, most of a trial's sweep (issue 18)."""
    needle = f"{MARKER}={marker}".encode()
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc") if among is None else [str(p) for p in among]
    except OSError:
        return found
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
                if (any(e.startswith(needle) for e in env) if prefix else needle in env):
                    if not is_zombie(name):
                        found.append(pid)
        except OSError:
            continue
    return found


def is_zombie(pid: str) -> bool:
    stat = keeper.stat_fields(pid)
    return stat is not None and stat[0] == b"Z"


def ancestors() -> list:
    """Pids of this process and its ancestors: where orphans go when it dies."""
    out, pid = [], os.getpid()
    while pid > 1 and len(out) < 64:
        out.append(pid)
        stat = keeper.stat_fields(pid)
        pid = int(stat[1]) if stat else 0
    return out


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def sleep_until_exit(pid: int, seconds: float) -> bool:
    """Sleep until child `pid` exits, woken by the exit itself (a pidfd,
    Linux 5.3+) rather than by polling, which sleeps 1, 2, 4 ... ms between
    looks (~3 ms a trial, issue 18); elsewhere 2 ms. False: time is up."""
    if seconds <= 0:
        return False
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # another system, or already reaped
        time.sleep(min(seconds, 0.002))
        return True
    try:
        return bool(select.select([fd], [], [], seconds)[0])
    finally:
        os.close(fd)
