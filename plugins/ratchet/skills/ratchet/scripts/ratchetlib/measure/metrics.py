"""Read the metric out of a captured report, deterministically.

Rules, in order (the first that finds something wins):
1. a line `NAME: value`, `NAME=value` or `METRIC NAME=value` (the name may
   follow other `key=value` pairs on the line); the LAST such line counts,
   because benchmarks print their final summary last;
2. a JSON object report (the whole report, or its last non-empty line) with
   key NAME, dotted paths allowed (`eval.acc`, `runs.0.ms`);
3. `--metric-pattern REGEX`, when given: the last match's first group.
The report is scanned line by line, so a metric in the middle of gigabytes of
output is found with constant memory; a line longer than 1 MiB (binary
output, progress bars redrawn with carriage returns, no newline at all) is
scanned in 1 MiB pieces that overlap by 4 KiB, so memory stays bounded and a
`NAME: value` that straddles two pieces is still found. A value is read by `number()` or refused,
never guessed (`1,234` is not 1, `0x10` is 16): see its docstring and
FORMATS.md's metric rules; `nan` and `inf` are reported as `not-finite`,
never as a score, and a value beyond MAX_MAGNITUDE as too large.

Speed: since the last line wins and a match needs NAME literally, rule 1 is
found from the end: the file is read backwards in 1 MiB blocks, only lines
that contain NAME (a C-speed `bytes.rfind`) go through the regex, and the
first line from the end that matches is the answer. A metric printed last
costs one block whatever the output size; a metric absent from a flood costs
one pass of `rfind`. Lines are judged exactly as the forward scan (`_scan`)
judges them (a line over 1 MiB is re-read forward in the same pieces), which
still runs when rule 1 finds nothing and a JSON report (up to 16 MiB) or a
`--metric-pattern` must be tried (`bench/extract.py` measures both).
"""

from __future__ import annotations

import json
import math
import os
import re

from ..core import record


# What rule 1 takes as the value: one token that starts like a number (an
# optional sign, U+2212 included, then a digit or `.digit`), with whatever is
# glued to it (a unit, a hex digit, a second point) and any digit groups
# joined by a comma or a space-like separator (`1,234`, `1 234`), so that
# `number()` judges the whole of it instead of the regex reading `1` out of
# `1,234` (issue 14). `nan`/`inf` only as whole words (`info` is no value).
_SEP = rb"(?:,|[ ]|\xc2\xa0|\xe2\x80\x89|\xe2\x80\xaf)"   # comma, space, no-break, thin, narrow no-break
_VALUE = (rb"(?:[-+]|\xe2\x88\x92)?(?:(?:\d|\.\d)[^\s,;|]*(?:,\d[^\s,;|]*|" + _SEP + rb"\d{3}(?!\d)[^\s,;|]*)*"
          rb"|(?i:nan|inf(?:inity)?)(?![\w]))")
MAX_MAGNITUDE = 1e150
"""The largest |value| a metric may have: sums, differences, squares and
means of such values stay finite, so no statistic overflows (issue 14)."""
_JSON_LIMIT = 16 * 1024 * 1024
_PIECE = 1 << 20    # longest piece of a line read at once
_OVERLAP = 4096     # bytes a piece of a long line repeats from the one before

OK, MISSING, NOT_FINITE = "ok", "no-metric", "not-finite"


class Extraction(record.Record):
    value: float | None
    status: str
    detail: str


def line_regex(name: str) -> "re.Pattern[bytes]":
    return re.compile(rb"(?:^|[\s,;|])(?:METRIC\s+)?" + re.escape(name.encode()) +
                      rb"\s*[:=]\s*(" + _VALUE + rb")")


def _mid_regex(name: str) -> "re.Pattern[bytes]":
    """line_regex for a piece that continues a long line: no `^` anchor there."""
    return re.compile(rb"[\s,;|](?:METRIC\s+)?" + re.escape(name.encode()) +
                      rb"\s*[:=]\s*(" + _VALUE + rb")")


def _pieces(f):
    """(bytes, fresh byte count, starts a line) for each line of binary file
    `f`; a line longer than _PIECE comes in overlapping pieces."""
    carry = b""
    while True:
        chunk = f.readline(_PIECE)
        if not chunk:
            return
        yield carry + chunk, len(chunk), not carry
        carry = b"" if chunk.endswith(b"\n") else (carry + chunk)[-(_OVERLAP + 1):]


