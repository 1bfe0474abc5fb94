"""The keeper as ratchet sees it: the reading end of keeper.py's protocol.

`Kept` is the trial's command through its keeper, what runner.Child uses of
a Popen (pid, poll, wait, returncode), read from the keeper's status pipe;
`KeeperProcess` the forked keeper itself as a child of ratchet. `release`
tells a keeper the tree is swept; the keeper then exits, and is collected
before the next Child starts or at exit (`collect_released`), not waited for
at once: a forked keeper takes ~1 ms to tear its copy of ratchet down
(issue 18), and no keeper of an earlier trial is left when the next starts.

Within `reuse()` (one measurement: an iterate's trials) one keeper runs
this thread's trials one after another, where a fork of ratchet and the
keeper's setup cost ~2 ms a trial otherwise (issue 18). It is forked idle
as the scope opens, so its side of the fork runs on another core while
ratchet reads the candidate; a keeper whose tree was swept clean is
`park`ed, and the next Child `take`s it and sends it the command (`run`).
A parked keeper runs nothing and holds none of a trial's files; leaving
`reuse` releases it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import time

from ..core.errors import RatchetError
from . import critical, keeper, procs, store_files

_RELEASED = []  # keepers told `done`, not yet collected (Kept.release)


def collect_released() -> None:
    """Collect every keeper told `done`: each has exited long since in the
    usual case (the work between two trials outlasts a keeper's exit), so
    this costs nothing, and no keeper of an earlier trial is still tearing
    down when the next one is measured."""
    while True:
        try:
            released = _RELEASED.pop()  # atomic: loop --parallel starts Children from several threads
        except IndexError:
            return
        released.collect()


_LOCAL = threading.local()  # .parked: this thread's parked keepers, inside reuse()
_SCOPES = []  # every reuse() scope's list, for release_parked at exit


@contextlib.contextmanager
def reuse():
    """Within: keepers of this thread's trials are parked and taken again,
    not forked for each (module doc); on the way out every parked one is
    released. Nested scopes are the outer one."""
    if getattr(_LOCAL, "parked", None) is not None:
        yield
        return
    _LOCAL.parked = parked = _forked_idle()
    _SCOPES.append(parked)
    try:
        yield
    finally:
        _LOCAL.parked = None
        _SCOPES.remove(parked)
        _release_all(parked)


def _forked_idle() -> list:
    """[a keeper forked with nothing to run yet], parked as a measurement
    begins: its side of the fork (~2 ms) runs on another core while ratchet
    reads the candidate, not on the first trial's clock. [] when the fork
    fails (no process left to the user): the first Child forks its own."""
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        with critical.deferred():
            pid, status, control = keeper.fork(None, None, {}, "/", (fd, fd, fd), store_files.capture)
    except OSError:
        return []
    finally:
        os.close(fd)
    return [Kept(KeeperProcess(pid), status, control, started=False)]


def release_parked() -> None:
    """Release every parked keeper of every thread (atexit: runner._end_live)."""
    for parked in list(_SCOPES):
        _release_all(parked)


def parked_keepers() -> set:
    """Pids of every parked keeper, of every thread: a trial that killed its
    own keeper has its orphans swept among ratchet's children, and these are
    never a trial's."""
    return {k.keeper.pid for parked in list(_SCOPES) for k in list(parked)}


def _release_all(parked: list) -> None:
    while parked:
        parked.pop().release(collect=False)


def take() -> "Kept" | None:
    """A keeper this thread parked (alive, idle), or None: outside reuse(), or none left."""
    parked = getattr(_LOCAL, "parked", None)
    while parked:
        k = parked.pop()
        if k.keeper.poll() is None:
            return k
        k.release(collect=False)
    return None


class Kept:
    """The command as ratchet sees it through its keeper: what Popen offers
    (pid, poll, wait, returncode), read from the keeper's status pipe. A
    keeper that dies before telling the exit (the trial killed it) makes the
    trial end as if killed (-9)."""

    def __init__(self, proc: "KeeperProcess", status_fd: int, control_fd: int, started: bool = True):
        """`started` False: a keeper forked idle (`_forked_idle`), told its command by `run`."""
        self.keeper, self._status, self._control, self._buf = proc, status_fd, control_fd, b""
        self.returncode = None
        if started:
            self._started(self._line(30.0))

    def _started(self, line: str | None) -> None:
        if not line or not line.startswith("pid "):
            self.release()
            why = line[6:] if line and line.startswith("error ") else "it exited before starting the shell"
            raise RatchetError(f"could not start the trial's keeper: {why}")
        self.pid, self.start = (int(x) for x in line.split()[1:3])

    def _line(self, timeout: float | None) -> str | None:
        """The next status line; None on timeout, "" when the keeper is gone."""
        end = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = None if end is None else max(0.0, end - time.monotonic())
            if not select.select([self._status], [], [], left)[0]:
                return None
            data = os.read(self._status, 4096)
            if not data:
                return ""
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def run(self, marker: str, command: str, env: dict, cwd: str, stdio: tuple) -> "Kept":
        """This parked keeper's next command (`run JOB`, keeper.py); `stdio`:
        absolute (stdin or None, out, err or None) paths. A keeper that
        cannot (gone, `error busy`) is released and RatchetError raised: the
        caller forks another."""
        job = json.dumps({"marker": marker, "command": command, "env": env, "cwd": cwd, "stdio": list(stdio)})
        data = b"run " + job.encode() + b"\n"  # ASCII: json escapes the rest, a surrogate of a non-UTF-8 byte too
        try:
            while data:
                data = data[os.write(self._control, data):]
        except OSError:
            self.release(collect=False)
            raise RatchetError("the parked keeper is gone") from None
        self.returncode = None
        line = self._line(30.0)
        while line and line.startswith("exit "):  # the last command's, unread when its tree was killed
            line = self._line(30.0)
        self._started(line)
        return self

    def park(self) -> bool:
        """Keep this keeper, its tree swept clean, for this thread's next
        Child; False outside reuse() or when the keeper is gone."""
        parked = getattr(_LOCAL, "parked", None)
        if parked is None or self._control < 0 or self.keeper.poll() is not None:
            return False
        parked.append(self)
        return True

    def poll(self) -> int | None:
        return self.wait(0.0, raise_timeout=False)

    def wait(self, timeout: float | None = None, raise_timeout: bool = True) -> int | None:
        if self.returncode is None and self._status >= 0:
            line = self._line(timeout)
            if line == "":
                self.returncode = -signal.SIGKILL
            elif line and line.startswith("exit "):
                self.returncode = int(line.split()[1])
        if self.returncode is None and raise_timeout:
            raise subprocess.TimeoutExpired("trial", timeout)
        return self.returncode

    def release(self, collect: bool = True) -> None:
        """Tell the keeper the tree is swept (it exits), and collect it now
        or, with `collect` False, before the next Child starts and at exit
        (collect_released): a forked keeper takes ~1 ms to tear its copy of
        ratchet down, time ratchet need not wait for (issue 18)."""
        if self._control >= 0:
            try:
                os.write(self._control, b"done\n")
            except OSError:
                pass
            os.close(self._control)
            self._control = -1
        if self._status >= 0:
            os.close(self._status)
            self._status = -1
        if collect:
            self.collect()
        else:
            _RELEASED.append(self)

    def collect(self) -> None:
        """Wait for the released keeper to exit (10 s, then SIGKILL) and reap it."""
        try:
            self.keeper.wait(10)
        except subprocess.TimeoutExpired:
            self.keeper.kill()
            self.keeper.wait()


class KeeperProcess:
    """The forked keeper as a child process: what runner uses of Popen (pid,
    poll, wait, kill). ratchet, the subreaper, may have reaped it already
    (proctree.reap in a sweep): then it is simply gone."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        return self.wait(0.0, raise_timeout=False)

    def wait(self, timeout: float | None = None, raise_timeout: bool = True) -> int | None:
        end = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if end is None else os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
                break
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
            elif not procs.sleep_until_exit(self.pid, end - time.monotonic()):
                break
        if self.returncode is None and raise_timeout:
            raise subprocess.TimeoutExpired("keeper", timeout)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            procs.signal_pid(self.pid, signal.SIGKILL)
