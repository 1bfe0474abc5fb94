"""Sections a signal must not cut in half: SIGINT and SIGTERM wait for their end.

Why. ratchet turns SIGTERM and SIGINT into exceptions so that cleanup
(finally blocks, locks, the trial's kill) runs. An exception raised half way
through starting a trial's keeper leaves a keeper that ratchet holds no
handle to: nobody tells it the tree was swept, so it holds the tree for its
grace as if ratchet had been SIGKILLed, and a process outlives a command
that ended cleanly. One raised half way through the freeze-then-kill sweep
leaves a tree stopped but not killed. Inside `deferred()` such a signal is
only noted; when the section ends, `settle` runs (still deferred: it may be
the kill of what the section started) and the signal is raised again, so
the handler that was in place acts on it as if it had just arrived.

The handlers set here are Python functions, never SIG_IGN, so a process
started inside the section gets the default dispositions after exec, as
anywhere else. Python runs signal handlers in the main thread only; in any
other thread `deferred` changes nothing.
"""

import contextlib
import threading

try:
    import _signal as signal  # the C module under `signal`: no enum made per call (4 calls a section, ~6 sections a trial)
except ImportError:  # another interpreter
    import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred(settle=None):
    """Hold SIGINT/SIGTERM until the block ends; then, if one came and the
    block completed, call `settle()` first, then deliver the signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    saved = {sig: signal.signal(sig, lambda n, _frame: got.append(n)) for sig in SIGNALS}
    completed = False
    try:
        yield
        completed = True
    finally:
        try:
            if got and completed and settle is not None:
                settle()
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
            if got:
                signal.raise_signal(got[0])


def blocked(fn):
    """Run `fn` with SIGINT/SIGTERM blocked at the thread's signal mask, so a
    second Ctrl-C cannot cut a cleanup short (a remote job's cancel); a signal
    that arrives meanwhile is delivered once the mask is restored."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        return fn()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