# Patterns for values float() refuses, compiled on first use (re's cache), not
# at import: most values are plain numbers, and a compile costs every process.
_GROUPED = r"\d{1,3}(?:[ \u00a0\u2009\u202f]\d{3})+(?:\.\d*)?(?:[^\d.].*)?\Z"
_PREFIX = r"(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_UNIT = r"(?:[^\W\d_]|[%\u00b0\u00b5])[\w%\u00b0\u00b5/\u00b2\u00b3\u00b7^*-]*[)\]}'\"]*\Z|[)\]}'\"]+\Z"
_INT_LITERAL = r"0(?:[xX][0-9a-fA-F_]+|[oO][0-7_]+|[bB][01_]+)\Z"
_SPACES = "\u00a0\u2009\u202f "


def number(text) -> float:
    """The value of one number as a benchmark printed it, or ValueError
    naming why it is refused. Read, never guessed (FORMATS.md, metric rules):
    Python's float syntax (`1e5`, `.5`, `1_000`, `nan`), a sign `+`, `-` or
    U+2212 (`−3`), `-0` read as 0, the integer literals `0x10`, `0o17`,
    `0b101`, and a unit glued after the number (`12.3ms`, `45%`) which is
    dropped. Refused: digits joined by a comma (`1,234`: thousands or a
    decimal comma?) or grouped by spaces (`1 234`), anything else glued to
    the number (`12.3.4`, `1e`, `12/100`), and |value| above MAX_MAGNITUDE."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a number")
    if isinstance(text, (int, float)):
        value = float(text) if not isinstance(text, int) or abs(text) < 10 ** 300 else math.copysign(math.inf, text)
    else:
        value = _parse(str(text).strip())
        if math.isinf(value) and not re.fullmatch(r"[-+\u2212]?(?i:inf|infinity)", str(text).strip()):
            raise OverflowError(f"{str(text).strip()[:40]!r} overflows a float")
    if math.isfinite(value) and abs(value) > MAX_MAGNITUDE:
        raise OverflowError(f"{value:g} is too large to compare safely (|value| must be at most {MAX_MAGNITUDE:g}); "
                            f"print the metric in larger units")
    return value + 0.0  # -0.0 reads as 0


def _parse(raw: str) -> float:
    shown = repr(raw[:40])
    sign, body = 1.0, raw
    if body[:1] in "+-\u2212" and body:
        sign, body = (-1.0 if body[0] != "+" else 1.0), body[1:]
    if not body or body[0] in "+-\u2212" or body[0].isspace():
        raise ValueError(f"{shown} is not a number")
    if "," in body and re.search(r"\d,\d", body):
        raise ValueError(f"{shown} has a comma between digits (a thousands separator or a decimal comma?); "
                         f"print the number without separators, e.g. 1234 or 1.234")
    if any(c in body for c in _SPACES):
        if re.match(_GROUPED, body):
            raise ValueError(f"{shown} has its digits grouped by spaces; print the number without separators")
        body = re.split(f"[{_SPACES}]", body, 1)[0]
    try:
        return sign * float(body)
    except ValueError:
        pass
    if re.match(_INT_LITERAL, body):
        try:
            return sign * float(int(body, 0))
        except ValueError:
            raise ValueError(f"{shown} is not a number") from None
    m = re.match(_PREFIX, body)
    rest = body[m.end():] if m else body
    if m and rest and re.match(_UNIT, rest) and not (rest[0] in "eE" and (len(rest) == 1 or rest[1] in "+-0123456789")):
        try:
            return sign * float(m.group())
        except ValueError:
            pass
    raise ValueError(f"{shown} is not a number")


def _to_float(text) -> float | None:
    """number(text), or None when it is refused (callers that only ask)."""
    try:
        return number(text)
    except (ValueError, OverflowError):
        return None


def dotted(obj, path: str):
    """obj['a']['b'][0] for 'a.b.0'; a whole-key match wins over splitting."""
    if isinstance(obj, dict) and path in obj:
        return obj[path]
    head, _, rest = path.partition(".")
    if isinstance(obj, dict) and head in obj:
        nxt = obj[head]
    elif isinstance(obj, list) and head.lstrip("-").isdigit() and -len(obj) <= int(head) < len(obj):
        nxt = obj[int(head)]
    else:
        raise KeyError(path)
    return dotted(nxt, rest) if rest else nxt


def _from_json_text(text: bytes, name: str):
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    try:
        return dotted(obj, name)
    except KeyError:
        return None


def _finish(raw, how: str) -> Extraction:
    try:
        value = number(raw)
    except (ValueError, OverflowError) as e:
        return Extraction(None, MISSING, f"{how}: {e}")
    if not math.isfinite(value):
        return Extraction(None, NOT_FINITE, f"{how}: value is {value}")
    return Extraction(value, OK, how)


def _last_in(pieces, line_re, mid_re, needle: bytes = b"") -> bytes | None:
    """The value of the last rule-1 match in one line's pieces, or None
    (a piece without `needle` cannot match: the regex is not run on it)."""
    found = None
    for line, _, starts in pieces:
        if needle not in line:
            continue
        m = None
        for m in (line_re if starts else mid_re).finditer(line):
            pass
        if m:
            found = m.group(1)
    return found


def _one_line(f, start: int):
    """The pieces of the line that begins at offset `start`, as `_pieces` makes them."""
    f.seek(start)
    for piece in _pieces(f):
        yield piece
        if piece[0].endswith(b"\n"):
            return


def _line_start(f, lo: int, block: bytes, needle: bytes) -> tuple:
    """The line that holds `block` (= bytes [lo, ...), no newline but maybe a
    last one) began before lo or at it: (its start, whether `needle` is in it)."""
    has, keep = needle in block, len(needle) - 1
    tail, pos = block[:keep], lo
    while pos > 0:
        start = max(0, pos - _PIECE)
        f.seek(start)
        b = f.read(pos - start)
        nl = b.rfind(b"\n")
        part = b[nl + 1:]
        has = has or needle in part + tail
        if nl >= 0:
            return start + nl + 1, has
        tail, pos = b[:keep], start
    return 0, has


def _last_line_value(f, size: int, name: str) -> bytes | None:
    """Rule 1 read backwards (module doc): the value of the last `NAME: value`
    line, or None. Same answer as `_scan`, at the cost of the tail only."""
    needle = name.encode()
    line_re, mid_re = line_regex(name), _mid_regex(name)
    hi = size  # every line that starts at or after `hi` holds no match
    while hi > 0:
        lo = max(0, hi - _PIECE)
        f.seek(lo)
        block = f.read(hi - lo)
        cut = block.find(b"\n", 0, len(block) - 1)
        if lo == 0:
            first = 0
        elif cut >= 0:
            first = cut + 1  # the first line that starts inside the block
        else:  # the block is the end of one long line
            start, has = _line_start(f, lo, block, needle)
            found = _last_in(_one_line(f, start), line_re, mid_re, needle) if has else None
            if found is not None:
                return found
            hi = start
            continue
        lines = block[first:]  # whole lines, each at most _PIECE bytes: one piece each
        j = lines.rfind(needle)
        while j >= 0:
            s = lines.rfind(b"\n", 0, j) + 1
            e = lines.find(b"\n", j)
            found = _last_in([(lines[s:len(lines) if e < 0 else e + 1], 0, True)], line_re, mid_re)
            if found is not None:
                return found
            j = lines.rfind(needle, 0, s)
        hi = lo + first
    return None


def extract(path: str, name: str, pattern: str | None = None) -> Extraction:
    """Extract metric `name` from the report file at `path` (see module doc)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            found = _last_line_value(f, size, name) if name else None
            if found is not None:
                return _finish(found.decode("utf-8", "replace"), f"line '{name}'")
            if size == 0:
                return Extraction(None, MISSING, "report is empty")
            if pattern or size <= _JSON_LIMIT or not name:
                f.seek(0)
                return _scan(f, name, pattern)
    except FileNotFoundError:
        return Extraction(None, MISSING, "report file was not written")
    return Extraction(None, MISSING, f"no '{name}: value' line, JSON key or pattern match in the report")


