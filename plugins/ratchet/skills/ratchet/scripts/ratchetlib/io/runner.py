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

A ratchet command that is itself SIGKILLed cannot do any of that. So every
marker begins with the command's pid and kernel start time (`new_marker`),
the two facts the repository lock records: the next command, taking over
the dead holder's lock, kills whatever still bears its prefix (`kill_left_by`).

`progress`, when given, is told the elapsed time every `progress.interval`
seconds while the command runs (the heartbeat) and `done()` when it ends.

The same hygiene serves the headless loop's agent process (`Child`, with the
prompt on stdin); several Children may run at once (`loop --parallel`), and
each is told apart by its own marker. A trial on another machine (`srun`,
`sbatch --wait`, `ray job submit`, `sky exec`) leaves a remote job behind
when its local process is killed, so a `cancel_command` runs when a trial
times out or is interrupted, with the trial's id and output paths in its
environment (see `cancel_env`).
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Optional

from ..core import faults
from . import store_files
from .store_lock import pid_start

MARKER = "RATCHET_TRIAL_ID"
_GRACE_SECONDS = 2.0
CANCEL_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class TrialRun:
    exit_code: Optional[int]
    seconds: float
    timed_out: bool
    started: float
    survivors: tuple = ()   # processes alive after the kill: {pid, start, cmd} each
    marker: str = ""
    cancel: Optional[dict] = None  # {"exit_code", "seconds"} when the cancel command ran


def run(command: str, cwd: str, out_path: str, err_path: Optional[str],
        timeout: Optional[float] = None, env: Optional[dict] = None, progress=None, *,
        stdin_path: Optional[str] = None, marker: Optional[str] = None,
        cancel_command: Optional[str] = None, cancel_log: Optional[str] = None) -> TrialRun:
    """Run `command` to completion or `timeout`; the tree is gone on return."""
    child = Child(command, cwd, out_path, err_path, env, stdin_path, marker)
    faults.point("trial")
    return child.finish(timeout, cancel_command, cancel_log, progress)


def marker_prefix(pid: int, start: Optional[int]) -> str:
    """What every marker of the command (pid, kernel start time) begins with."""
    return f"{pid}.{start or 0}."


def new_marker() -> str:
    """A fresh marker of this command: its prefix, then a random part."""
    return marker_prefix(os.getpid(), pid_start(os.getpid())) + uuid.uuid4().hex


def kill_left_by(pid: int, start: Optional[int]) -> tuple:
    """Kill every process a killed command (pid, start time) started and
    left running: ([killed], [survivors]) as process_info dicts."""
    found = [i for i in map(process_info, find_marked(marker_prefix(pid, start), prefix=True)) if i]
    for info in found:
        _signal(info["pid"], signal.SIGSTOP)  # frozen, they cannot fork while the others die
    for info in found:
        _signal(info["pid"], signal.SIGKILL)
    wait_gone([i["pid"] for i in found])
    left = [i for i in found if (process_info(i["pid"]) or {}).get("start") == i["start"]]
    return found, left


def cancel_env(marker: str, out_path: str, err_path: Optional[str]) -> dict:
    """What a cancel command is told about the trial it cancels."""
    return {MARKER: marker, "RATCHET_TRIAL_STDOUT": os.path.abspath(out_path),
            "RATCHET_TRIAL_STDERR": os.path.abspath(err_path or out_path)}


_LIVE = []  # Children started and not yet killed (orphans are attributed among them)


