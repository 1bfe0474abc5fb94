"""A process tree as /proc shows it, and the sweep that ends one.

The readers (`stat_fields`, `table`, `descendants`, `walk`) find a trial's
processes through parent links and kernel start times; the sweep
(`freeze_kill`) SIGSTOPs every process found, waits until each is stopped,
scans again, repeats until a scan finds nothing new, then SIGKILLs them all.
A stopped process cannot fork, so a daemon that re-forks continuously cannot
outrun it. Used by ratchet (runner, leftovers) and by the forked keeper
(keeper.py), so: standard library only, no import of the rest of
ratchetlib, `_signal` (plain int constants) rather than `signal`, and
nothing but system calls on the way.
"""

import os
import time

try:
    import _signal as signal  # CPython: what `signal` wraps, without its enums
except ImportError:  # another interpreter
    import signal


# --- /proc ------------------------------------------------------------------

def stat_fields(pid) -> list:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, session, tty_nr, ...]; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_of(pid) -> int:
    """The kernel start time (clock ticks after boot) of `pid`, None if gone."""
    stat = stat_fields(pid)
    try:
        return int(stat[19]) if stat else None
    except (IndexError, ValueError):
        return None


def pid_mark() -> tuple | None:
    """(last pid handed out, tasks forked since boot, live tasks: threads too hold pids); None off Linux."""
    try:
        with open("/proc/loadavg", "rb") as f:
            fields = f.read().split()
        with open("/proc/stat", "rb") as f:
            forks = next(int(line.split()[1]) for line in f if line.startswith(b"processes "))
        return int(fields[4]), forks, int(fields[3].split(b"/")[1])
    except (OSError, IndexError, ValueError, StopIteration):
        return None


_PID_MAX = []


def table(since: tuple | None = None) -> dict:
    """{pid: stat fields} of every process now (empty off Linux); with `since` (a `pid_mark()`), of
    those made after it only: pids are handed out in order, wrapping at pid_max, so theirs come after
    its pid, up to the last one (issue 18: a sweep reads its trial's few, not a desktop's hundreds).
    Should the pids since (forks, and live tasks' pids skipped) reach half a lap, all are read."""
    try:
        names = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return {}
    now = pid_mark() if since else None
    if now is not None:
        (first, forks0, _), (last, forks, tasks) = since, now
        if not _PID_MAX:
            with open("/proc/sys/kernel/pid_max", "rb") as f:
                _PID_MAX.append(int(f.read()))
        if forks - forks0 + tasks < _PID_MAX[0] // 2:
            names = [p for p in names if (first < p <= last if first <= last else p > first or p <= last)]
    out = {}
    for pid in names:
        stat = stat_fields(pid)
        if stat and len(stat) > 19:
            out[pid] = stat
    return out


def descendants(root: int, procs: dict = None) -> list:
    """Pids of every descendant of `root` (zombies included), via parent links."""
    children = {}
    for pid, stat in (table() if procs is None else procs).items():
        children.setdefault(int(stat[1]), []).append(pid)
    out, todo, seen = [], [root], {root}
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                out.append(child)
                todo.append(child)
    return out


def walk(root: int):
    """Yield the descendants of `root`, parents first, from the kernel's
    per-task children lists (/proc/PID/task/TID/children): reading the tree
    costs its own size, not a scan of every process, which is what lets a
    sweep stop a re-forker's current generation before it forks again.
    Falls back to `descendants` when those lists are missing."""
    try:
        os.listdir(f"/proc/{root}/task")
        if not os.path.exists(f"/proc/{root}/task/{root}/children"):
            raise OSError
    except OSError:
        yield from descendants(root)
        return
    todo, seen = [root], {root}
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                    kids = [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
            for child in kids:
                if child not in seen:
                    seen.add(child)
                    yield child
                    todo.append(child)


# --- the sweep ----------------------------------------------------------------

def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _settled(pid: int, start: int) -> bool:
    """Stopped, dead, a zombie, or no longer the same process."""
    stat = stat_fields(pid)
    return stat is None or stat[0] in (b"T", b"t", b"Z", b"X") or start_of(pid) != start


def freeze_kill(find, send=_send, seconds: float = 5.0) -> dict:
    """Stop, rescan, then kill everything `find()` (an iterable of pids) yields.

    Each pid is SIGSTOPped the moment `find` yields it (so a lazy `find`,
    such as `walk`, stops a parent before its children are read), together
    with its whole process group (fork keeps the group, so a re-forker's
    next generation is stopped with it even under a pid not seen yet; never
    this process's own group; only groups of processes found, so only the
    trial's: a group never spans sessions). After the SIGKILLs, a group none
    of whose found members survived is killed whole, so a member stopped but
    never seen dies too. Each round then waits until all found so far
    are stopped; only a scan made after that which finds nothing new ends the
    rounds, so no process of the tree was running when the last scan ran and
    none can have forked since. Then every one gets SIGKILL (a stopped process
    dies of it) and this process's own children among them are reaped.
    `seconds` bounds the rounds (a process stuck in the kernel never stops).
    Returns {pid: start time} of every process found.
    """
    me, mine, found, groups = os.getpid(), os.getpgrp(), {}, set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        new = False
        for pid in find():
            if pid in found or pid == me:
                continue
            send(pid, signal.SIGSTOP)
            stat = stat_fields(pid)
            if not stat or len(stat) < 20:
                continue
            found[pid], new = int(stat[19]), True
            group = int(stat[2])
            if group not in groups and group not in (mine, 0, 1):
                groups.add(group)
                send(-group, signal.SIGSTOP)
        if not new:
            break
        while time.monotonic() < end and not all(_settled(p, s) for p, s in found.items()):
            time.sleep(0.001)
    for pid, start in found.items():
        if start_of(pid) == start:
            send(pid, signal.SIGKILL)
    _until(lambda: not living(found), 1.0)
    left = {int(stat_fields(p)[2]) for p in living(found) if stat_fields(p)}
    for group in groups - left:  # stopped members never seen (a re-forker's next pid) keep the group, and die with it
        send(-group, signal.SIGKILL)
    reap()
    return found


def living(found: dict) -> list:
    """The processes of `found` ({pid: start}) still running: not zombies, same start time."""
    out = []
    for pid, start in found.items():
        stat = stat_fields(pid)
        if stat and len(stat) > 19 and stat[0] not in (b"Z", b"X") and int(stat[19]) == start:
            out.append(pid)
    return out


def _until(pred, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not pred() and time.monotonic() < end:
        time.sleep(0.002)


def reap(each=None) -> None:
    """Collect every exited child of this process (orphans re-parented to
    it); `each(pid, wait status)` is told of each one collected."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if each is not None:
            each(pid, status)
