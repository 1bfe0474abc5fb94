"""The keeper as ratchet sees it: the reading end of keeper.py's protocol.

`Kept` is the trial's command through its keeper, what runner.Child uses of
a Popen (pid, poll, wait, returncode), read from the keeper's status pipe;
`KeeperProcess` the forked keeper itself as a child of ratchet. `release`
tells a keeper the tree is swept; the keeper then exits, and is collected
before the next Child starts or at exit (`collect_released`), not waited for
at once: a forked keeper takes ~1 ms to tear its copy of ratchet down
(issue 18), and no keeper of an earlier trial is left when the next starts.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

from ..core.errors import RatchetError
from . import procs

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


class Kept:
    """The command as ratchet sees it through its keeper: what Popen offers
    (pid, poll, wait, returncode), read from the keeper's status pipe. A
    keeper that dies before telling the exit (the trial killed it) makes the
    trial end as if killed (-9)."""

    def __init__(self, proc: "KeeperProcess", status_fd: int, control_fd: int):
        self.keeper, self._status, self._control, self._buf = proc, status_fd, control_fd, b""
        self.returncode = None
        line = self._line(30.0)
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
                os.write(self._control, b"done")
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
    (keeper.reap in a sweep): then it is simply gone."""

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
