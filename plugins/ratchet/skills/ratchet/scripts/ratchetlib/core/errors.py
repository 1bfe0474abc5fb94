"""The two kinds of failure ratchet reports, and the exit codes they map to.

A `UsageError` is the user's to fix (bad flag, wrong repository state): the CLI
prints its one-line message and exits 2 having changed nothing. A
`RatchetError` is an unexpected runtime failure (git refused, disk full): exit
1, state left consistent. Anything else escaping is a bug and gets a traceback.
"""


class UsageError(Exception):
    """A mistake the user can fix; exit code 2, nothing changed."""

    exit_code = 2


class RatchetError(Exception):
    """A runtime failure outside the user's control; exit code 1."""

    exit_code = 1


_DISK_FULL = {28: "disk full", 122: "disk quota exceeded", 5: "input/output error"}   # ENOSPC, EDQUOT, EIO
_NOT_WRITABLE = {13: "permission denied", 1: "operation not permitted", 30: "read-only file system"}  # EACCES, EPERM, EROFS


def from_os_error(e: OSError):
    """The UsageError/RatchetError for an OSError that escaped a verb, or None
    (a bug: let it show). A full disk is exit 1 (free space and rerun: every
    state file is replaced atomically and the next command finishes what this
    one started); a file ratchet may not write is exit 2 (make it writable)."""
    where = f" {e.filename}" if e.filename else ""
    if e.errno in _DISK_FULL:
        return RatchetError(f"{_DISK_FULL[e.errno]} while writing{where}; the last complete state is on disk: free some "
                            f"space and run the command again (it finishes what this one started)")
    if e.errno == 30:
        return UsageError(f"cannot write{where}: {_NOT_WRITABLE[e.errno]}; make it writable and run the command again")
    if e.errno in _NOT_WRITABLE:  # a read as much as a write: e.g. a .ratchet/ another user (sudo) made
        return UsageError(f"cannot read or write{where}: {_NOT_WRITABLE[e.errno]} for this user; give it access "
                          f"(or run ratchet as the user who owns it) and run the command again")
    return None
