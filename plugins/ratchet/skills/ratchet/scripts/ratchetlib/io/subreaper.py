"""Make this process the child subreaper of its descendants (Linux prctl).

ratchet is one so that a trial that kills its own keeper leaves its orphans
with ratchet, still findable; each keeper is one so that everything its
trial starts stays its descendant (keeper.py). Fork does not pass the
setting on, so each process sets it for itself; the libc function is
looked up once, in ratchet, so a forked keeper only calls it (no dlopen
after a fork). Standard library only and no import of the rest of
ratchetlib, as keeper.py, which imports it, must be.
"""

import os
import sys

PR_SET_CHILD_SUBREAPER = 36

_PRCTL = []  # libc's prctl, looked up once (_libc_prctl)


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux only);
    False where that cannot be done."""
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