class Child:
    """One command started in its own session; `finish` or `kill` ends it.

    stdout and stderr go to files (stderr joins stdout when `err_path` is
    None), stdin is `stdin_path` or closed. Several children may run at once
    (the headless loop's parallel agents); each is tracked by its own marker,
    and an orphan re-parented to ratchet is killed with a child only when it
    is not in another live child's tree, session or process group and bears
    no other child's marker (an orphan that left its session AND dropped its
    environment cannot be told apart: the first child to end kills it).
    """

    def __init__(self, command: str, cwd: str, out_path: str, err_path: Optional[str] = None,
                 env: Optional[dict] = None, stdin_path: Optional[str] = None, marker: Optional[str] = None):
        self.marker = marker or new_marker()
        self.cwd, self.out_path, self.err_path = cwd, out_path, err_path
        full_env = {**os.environ, **(env or {}), MARKER: self.marker}
        self._mine = _own_tree() if _become_subreaper() else None
        self.started = time.time()
        self._t0 = time.monotonic()
        with store_files.capture(out_path) as out, store_files.capture(err_path) if err_path else _nothing() as err, \
                open(stdin_path, "rb") if stdin_path else _nothing() as stdin:
            self.proc = subprocess.Popen(command, shell=True, cwd=cwd, env=full_env,
                                         stdin=stdin if stdin_path else subprocess.DEVNULL, stdout=out,
                                         stderr=err if err_path else subprocess.STDOUT, start_new_session=True)
        _LIVE.append(self)

    def finish(self, timeout: Optional[float] = None, cancel_command: Optional[str] = None,
               cancel_log: Optional[str] = None, progress=None) -> TrialRun:
        """Wait up to `timeout` seconds from now (ticking `progress`), then kill
        whatever is left of the tree.

        On a timeout the tree gets SIGTERM and a short grace, then the cancel
        command (if any) runs, then the tree is killed: descendants, group,
        orphans re-parented to ratchet, everything bearing the marker. An
        exception while waiting (Ctrl-C, SIGTERM) runs the cancel command
        too, kills the tree and propagates.
        """
        proc, timed_out, cancel, known = self.proc, False, None, {}
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)  # from now: see loop --parallel
        try:
            timed_out = not _wait(proc, self._t0, deadline, progress)
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
                if cancel_command:
                    cancel = self._cancel(cancel_command, cancel_log)
        except BaseException:
            try:
                if cancel_command:
                    self._cancel(cancel_command, cancel_log)
            finally:
                self.kill(known)
            raise
        finally:
            if progress is not None:
                progress.done()
        survivors = self.kill(known)
        return TrialRun(None if timed_out else proc.returncode, time.monotonic() - self._t0, timed_out,
                        self.started, tuple(survivors), self.marker, cancel)

    def kill(self, known: Optional[dict] = None) -> list:
        """SIGKILL the whole tree now; the survivors ([] expected, see kill_tree)."""
        known = dict(known or {})
        if self._mine is not None:  # orphans the child left, re-parented to us
            others = [c for c in _LIVE if c is not self and c.marker != self.marker]
            theirs, leaders = set(), {c.proc.pid for c in others}
            for c in others:
                theirs |= {c.proc.pid, *descendants(c.proc.pid), *find_marked(c.marker)}
            known.update((pid, start) for pid, start in _own_tree().items()
                         if self._mine.get(pid) != start and pid not in theirs and not _in_session(pid, leaders))
        try:
            survivors = kill_tree(self.proc.pid, self.marker, known)
            self.proc.wait()
        finally:
            if self in _LIVE:
                _LIVE.remove(self)
        return survivors

    def _cancel(self, command: str, log: Optional[str]) -> dict:
        """Run the cancel command with the trial's id; it carries the same
        marker, so whatever it leaves is swept with the trial's tree."""
        log = log or os.devnull
        r = Child(command, self.cwd, log, None, cancel_env(self.marker, self.out_path, self.err_path),
                  marker=self.marker).finish(CANCEL_TIMEOUT_SECONDS)
        return {"exit_code": r.exit_code, "seconds": round(r.seconds, 4)}


class _nothing:
    """A context manager standing in for a file that is not opened."""

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _wait(proc, t0: float, deadline: Optional[float], progress) -> bool:
    """Wait for `proc`, ticking `progress`; False when the deadline passed first."""
    while True:
        now = time.monotonic()
        remaining = None if deadline is None else deadline - now
        if remaining is not None and remaining <= 0:
            return proc.poll() is not None  # a child that already exited is never a timeout
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


def _in_session(pid: int, leaders: set) -> bool:
    """Whether `pid` is in the process group or session of one of `leaders`
    (each Child starts its own session, so this tells whose an orphan is)."""
    stat = _stat_fields(pid) if leaders else None
    return bool(stat and len(stat) > 3 and (int(stat[2]) in leaders or int(stat[3]) in leaders))


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


def kill_marked(markers) -> int:
    """Kill every process bearing one of `markers` (a tree whose session
    leader is gone, e.g. after the loop itself was SIGKILLed); how many."""
    found = [pid for m in markers if m for pid in find_marked(m)]
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(found)


def find_marked(marker: str, prefix: bool = False) -> list:
    """Pids whose environment holds MARKER=marker, or a marker starting with
    `marker` when `prefix` (Linux /proc; [] elsewhere)."""
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
                env = f.read().split(b"\0")
                if (any(e.startswith(needle) for e in env) if prefix else needle in env):
                    if not _is_zombie(name):
                        found.append(int(name))
        except OSError:
            continue
    return found


def _is_zombie(pid: str) -> bool:
    stat = _stat_fields(pid)
    return stat is not None and stat[0] == b"Z"
