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
re-parented to it; once the shell is reaped it holds none of the trial's
files. The control pipe's write end only ratchet holds, and carries lines:
`done` means ratchet swept the tree, and the keeper exits at once, sweeping
nothing (ratchet alone decides what survived); `run JOB` (JSON: marker,
command, env, cwd, stdio paths), sent once ratchet has swept the last tree
and found nothing left, starts the next command the same way (`pid`, then
`exit`), so the trials of one measurement share one keeper (kept.reuse: a
fork and its setup, ~2 ms, once instead of once a trial; issue 18); a shell
not yet gone makes it answer `error busy`. EOF without `done` means ratchet
died: the keeper leaves the tree running for GRACE_SECONDS so the next
ratchet command can end it and say what it ended (it finds the keeper
through the trial's record, `.ratchet/procs/`, and the tree by its marker),
then ends it itself; with no tree left (a keeper waiting for its next
command) it exits at once.

A keeper ratchet died on sweeps its own tree (proctree.freeze_kill).
Standard library only, no import of the rest of ratchetlib but proctree;
`_signal` (plain int constants), not `signal`.
"""

import fcntl
import json
import os
import select
import sys
import time

from .proctree import freeze_kill, reap, start_of, walk

try:
    import _signal as signal  # CPython: what `signal` wraps, without its enums
except ImportError:  # another interpreter
    import signal

MARKER = "RATCHET_TRIAL_ID"
GRACE_SECONDS = 30.0
PR_SET_CHILD_SUBREAPER = 36


_PRCTL = []  # libc's prctl, looked up once in ratchet: a forked keeper only calls it (no dlopen after a fork)


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux only;
    fork does not pass it on, so each keeper sets it for itself)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if not _PRCTL:
            _PRCTL.append(_libc_prctl())
        return _PRCTL[0](PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _libc_prctl():
    """libc's prctl as a callable, through `_ctypes`, the C module ctypes
    wraps: ctypes itself takes ~3 ms to import, its C core ~0.6 (issue 18).
    A function pointer's result is a C int unless told otherwise, and its
    arguments Python ints passed as C ints, what ctypes.CDLL gives too."""
    try:
        import _ctypes
    except ImportError:  # an interpreter without it: ctypes' own error says why
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl

    class _CFunction(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    return _CFunction(_ctypes.dlsym(_ctypes.dlopen(None, os.RTLD_NOW), "prctl"))


# --- the keeper process ----------------------------------------------------------

def _write(fd: int, line: str) -> None:
    try:
        os.write(fd, line.encode() + b"\n")
    except OSError:  # ratchet is gone: nobody reads the status
        pass


def fork(marker: str | None, command: str | None, env: dict, cwd: str, stdio: tuple, opener=None) -> tuple:
    """Start the keeper of `command` (see the module doc): (pid, status read
    end, control write end); `stdio`: the trial's (stdin, stdout, stderr) fds;
    `opener(path)`: a file object, how the keeper opens a later command's
    stdout and stderr (`run`; store_files.capture, the one writer of the
    files under .ratchet/); without one it answers `run` with an error."""
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
                code = _child((marker, command, env, opener), cwd, stdio, status_w, control_r, handled, mask)
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


def _child(job, cwd, stdio, status_w, control_r, handled, mask) -> int:
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
    marker, command, env, opener = job
    return serve(marker, status, control, command, env, opener)


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


def serve(marker: str, status_fd: int, control_fd: int, command: str, env: dict, opener=None) -> int:
    """The keeper's life, from the first shell's start to its own exit (module doc)."""
    for fd in (status_fd, control_fd):
        os.set_inheritable(fd, False)  # the trial must not forge the status or hold the control pipe
    become_subreaper()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    shell = None if command is None else _spawn(status_fd, marker, command, env)  # None: forked idle, for a `run`
    buf, done, parent_gone = b"", False, None
    while True:
        shell = _reap(status_fd, shell)
        if done:
            break
        if parent_gone is not None and (time.monotonic() - parent_gone >= GRACE_SECONDS
                                        or (shell is None and next(walk(os.getpid()), None) is None)):
            break  # ratchet is gone: after the grace, or at once when nothing of a trial is left to keep
        wait = None if parent_gone is None else max(0.0, GRACE_SECONDS - (time.monotonic() - parent_gone))
        ready, _, _ = select.select([wake_r] + ([] if parent_gone else [control_fd]), [], [], wait)
        if wake_r in ready:
            os.read(wake_r, 4096)
        if control_fd in ready:
            data = os.read(control_fd, 1 << 16)
            if not data:
                parent_gone = time.monotonic()
            buf += data
            while b"\n" in buf and not done:
                line, buf = buf.split(b"\n", 1)
                if line == b"done":
                    done = True
                elif line.startswith(b"run "):
                    shell = _run_next(status_fd, _reap(status_fd, shell), line[4:], opener)
    if not done:  # ratchet died and nobody came within the grace: end the tree here
        freeze_kill(lambda: walk(os.getpid()))
    # After `done` the keeper sweeps nothing: ratchet swept the tree and judged
    # what survived (UNCLEAN). A second sweep from here would hide a survivor
    # from that verdict; whatever is left is re-parented to ratchet, its subreaper.
    if not os.path.isdir("/proc") and shell is not None:  # no parent links to follow (macOS): the trial's process group at least
        try:
            os.killpg(shell, signal.SIGKILL)
        except OSError:
            pass
        reap()
    return 0


def _spawn(status_fd: int, marker: str, command: str, env: dict) -> int:
    """Start `command` through /bin/sh in a new session, the marker added to
    its environment only; tell ratchet `pid PID START`."""
    shell = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", command], {**env, MARKER: marker}, setsid=True,
                           setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD))
    _write(status_fd, f"pid {shell} {start_of(shell) or 0}")
    return shell


def _reap(status_fd: int, shell: int | None) -> int | None:
    """Collect every exited child (the shell, whose status goes to ratchet as
    `exit CODE`, and any orphan); the shell's pid while it runs, None after.
    A shell gone lets go of the trial's files: a keeper kept for the next
    trial holds none of this one's outputs."""
    ended = []
    reap(lambda pid, status: ended.append(status) if pid == shell else None)
    if ended:
        _let_go()  # first: ratchet, told the exit, finds the trial's files let go
        _write(status_fd, f"exit {os.waitstatus_to_exitcode(ended[0])}")
        shell = None
    return shell


def _run_next(status_fd: int, shell: int | None, job: bytes, opener) -> int | None:
    """`run JOB` (JSON: marker, command, env, cwd, stdio paths): the next
    command, once the last one's shell is reaped; otherwise (it survived
    ratchet's sweep) `error busy`, and ratchet forks another keeper."""
    if shell is not None:
        _write(status_fd, "error busy")
        return shell
    try:
        job = json.loads(job)
        os.chdir(job["cwd"])
        _stdio(*job["stdio"], opener)
    except (OSError, ValueError, KeyError, TypeError) as e:
        _write(status_fd, f"error {e}")
        return None
    return _spawn(status_fd, job["marker"], job["command"], job["env"])


def _stdio(stdin: str | None, out: str, err: str | None, opener) -> None:
    """Make the keeper's 0-2 (what the shell inherits) these files: stdin
    read, out and err opened by `opener` (err None: out)."""
    files = [open(stdin or os.devnull, "rb"), opener(out)]
    files.append(opener(err) if err else files[1])
    try:
        for target, f in enumerate(files):
            os.dup2(f.fileno(), target)
    finally:
        for f in files:
            f.close()


def _let_go() -> None:
    """The keeper's 0-2 on /dev/null: it holds none of a finished trial's files."""
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)
