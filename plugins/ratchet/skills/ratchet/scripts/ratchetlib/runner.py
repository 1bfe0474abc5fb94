"""Run one trial of the user's command and leave nothing of it behind.

The command runs through the shell in its own session (so its whole process
group can be signalled), with stdout and stderr streamed straight to files
(a command that prints gigabytes costs disk, not ratchet's memory), stdin
closed, and a marker in its environment. When the trial ends, for any reason,
the group is killed and, on Linux, /proc is swept for any process still
carrying the marker: children that called setsid() or double-forked escape
the group but not their inherited environment.

The same hygiene serves the headless loop's agent process (`Child`, with the
prompt on stdin). A trial on another machine (`srun`, `sbatch --wait`, `ray
job submit`, `sky exec`) leaves a remote job behind when its local process is
killed, so a `cancel_command` runs when a trial times out or is interrupted,
with the trial's id and output paths in its environment (see `cancel_env`).
"""

import dataclasses
import os
import signal
import subprocess
import time
import uuid
from typing import Optional

MARKER = "RATCHET_TRIAL_ID"
_GRACE_SECONDS = 2.0
CANCEL_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class TrialRun:
    exit_code: Optional[int]
    seconds: float
    timed_out: bool
    started: float
    survivors: int = 0
    cancel: Optional[dict] = None  # {"exit_code", "seconds"} when the cancel command ran


def run(command: str, cwd: str, out_path: str, err_path: Optional[str],
        timeout: Optional[float] = None, env: Optional[dict] = None, *,
        stdin_path: Optional[str] = None, marker: Optional[str] = None,
        cancel_command: Optional[str] = None, cancel_log: Optional[str] = None) -> TrialRun:
    """Run `command` to completion or `timeout`; the tree is gone on return."""
    return Child(command, cwd, out_path, err_path, env, stdin_path, marker).finish(timeout, cancel_command, cancel_log)


def cancel_env(marker: str, out_path: str, err_path: Optional[str]) -> dict:
    """What a cancel command is told about the trial it cancels."""
    return {MARKER: marker, "RATCHET_TRIAL_STDOUT": os.path.abspath(out_path),
            "RATCHET_TRIAL_STDERR": os.path.abspath(err_path or out_path)}


class Child:
    """One command started in its own session; `finish` or `kill` ends it.

    stdout and stderr go to files (stderr joins stdout when `err_path` is
    None), stdin is `stdin_path` or closed. Several children may run at once
    (the headless loop's parallel agents); each is tracked by its own marker.
    """

    def __init__(self, command: str, cwd: str, out_path: str, err_path: Optional[str] = None,
                 env: Optional[dict] = None, stdin_path: Optional[str] = None, marker: Optional[str] = None):
        self.marker = marker or uuid.uuid4().hex
        self.cwd, self.out_path, self.err_path = cwd, out_path, err_path
        full_env = {**os.environ, **(env or {}), MARKER: self.marker}
        self.started = time.time()
        self._t0 = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") if err_path else _nothing() as err, \
                open(stdin_path, "rb") if stdin_path else _nothing() as stdin:
            self.proc = subprocess.Popen(command, shell=True, cwd=cwd, env=full_env,
                                         stdin=stdin if stdin_path else subprocess.DEVNULL, stdout=out,
                                         stderr=err if err_path else subprocess.STDOUT, start_new_session=True)

    def finish(self, timeout: Optional[float] = None, cancel_command: Optional[str] = None,
               cancel_log: Optional[str] = None) -> TrialRun:
        """Wait up to `timeout` seconds, then kill whatever is left of the tree.

        On a timeout the group gets SIGTERM and a short grace, then the cancel
        command (if any) runs, then everything bearing the marker is killed.
        An exception while waiting (Ctrl-C, SIGTERM) runs the cancel command
        too, kills the tree and propagates.
        """
        proc, timed_out, cancel = self.proc, False, None
        try:
            proc.wait(timeout=None if timeout is None else max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            timed_out = True
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
                self.kill()
            raise
        survivors = kill_tree(proc.pid, self.marker)
        proc.wait()
        return TrialRun(None if timed_out else proc.returncode, time.monotonic() - self._t0, timed_out,
                        self.started, survivors, cancel)

    def kill(self) -> int:
        """SIGKILL the whole tree now; the number of survivors (0 expected)."""
        survivors = kill_tree(self.proc.pid, self.marker)
        self.proc.wait()
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


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(pgid: int, marker: str) -> int:
    """SIGKILL the trial's process group and every process bearing `marker`.

    Returns how many processes were still alive after the kill (0 expected).
    """
    _signal_group(pgid, signal.SIGKILL)
    for _ in range(3):
        strays = find_marked(marker)
        if not strays:
            return 0
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
    return len(find_marked(marker))


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
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
