"""Terminal habits shared by every verb that prints: colour only for people.

Output goes to two kinds of readers. An agent (Claude Code's Bash tool, a
pipe, a log file) reads plain, concise lines; a person at a terminal gets a
little colour. So escape sequences are written only when the stream is a
terminal, `NO_COLOR` is not set (any value, even empty, turns colour off) and
`TERM` is not `dumb`. The heartbeat (heartbeat.py) follows the same rule for
its live line.
"""

import os
import re
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


# What a terminal (or a bidi-aware viewer) would act on instead of showing:
# C0 controls and DEL (ESC starts every escape sequence, BEL ends OSC 52
# clipboard writes, CR rewrites the line), C1 controls (U+0080-009F, CSI and
# OSC in one character), the bidi embeddings, overrides and isolates
# (U+202A-202E, U+2066-2069) and marks (U+200E, U+200F, U+061C) that reorder
# what a reader sees, and lone surrogates (a non-UTF-8 byte of a file name
# read with surrogateescape), which cannot even be encoded for printing.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_PATTERNS = {}  # multiline -> the compiled class: built on first use (~0.8 ms, and most text needs none)
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _visible(m: "re.Match") -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # surrogateescape: show the original byte
        return f"\\x{n - 0xDC00:02x}"
    return f"\\x{n:02x}" if n <= 0xFF else f"\\u{n:04x}"


def printable(text, multiline: bool = True) -> str:
    """`text` made safe to show a person: every character a terminal would
    obey rather than display (see _UNSAFE) is written as visible text
    (ESC -> `\\x1b`, U+202E -> `\\u202e`, CR -> `\\r`), never dropped, so a
    reader sees that something was there. Newline and tab stay when the text
    is `multiline` (a verdict, a log tail). This is the one sanitiser for text
    that came from the agent or a benchmark: every human-readable output
    (the CLI's printed text, the report files, the commit messages ratchet
    writes) passes through it; JSON output keeps the original text."""
    text = str(text)
    # Every unsafe character is one str.isprintable() refuses (categories
    # Cc, Cf, Cs), so printable text, newlines and tabs aside, has none.
    if (text.replace("\n", "").replace("\t", "") if multiline else text).isprintable():
        return text
    pattern = _PATTERNS.get(multiline)
    if pattern is None:
        pattern = _PATTERNS[multiline] = re.compile(f"[{_UNSAFE}]" if multiline else f"[\t\n{_UNSAFE}]")
    return pattern.sub(_visible, text) if pattern.search(text) else text
