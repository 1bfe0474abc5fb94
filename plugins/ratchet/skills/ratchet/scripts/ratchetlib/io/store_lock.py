"""The `.ratchet/lock` of one command: at most one ratchet command changes a
repository's state at a time (FORMATS.md `lock`).

Part of the store (only io/store* writes under `.ratchet/`): the lock file is
created with O_EXCL, so two commands racing for it cannot both win; a lock
whose holder is gone (its pid no longer runs on this host, or now runs a
process started at another time) is taken over and the dead holder's body
kept in `store.taken_over` for `keep/recover`.
"""

from __future__ import annotations

import errno
import json
import os
import sys

from ..core import term
from ..core.errors import RatchetError, UsageError
from .store import Store, now_iso


class Lock:
    """An exclusive lock on the repository's `.ratchet/` for one command.

    Created with O_EXCL; a lock whose pid no longer runs on this host is
    stale (its holder was killed) and is taken over: its body (pid, start
    time, verb) is left in `store.taken_over` for `keep/recover`, which
    kills what the dead command left running.
    """

    def __init__(self, store: Store, verb: str):
        self.store = store
        self.path = store.file("lock")
        self.verb = verb

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        body = json.dumps({"pid": os.getpid(), "host": _host(), "started": now_iso(),
                           "verb": self.verb, "pid_start": pid_start(os.getpid())}).encode()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder and _alive(holder):
                    raise UsageError(
                        f"another ratchet command (`{holder.get('verb') or 'ratchet'}`, pid {holder.get('pid')}) is working "
                        f"on this repository; wait for it, or stop it first")
                self.store.taken_over = holder
                if holder:  # announced: a command was killed while it held the lock
                    sys.stderr.write(term.printable(f"ratchet: recovered: took over the lock of a killed "
                                                    f"`{holder.get('verb') or 'ratchet'}` (pid {holder.get('pid')})",
                                                    multiline=False) + "\n")
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            except PermissionError:
                raise UsageError(f"cannot write {os.path.dirname(self.path)}: permission denied; make it writable"
                                 + _owner_hint(os.path.dirname(self.path))) from None
            except OSError as e:
                if e.errno == errno.EROFS:
                    raise UsageError(f"cannot write {os.path.dirname(self.path)}: read-only file system; run ratchet "
                                     f"on a writable copy of the repository") from None
                raise
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            return self
        raise RatchetError("could not take the ratchet lock; retry")

    def holder(self) -> dict | None:
        """The lock file's body ({} when unreadable, None when there is no lock)."""
        try:
            with open(self.path, "rb") as f:
                obj = json.loads(f.read() or b"{}")
            return obj if isinstance(obj, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        return False


def _owner_hint(path: str) -> str:
    """` (it belongs to uid N, not to you: ...)` when another user owns `path`."""
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    if uid == os.geteuid():
        return ""
    return f" (it belongs to uid {uid}, not to this user: run ratchet as that user, or chown it)"


def _alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") not in (None, _host()):
        return holder.get("host") not in (None, _host())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = holder.get("pid_start")  # a pid reused by another process (after a reboot) is not the holder
    return start is None or pid_start(pid) in (None, start)


def pid_start(pid: int) -> int | None:
    """The kernel's start time of `pid` (Linux /proc), None elsewhere or when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _host() -> str:
    """This machine's name, as socket.gethostname() gives it on POSIX, without
    importing socket (every command takes the lock; issue 18)."""
    return os.uname().nodename
