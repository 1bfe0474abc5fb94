"""Run one trial of the user's command and leave nothing of it behind.

The command runs through the shell in its own session (so its whole process
group can be signalled), with stdout and stderr streamed straight to files
(a command that prints gigabytes costs disk, not ratchet's memory), stdin
closed, and a marker in its environment. When the trial ends, for any reason,
the group is killed and, on Linux, /proc is swept for any process still
carrying the marker: children that called setsid() or double-forked escape
the group but not their inherited environment.
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


@dataclasses.dataclass(frozen=True)
class TrialRun:
    exit_code: Optional[int]
    seconds: float
    timed_out: bool
    started: float
    survivors: int = 0


def run(command: str, cwd: str, out_path: str, err_path: str,
        timeout: Optional[float] = None, env: Optional[dict] = None) -> TrialRun:
    """Run `command` to completion or `timeout`; the tree is gone on return."""
    marker = uuid.uuid4().hex
    full_env = {**os.environ, **(env or {}), MARKER: marker}
    started = time.time()
    t0 = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(command, shell=True, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        except BaseException:
            kill_tree(proc.pid, marker)
            proc.wait()
            raise
        survivors = kill_tree(proc.pid, marker)
        proc.wait()
    return TrialRun(None if timed_out else proc.returncode, time.monotonic() - t0, timed_out, started, survivors)


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
