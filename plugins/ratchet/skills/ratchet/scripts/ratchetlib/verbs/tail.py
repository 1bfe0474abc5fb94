"""`ratchet.py tail`: the end of a trial's (or the guard's) log, with the
crash's cause in view.

This module reads the log file (the last 4 MiB only) and picks the lines
to show; present/ never reads files.
"""

import os
import re

_TRACEBACK = "Traceback (most recent call last)"
# Launchers that re-raise a worker's failure as their own exception: the worker's traceback is the cause.
_WRAPPERS = ("ChildFailedError", "CalledProcessError")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TAIL_WINDOW = 4 * 1024 * 1024
_TAIL_LINE = 400


def _cause_start(data: list):
    """Index of the traceback to show: the last one that is not a launcher wrapper's."""
    starts = [i for i, line in enumerate(data) if _TRACEBACK in line]
    for n in range(len(starts) - 1, -1, -1):
        end = starts[n + 1] if n + 1 < len(starts) else len(data)
        if not any(w in line for line in data[starts[n]:end] for w in _WRAPPERS):
            return starts[n]
    return starts[-1] if starts else None


def tail_text(path: str, lines: int) -> str:
    """The last `lines` lines of `path`, starting at the last Python traceback
    when there is one, so a crash's cause is in view without the noise.

    Built for long training logs: only the last 4 MiB are read; progress bars
    redrawn with carriage returns count as separate lines; colour codes are
    stripped and very long lines clipped; a traceback prefixed per rank
    (`[rank0]: Traceback ...`) counts; and when the last traceback is a
    launcher's wrapper (torchrun's ChildFailedError, accelerate's
    CalledProcessError), the display starts at the worker's traceback before it.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - _TAIL_WINDOW))
        data = f.read().decode("utf-8", "replace").splitlines()
    if size > _TAIL_WINDOW:
        data = data[1:]
    data = [_clip_line(_ANSI.sub("", line)) for line in data]
    start = _cause_start(data)
    chosen = data[start:] if start is not None else data
    if len(chosen) > lines:
        keep_head = min(10, lines // 4) if start is not None else 0
        cut = len(chosen) - lines + keep_head
        chosen = chosen[:keep_head] + [f"... ({cut} lines cut) ..."] + chosen[-(lines - keep_head):]
    return "\n".join(chosen)


def _clip_line(line: str) -> str:
    """A log line cut at _TAIL_LINE characters; unlike text.clip it keeps the line's spacing."""
    return line if len(line) <= _TAIL_LINE else line[:_TAIL_LINE - 1] + "…"