def _scan(f, name: str, pattern: str | None = None) -> Extraction:
    """The forward scan of every line (the rules of the module doc, in order)."""
    line_re, mid_re = line_regex(name), _mid_regex(name)
    pat_re = re.compile(pattern.encode()) if pattern else None
    last_line = last_pat = None
    last_nonempty = b""
    size = 0
    for line, fresh, starts in _pieces(f):
        size += fresh
        m = None
        for m in (line_re if starts else mid_re).finditer(line):
            pass
        if m:
            last_line = m.group(1)
        if pat_re:
            pm = None
            for pm in pat_re.finditer(line):
                pass
            if pm:
                last_pat = pm.group(1)
        if line.strip():
            last_nonempty = line
    if last_line is None and 0 < size <= _JSON_LIMIT:
        f.seek(0)
        found = _from_json_text(f.read(), name)
        if found is None and last_nonempty.lstrip().startswith(b"{"):
            found = _from_json_text(last_nonempty, name)
        if found is not None:
            return _finish(found, f"JSON key {name}")
    if last_line is not None:
        return _finish(last_line.decode("utf-8", "replace"), f"line '{name}'")
    if last_pat is not None:
        return _finish(last_pat.decode("utf-8", "replace"), "--metric-pattern")
    if size == 0:
        return Extraction(None, MISSING, "report is empty")
    return Extraction(None, MISSING, f"no '{name}: value' line, JSON key or pattern match in the report")
