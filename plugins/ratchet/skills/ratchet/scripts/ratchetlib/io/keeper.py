"""The keeper: the parent of one trial, so nothing the trial starts outlives ratchet.

Why a separate process. While ratchet runs, it is the child subreaper of its
trials (Linux prctl) and finds every descendant through /proc parent links.
When ratchet itself is SIGKILLed that link is lost: its orphans are
re-parented to init (or the next subreaper up), and a daemon that left the
session and cleared its environment is no longer provably the trial's. A
small process between ratchet and the trial keeps it provable: the keeper is
the subreaper of the trial's tree, so every process the trial starts
(double-forked, setsid, env-cleared, re-forking) stays its descendant, and it
outlives ratchet because it sits in its own session (no terminal signal, no
process-group kill of ratchet reaches it). This is how CI runners contain a
job; a PID namespace (unshare) or a cgroup would do it in the kernel, but an
unprivileged user namespace is refused on many distributions (AppArmor,
sysctl) and changes what the benchmark sees (uids, /proc, pids), and a cgroup
is delegated to users only under a systemd user session, so neither is
something every user's machine offers.

Protocol (runner.Child is the other side). `fork` starts the keeper as a
fork of ratchet itself, never exec'd: no interpreter start and no imports, so
a keeper costs a fork (~1 ms) where a `python3 -I -S` process cost ~12 ms a
trial (issue 18). The child takes the trial's stdin/stdout/stderr and cwd,
keeps no other descriptor of ratchet's (not the repository lock: a keeper
that outlives a SIGKILLed ratchet must not hold it), puts every signal
ratchet handles back to its default (as an exec would), and runs `serve`,
touching nothing but system calls (it may be forked from one of several
threads: `loop --parallel`), then leaves by os._exit (no atexit, no flush of
ratchet's buffers). `serve` starts COMMAND through /bin/sh in a new session
with RATCHET_TRIAL_ID=MARKER added to the environment (the keeper's own
environment does not carry it, so a marker sweep never freezes the keeper),
writes `pid PID START` then, when the shell exits, `exit CODE` (Popen's
convention: -N for signal N) to the status pipe, and reaps every orphan
re-parented to it. The control pipe's write end only ratchet holds: `done`
then EOF means ratchet swept the tree, and the keeper exits at once,
sweeping nothing (ratchet alone decides what survived); EOF without `done`
means ratchet died, and the keeper leaves the tree running for GRACE_SECONDS
so the next ratchet command can end it and say what it ended (it finds the
keeper through the trial's record, `.ratchet/procs/`, and the tree by its
marker), then ends it itself and, once nothing of it is left, calls
`forget` (runner: remove that record). A record whose keeper is gone then
means the keeper was killed, the one case where the next command must look
for what nothing identifies (io/leftovers: suspects); a keeper that ended
its tree leaves nothing to suspect.

The sweep (`freeze_kill`) is shared with runner: SIGSTOP every process found,
wait until each is stopped, scan again, repeat until a scan finds nothing new,
then SIGKILL them all. A stopped process cannot fork, so a daemon that
re-forks continuously cannot outrun it. Standard library only, no import of
the rest of ratchetlib but subreaper.py (itself so); `_signal` (plain int
constants), not `signal`.
"""

import fcntl
import os
import select
import time

from .subreaper import become_subreaper

try:
    import _signal as signal  # CPython: what `signal` wraps, without its enums
except ImportError:  # another interpreter
    import signal

MARKER = "RATCHET_TRIAL_ID"
GRACE_SECONDS = 30.0


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


