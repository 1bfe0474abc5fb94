"""Run one trial of the user's command and leave nothing of it behind.

The command runs through the shell in its own session (so its whole process
group can be signalled), with stdout and stderr streamed straight to files
(a command that prints gigabytes costs disk, not ratchet's memory), stdin
closed, and a marker in its environment. When the trial ends, for any reason,
its descendants and its group are killed and, on Linux, /proc is swept for
any process still carrying the marker. Descendants are found through /proc
parent links; ratchet makes itself a child subreaper (Linux prctl), so a
worker whose launcher already exited is re-parented to ratchet instead of
init and is still found. So launcher workers started in their own session
(torchrun, accelerate), double-forked daemons, and even a worker that also
dropped its environment are all caught. Whatever is still alive
after that is returned as `survivors` (pid, start time, command line).

`progress`, when given, is told the elapsed time every `progress.interval`
seconds while the command runs (the heartbeat) and `done()` when it ends.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Optional

MARKER = "RATCHET_TRIAL_ID"
_GRACE_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class TrialRun:
    exit_code: Optional[int]
    seconds: float
    timed_out: bool
    started: float
    survivors: tuple = ()
    marker: str = ""


def run(command: str, cwd: str, out_path: str, err_path: str,
        timeout: Optional[float] = None, env: Optional[dict] = None, progress=None) -> TrialRun:
    """Run `command` to completion or `timeout`; the tree is gone on return."""
    marker = uuid.uuid4().hex
    full_env = {**os.environ, **(env or {}), MARKER: marker}
    started = time.time()
    t0 = time.monotonic()
    deadline = None if timeout is None else t0 + timeout
    mine = _own_tree() if _become_subreaper() else None
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(command, shell=True, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True)
        timed_out, known = False, {}
        try:
            timed_out = not _wait(proc, t0, deadline, progress)
            if timed_out:
                # Remember the tree now: once the launcher dies its workers lose their parent link.
                known = {i["pid"]: i["start"] for i in map(process_info, descendants(proc.pid)) if i}
                for pid in known:
                    _signal(pid, signal.SIGTERM)
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:
            kill_tree(proc.pid, marker)
            proc.wait()
            raise
        finally:
            if progress is not None:
                progress.done()
        if mine is not None:  # orphans the trial left, re-parented to us
            known.update((pid, start) for pid, start in _own_tree().items() if mine.get(pid) != start)
        survivors = kill_tree(proc.pid, marker, known)
        proc.wait()
    return TrialRun(None if timed_out else proc.returncode, time.monotonic() - t0, timed_out, started,
                    tuple(survivors), marker)


def _wait(proc, t0: float, deadline: Optional[float], progress) -> bool:
    """Wait for `proc`, ticking `progress`; False when the deadline passed first."""
    while True:
        now = time.monotonic()
        remaining = None if deadline is None else deadline - now
        if remaining is not None and remaining <= 0:
            return False
        step = remaining
        if progress is not None:
            step = progress.interval if remaining is None else min(remaining, progress.interval)
        try:
            proc.wait(timeout=step)
            return True
        except subprocess.TimeoutExpired:
            if progress is not None and (deadline is None or time.monotonic() < deadline):
                progress.tick(time.monotonic() - t0)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_SUBREAPER = []


def _become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux; once)."""
    if not _SUBREAPER:
        ok = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                ok = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
            except (OSError, AttributeError):
                ok = False
        _SUBREAPER.append(ok)
    return _SUBREAPER[0]


def _own_tree() -> dict:
    """{pid: start time} of every live descendant of this process."""
    return {i["pid"]: i["start"] for i in map(process_info, descendants(os.getpid())) if i}


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(pgid: int, marker: str, known: Optional[dict] = None) -> list:
    """SIGKILL the trial's tree: descendants, process group, marked processes.

    `known` maps pids seen in the tree earlier to their start times; each is
    killed only if it is still that same process. Returns the processes still
    alive afterwards ([] expected) as dicts {pid, start, cmd} (`start` is the
    kernel's start time, which tells a survivor from a later process that
    reused its pid).
    """
    tree = descendants(pgid)
    for pid, start in (known or {}).items():
        info = process_info(pid)
        if info and info["start"] == start and pid not in tree and pid != pgid:
            tree.append(pid)  # pgid itself is the Popen child: Popen reaps it
    for pid in tree:
        _signal(pid, signal.SIGSTOP)  # frozen, they cannot fork new workers while we kill
    _signal_group(pgid, signal.SIGKILL)
    for pid in tree:
        _signal(pid, signal.SIGKILL)
    _reap(tree)
    left = []
    for _ in range(3):
        left = [pid for pid in set(find_marked(marker)) | {p for p in tree if _alive(p)}]
        if not left:
            _reap(tree)
            return []
        for pid in left:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.05)
    return [info for info in (process_info(pid) for pid in sorted(left)) if info is not None]


def _reap(pids) -> None:
    """Collect the exit status of killed processes that were re-parented to us."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            pass


def kill_pid(pid: int) -> None:
    """SIGKILL one process, ignoring one that is gone or not ours."""
    _signal(pid, signal.SIGKILL)


def wait_gone(pids, seconds: float = 1.0) -> None:
    """Wait up to `seconds` for every pid to exit (or become a zombie)."""
    end = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.02)


def descendants(root: int) -> list:
    """Pids of every live descendant of `root`, via /proc parent links ([] off Linux)."""
    children = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        stat = _stat_fields(name)
        if stat:
            children.setdefault(int(stat[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


def _stat_fields(pid) -> Optional[list]:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, ...]; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    stat = _stat_fields(pid)
    return stat is not None and stat[0] != b"Z"


def process_info(pid: int) -> Optional[dict]:
    """{pid, start, cmd} of a live (non-zombie) process, or None."""
    stat = _stat_fields(pid)
    if stat is None or stat[0] == b"Z":
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        cmd = ""
    return {"pid": pid, "start": int(stat[19]) if len(stat) > 19 else 0, "cmd": cmd[:200]}


def find_marked(marker: str) -> list:
    """Pids whose environment holds MARKER=marker (Linux /proc; [] elsewhere)."""
    needle = f"{MARKER}={marker}".encode()
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    if not _is_zombie(name):
                        found.append(int(name))
        except OSError:
            continue
    return found


def _is_zombie(pid: str) -> bool:
    stat = _stat_fields(pid)
    return stat is not None and stat[0] == b"Z"
