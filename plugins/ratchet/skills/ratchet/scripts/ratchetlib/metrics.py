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
`NAME: value` that straddles two pieces is still found. A value must parse as a finite float:
`nan` and `inf` are reported as `not-finite`, never as a score.
"""

import dataclasses
import json
import math
import re
from typing import Optional

_NUMBER = r"[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:[nN][aA][nN]|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)"
_JSON_LIMIT = 16 * 1024 * 1024
_PIECE = 1 << 20    # longest piece of a line read at once
_OVERLAP = 4096     # bytes a piece of a long line repeats from the one before

OK, MISSING, NOT_FINITE = "ok", "no-metric", "not-finite"


@dataclasses.dataclass(frozen=True)
class Extraction:
    value: Optional[float]
    status: str
    detail: str


def line_regex(name: str) -> "re.Pattern[bytes]":
    return re.compile(rb"(?:^|[\s,;|])(?:METRIC\s+)?" + re.escape(name.encode()) +
                      rb"\s*[:=]\s*(" + _NUMBER.encode() + rb")")


def _mid_regex(name: str) -> "re.Pattern[bytes]":
    """line_regex for a piece that continues a long line: no `^` anchor there."""
    return re.compile(rb"[\s,;|](?:METRIC\s+)?" + re.escape(name.encode()) +
                      rb"\s*[:=]\s*(" + _NUMBER.encode() + rb")")


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


def _to_float(text) -> Optional[float]:
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return float(text)
    try:
        return float(str(text).strip().replace("_", ""))
    except ValueError:
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
    value = _to_float(raw)
    if value is None:
        return Extraction(None, MISSING, f"{how}: {raw!r} is not a number")
    if not math.isfinite(value):
        return Extraction(None, NOT_FINITE, f"{how}: value is {value}")
    return Extraction(value, OK, how)


def extract(path: str, name: str, pattern: Optional[str] = None) -> Extraction:
    """Extract metric `name` from the report file at `path` (see module doc)."""
    line_re, mid_re = line_regex(name), _mid_regex(name)
    pat_re = re.compile(pattern.encode()) if pattern else None
    last_line = last_pat = None
    last_nonempty = b""
    size = 0
    try:
        with open(path, "rb") as f:
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
    except FileNotFoundError:
        return Extraction(None, MISSING, "report file was not written")
    if last_line is not None:
        return _finish(last_line.decode(), f"line '{name}'")
    if last_pat is not None:
        return _finish(last_pat.decode("utf-8", "replace"), "--metric-pattern")
    if size == 0:
        return Extraction(None, MISSING, "report is empty")
    return Extraction(None, MISSING, f"no '{name}: value' line, JSON key or pattern match in the report")