def reap() -> None:
    """Collect every exited child of this process (orphans re-parented to it)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --- the keeper process ----------------------------------------------------------

def _write(fd: int, line: str) -> None:
    try:
        os.write(fd, line.encode() + b"\n")
    except OSError:  # ratchet is gone: nobody reads the status
        pass


def fork(marker: str, command: str, env: dict, cwd: str, stdio: tuple, forget=None) -> tuple:
    """Start the keeper of `command` (see the module doc): (pid, status read
    end, control write end); `stdio`: the trial's (stdin, stdout, stderr) fds;
    `forget`: called once the keeper's own sweep left nothing (module doc)."""
    status_r, status_w = os.pipe()
    control_r, control_w = os.pipe()
    handled = [s for s in signal.valid_signals() if callable(signal.getsignal(s))]
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # no handler of ratchet's runs in the child
    pid = -1
    try:
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = _child(marker, command, env, cwd, stdio, status_w, control_r, handled, mask, forget)
            finally:
                os._exit(code)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(status_w)
        os.close(control_r)
        if pid < 0:
            os.close(status_r)
            os.close(control_w)
    return pid, status_r, control_w


def _child(marker, command, env, cwd, stdio, status_w, control_r, handled, mask, forget) -> int:
    """The forked keeper, up to `serve`: what an exec would have done for it."""
    for s in handled:  # ignored first: a signal pending since the fork is dropped, not delivered
        signal.signal(s, signal.SIG_IGN)
    os.setsid()
    for s in handled:
        signal.signal(s, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    try:
        os.chdir(cwd)
    except OSError as e:
        _write(status_w, f"error cannot enter {cwd}: {e.strerror}")
        return 70
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3) for fd in (*stdio, status_w, control_r)]  # off 0-2 first
    for target, fd in enumerate(high[:3]):
        os.dup2(fd, target)  # inheritable: the shell's stdio
    status, control = high[3:]
    _close_all_but((0, 1, 2, status, control))  # ratchet's descriptors, the repository lock among them
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return serve(marker, status, control, command, env, forget)


def _close_all_but(keep: tuple) -> None:
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc (macOS)
        fds = range(3, os.sysconf("SC_OPEN_MAX"))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def serve(marker: str, status_fd: int, control_fd: int, command: str, env: dict, forget=None) -> int:
    """The keeper's life, from the shell's start to its own exit (module doc)."""
    for fd in (status_fd, control_fd):
        os.set_inheritable(fd, False)  # the trial must not forge the status or hold the control pipe
    become_subreaper()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    env = {**env, MARKER: marker}
    shell = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", command], env, setsid=True,
                           setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD))
    _write(status_fd, f"pid {shell} {start_of(shell) or 0}")
    done = parent_gone = None
    while True:
        while True:  # reap: the shell (its status goes to ratchet) and any orphan
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == shell:
                _write(status_fd, f"exit {os.waitstatus_to_exitcode(status)}")
        if done:
            break
        if parent_gone is not None and time.monotonic() - parent_gone >= GRACE_SECONDS:
            break
        wait = None if parent_gone is None else max(0.0, GRACE_SECONDS - (time.monotonic() - parent_gone))
        ready, _, _ = select.select([wake_r] + ([] if parent_gone else [control_fd]), [], [], wait)
        if wake_r in ready:
            os.read(wake_r, 4096)
        if control_fd in ready:
            data = os.read(control_fd, 64)
            if b"done" in data:
                done = True
            elif not data:
                parent_gone = time.monotonic()
    if not done:  # ratchet died and nobody came within the grace: end the tree here
        found = freeze_kill(lambda: walk(os.getpid()))
        _until(lambda: reap() or not living(found), 5.0)
        if forget and not living(found):
            forget()  # the trial's record: nothing of the tree is left for the next command to look for
    # After `done` the keeper sweeps nothing: ratchet swept the tree and judged
    # what survived (UNCLEAN). A second sweep from here would hide a survivor
    # from that verdict; whatever is left is re-parented to ratchet, its subreaper.
    if not os.path.isdir("/proc"):  # no parent links to follow (macOS): the trial's process group at least
        try:
            os.killpg(shell, signal.SIGKILL)
        except OSError:
            pass
        reap()
    return 0
