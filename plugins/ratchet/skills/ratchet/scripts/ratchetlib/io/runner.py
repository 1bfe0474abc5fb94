"""Run one trial of the user's command and leave nothing of it behind.

The command runs through the shell under a keeper (keeper.py: its parent,
the child subreaper of its tree, in a session of its own), in its own
session, with stdout and stderr streamed straight to files (a command that
prints gigabytes costs disk, not ratchet's memory), stdin closed, and a
marker (RATCHET_TRIAL_ID) in its environment. Because the keeper is the
subreaper, every process the trial starts stays below the keeper however it
escapes: a launcher's workers in their own session (torchrun, accelerate),
double-forked daemons, daemons that also cleared their environment. When the
trial ends, for any reason, the whole tree is frozen then killed
(keeper.freeze_kill: SIGSTOP everything found, rescan until nothing new
appears, then SIGKILL), so a daemon that re-forks continuously cannot outrun
the sweep. Whatever is still alive after that is returned as `survivors`
(pid, start time, command line). ratchet is a subreaper too, so a trial that
kills its own keeper leaves its orphans with ratchet, still found.

Starting a Child and killing it are sections a SIGTERM or SIGINT waits
for (critical.py), and any Child still live when the process exits is swept
on the way out (`_end_live`): only a SIGKILL leaves a keeper without its
`done`. A ratchet command that is itself SIGKILLed cannot do any of that. Its
keepers outlive it (own session) and keep the trees contained; every marker
begins with the command's pid and kernel start time (`new_marker`), the two
facts the repository lock records, and with `record_dir` a record of each
running Child (FORMATS.md) names its keeper, so the next command, taking
over the dead holder's lock, ends them (leftovers.py), and finds the rest
from the record even when the keeper was killed too; a keeper left alone
ends its tree itself after keeper.GRACE_SECONDS.

`progress`, when given, is told the elapsed time every `progress.interval`
seconds while the command runs (the heartbeat) and `done()` when it ends.

The same hygiene serves the headless loop's agent process (`Child`, with the
prompt on stdin); several Children may run at once (`loop --parallel`), each
under its own keeper. A trial on another machine (`srun`, `sbatch --wait`,
`ray job submit`, `sky exec`) leaves a remote job behind when its local
process is killed, so a `cancel_command` runs when a trial times out or is
interrupted, with the trial's id and output paths in its environment (see
`cancel_env`). Off Linux (macOS) there is no subreaper and no /proc: the
keeper still ends the trial's process group, best effort.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time

from ..core import faults, record
from . import critical, keeper, kept, procs, store_files, subreaper
from .store_lock import pid_start

_GRACE_SECONDS = 2.0
CANCEL_TIMEOUT_SECONDS = 60.0


class TrialRun(record.Record):
    exit_code: int | None
    seconds: float
    timed_out: bool
    started: float
    survivors: tuple = ()   # processes alive after the kill: {pid, start, cmd} each
    marker: str = ""
    cancel: dict | None = None  # {"exit_code", "seconds"} when the cancel command ran


def run(command: str, cwd: str, out_path: str, err_path: str | None,
        timeout: float | None = None, env: dict | None = None, progress=None, *,
        stdin_path: str | None = None, marker: str | None = None,
        cancel_command: str | None = None, cancel_log: str | None = None,
        record_dir: str | None = None) -> TrialRun:
    """Run `command` to completion or `timeout`; the tree is gone on return."""
    child = Child(command, cwd, out_path, err_path, env, stdin_path, marker, record_dir, cancel_command, cancel_log)
    faults.point("trial")
    return child.finish(timeout, cancel_command, cancel_log, progress)


def marker_prefix(pid: int, start: int | None) -> str:
    """What every marker of the command (pid, kernel start time) begins with."""
    return f"{pid}.{start or 0}."


def new_marker() -> str:
    """A fresh marker of this command: its prefix, then a random part (32 hex
    digits, as uuid4().hex gave, without importing uuid and platform)."""
    return marker_prefix(os.getpid(), pid_start(os.getpid())) + os.urandom(16).hex()


def cancel_env(marker: str, out_path: str, err_path: str | None) -> dict:
    """What a cancel command is told about the trial it cancels."""
    return {procs.MARKER: marker, "RATCHET_TRIAL_STDOUT": os.path.abspath(out_path),
            "RATCHET_TRIAL_STDERR": os.path.abspath(err_path or out_path)}


_LIVE = []  # Children started and not yet killed


@atexit.register
def _end_live() -> None:
    """The net under every path out of a ratchet process but SIGKILL (an
    exception nobody caught, sys.exit between a Child's start and its finish):
    each Child still running is swept now and its keeper told so, never left
    to hold its tree for keeper.GRACE_SECONDS after a command that ended."""
    for child in list(_LIVE):
        child.kill()
    kept.collect_released()


RECORD_FORMAT = 1


class Child:
    """One command started under its own keeper; `finish` or `kill` ends it.

    stdout and stderr go to files (stderr joins stdout when `err_path` is
    None), stdin is `stdin_path` or closed. The keeper (keeper.py) is the
    command's parent and the subreaper of its tree, so every orphan the
    command leaves is re-parented to this Child's keeper and to no other:
    several children may run at once (the headless loop's parallel agents)
    and each one's tree is told apart by its keeper alone. With `record_dir`
    a record of the trial (FORMATS.md, `.ratchet/procs/`) lives there while
    it runs, for the next command should this one be SIGKILLed.
    """

    def __init__(self, command: str, cwd: str, out_path: str, err_path: str | None = None,
                 env: dict | None = None, stdin_path: str | None = None, marker: str | None = None,
                 record_dir: str | None = None, cancel_command: str | None = None,
                 cancel_log: str | None = None):
        self.marker = marker or new_marker()
        self.cancel_command, self.cancel_log = cancel_command, cancel_log
        self.cwd, self.out_path, self.err_path = cwd, out_path, err_path
        keeper_env = {**os.environ, **(env or {})}
        keeper_env.pop(procs.MARKER, None)  # the keeper adds it for the command only: a marker sweep never stops the keeper
        _become_subreaper()  # a keeper killed by its trial leaves the tree to ratchet, still findable
        with critical.deferred(settle=self._stop_started):  # a SIGTERM now would orphan the keeper: it waits
            self._start(command, keeper_env, stdin_path, record_dir)

    def _stop_started(self) -> None:
        """A SIGINT/SIGTERM that came while the trial started: the command may
        be running already (a remote job submitted), so it is aborted as
        `finish` aborts it on a signal."""
        self._abort(self.cancel_command, self.cancel_log)

    def _abort(self, cancel_command: str | None, cancel_log: str | None, known: dict | None = None) -> None:
        """The cancel command (if any), then the tree killed, whatever the cancel did."""
        try:
            if cancel_command:
                self._cancel(cancel_command, cancel_log)
        finally:
            self.kill(known)

    def _start(self, command: str, keeper_env: dict, stdin_path: str | None, record_dir: str | None) -> None:
        kept.collect_released()
        self.started = time.time()
        self._t0 = time.monotonic()
        self._mark = keeper.pid_mark()  # before the fork: every process of the trial comes after it
        record = os.path.abspath(os.path.join(record_dir, self.marker + ".json")) if record_dir else None
        with store_files.capture(self.out_path) as out, \
                store_files.capture(self.err_path) if self.err_path else contextlib.nullcontext() as err, \
                open(stdin_path or os.devnull, "rb") as stdin:
            pid, status_r, control_w = keeper.fork(self.marker, command, keeper_env, self.cwd,
                                                   (stdin.fileno(), out.fileno(), (err or out).fileno()),
                                                   record and (lambda: _remove(record)))
        self.proc = kept.Kept(kept.KeeperProcess(pid), status_r, control_w)
        self.record = _write_record(record, self) if record else None
        _LIVE.append(self)

    def finish(self, timeout: float | None = None, cancel_command: str | None = None,
               cancel_log: str | None = None, progress=None) -> TrialRun:
        """Wait up to `timeout` seconds from now (ticking `progress`), then kill
        whatever is left of the tree.

        On a timeout the tree gets SIGTERM and a short grace, then the cancel
        command (if any) runs, then the tree is killed: everything under the
        keeper, everything bearing the marker. An exception while waiting
        (Ctrl-C, SIGTERM) runs the cancel command too, kills the tree and
        propagates.
        """
        proc, timed_out, cancel, known = self.proc, False, None, {}
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)  # from now: see loop --parallel
        try:
            timed_out = not _wait(proc, self._t0, deadline, progress)
            if timed_out:
                known = {i["pid"]: i["start"] for i in map(procs.process_info, keeper.descendants(proc.pid)) if i}
                for pid in known:
                    procs.signal_pid(pid, signal.SIGTERM)
                procs.signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
                if cancel_command:
                    cancel = self._cancel(cancel_command, cancel_log)
        except BaseException:
            self._abort(cancel_command, cancel_log, known)
            raise
        finally:
            if progress is not None:
                progress.done()
        survivors = self.kill(known)
        return TrialRun(None if timed_out else proc.returncode, time.monotonic() - self._t0, timed_out,
                        self.started, tuple(survivors), self.marker, cancel)

    def kill(self, known: dict | None = None) -> list:
        """Freeze, then SIGKILL, the whole tree now; the survivors ([] expected)."""
        if self not in _LIVE:
            return []
        known, keeper_pid = dict(known or {}), self.proc.keeper.pid
        with critical.deferred():  # cut short, it would leave the tree stopped, not killed, and the keeper waiting
            try:
                found = keeper.freeze_kill(lambda: self._tree(known), send=lambda pid, sig: procs.signal_pid(pid, sig))
                procs.wait_gone(list(found))
                if self.record:  # before `done`: a keeper that exited is then never one a record names
                    _remove(self.record)
                    self.record = None
                self.proc.release(collect=False)
                return [i for i in map(procs.process_info, sorted(found)) if i and i["start"] == found[i["pid"]]
                        and i["pid"] != keeper_pid]
            finally:
                if self in _LIVE:
                    _LIVE.remove(self)
                if self.record:
                    _remove(self.record)

    def _tree(self, known: dict):
        """Every process of this child's now, lazily (keeper.freeze_kill stops
        each as it comes): under its keeper first (the fast walk), then what
        bears its marker or was seen in its tree earlier."""
        k, lost = self.proc.keeper.pid, self.proc.keeper.poll() is not None
        if not lost:  # unreaped until the next poll, so its pid names no other process meanwhile
            yield from keeper.walk(k)
        table = keeper.table(since=self._mark)  # what was made since the keeper: all a trial can be
        yield from keeper.descendants(self.proc.pid, table)
        yield from (p for p, s in known.items() if p in table and int(table[p][19]) == s)
        yield from procs.find_marked(self.marker, among=[p for p, s in table.items() if int(s[19]) >= self.proc.start])
        if lost:  # the trial killed its keeper: its orphans came to ratchet
            others = set()
            for c in _LIVE:
                if c is not self and c.proc.keeper.poll() is None:
                    others |= {c.proc.keeper.pid, *keeper.descendants(c.proc.keeper.pid, table)}
            yield from (p for p in keeper.descendants(os.getpid(), table) if p not in others and p != k)

    def _cancel(self, command: str, log: str | None) -> dict:
        """Run the cancel command with the trial's id; it carries the same
        marker, so whatever it leaves is swept with the trial's tree."""
        log = log or os.devnull
        r = Child(command, self.cwd, log, None, cancel_env(self.marker, self.out_path, self.err_path),
                  marker=self.marker).finish(CANCEL_TIMEOUT_SECONDS)
        return {"exit_code": r.exit_code, "seconds": round(r.seconds, 4)}


def _write_record(path: str, child: Child) -> str | None:
    """The trial's record at `path`: what identifies its processes if this command dies."""
    k = child.proc.keeper.pid
    rec = {"format": RECORD_FORMAT, "marker": child.marker, "keeper": {"pid": k, "start": keeper.start_of(k)},
           "leader": {"pid": child.proc.pid, "start": child.proc.start}, "cwd": os.path.abspath(child.cwd),
           "outputs": [os.path.abspath(p) for p in (child.out_path, child.err_path) if p], "uid": os.getuid(),
           "ancestors": procs.ancestors()}
    try:
        store_files.write_record(path, rec)
    except OSError:
        return None  # no record: the keeper and the marker still find the tree
    return path


def _remove(path: str) -> None:
    """Remove a trial record, and its folder once empty (it is no part of a run's files)."""
    store_files.remove_record(path)


def _wait(proc, t0: float, deadline: float | None, progress) -> bool:
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


_SUBREAPER = []


def _become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux; once)."""
    if not _SUBREAPER:
        _SUBREAPER.append(subreaper.become_subreaper())
    return _SUBREAPER[0]
