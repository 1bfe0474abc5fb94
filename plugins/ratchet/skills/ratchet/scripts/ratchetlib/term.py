"""Terminal habits shared by every verb that prints: colour only for people.

Output goes to two kinds of readers. An agent (Claude Code's Bash tool, a
pipe, a log file) reads plain, concise lines; a person at a terminal gets a
little colour. So escape sequences are written only when the stream is a
terminal, `NO_COLOR` is not set (any value, even empty, turns colour off) and
`TERM` is not `dumb`. The heartbeat (heartbeat.py) follows the same rule for
its live line.
"""

import os
import sys

_CODES = {"ok": "32", "warn": "33", "fail": "1;31", "dim": "2", "bold": "1"}


def isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def escapes_allowed(environ=None) -> bool:
    """Whether the environment allows escape sequences at all."""
    env = os.environ if environ is None else environ
    return "NO_COLOR" not in env and env.get("TERM") != "dumb"


def use_color(stream=None, environ=None) -> bool:
    """Colour for `stream` (default stdout): a terminal, and allowed."""
    return isatty(sys.stdout if stream is None else stream) and escapes_allowed(environ)


def paint(text: str, style: str, on: bool) -> str:
    """`text` in `style` (ok, warn, fail, dim, bold) when `on`, else as is."""
    return f"\x1b[{_CODES[style]}m{text}\x1b[0m" if on and style in _CODES else text


def can_encode(text: str, stream=None) -> bool:
    """Whether `stream` (default stdout) can print `text` (block characters
    on a latin-1 or ASCII console cannot); an in-memory stream can."""
    enc = getattr(sys.stdout if stream is None else stream, "encoding", None)
    if not enc:
        return True
    try:
        text.encode(enc)
        return True
    except (UnicodeEncodeError, LookupError):
        return False
