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
