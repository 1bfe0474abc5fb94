"""One reading of a report file: the `Reading` every source kind returns,
and the checks they share (inside the repository after symlinks, written
by this trial, parsed, a finite number). Used by sources.py (the single-file
kinds) and trackers.py (Hugging Face, W&B, TensorBoard folders)."""

from __future__ import annotations


import glob
import json
import math
import os
import re

from ..core import record
from . import metrics


MTIME_SLACK = 0.05
"""Seconds of grace for file timestamps against `since` (see module doc)."""


OK, MISSING, STALE, CORRUPT, NOT_FINITE = "ok", "missing", "stale", "corrupt", "not-finite"


class Reading(record.Record):
    """One attempt to read the metric.

    `value` is a finite float exactly when `status` is `ok`, else None.
    `detail` is one line for the user; `path` is the file read (or that would
    have been), relative to the repository root, or None.
    """

    value: float | None
    status: str
    detail: str
    path: str | None = None


class Outcome(Exception):
    """A non-ok reading, raised deep inside a reader and returned at the top."""

    def __init__(self, status: str, detail: str, path: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.path = status, detail, path


def resolve(repo_root: str, rel: str):
    """(absolute real path, display path) of `rel`; Outcome if it leaves the root."""
    root = os.path.realpath(repo_root)
    full = os.path.realpath(os.path.join(root, rel))
    if full != root and not full.startswith(root.rstrip(os.sep) + os.sep):
        raise Outcome(MISSING, f"{rel} resolves outside the repository; not read", rel)
    return full, os.path.relpath(full, root).replace(os.sep, "/")


def is_fresh(st: os.stat_result, since: float) -> bool:
    if st.st_mtime_ns % 1_000_000_000 == 0:
        since = math.floor(since)
    return st.st_mtime_ns / 1e9 >= since - MTIME_SLACK


def ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def stat_file(full: str, display: str) -> os.stat_result:
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise Outcome(MISSING, f"{display} does not exist (the trial did not write it)", display)
    except OSError as e:
        raise Outcome(MISSING, f"cannot read {display}: {e.strerror}", display)
    if not os.path.isfile(full):
        raise Outcome(MISSING, f"{display} is not a file", display)
    return st


def check_fresh(st: os.stat_result, display: str, since: float) -> None:
    if not is_fresh(st, since):
        raise Outcome(STALE, f"{display} was last written {ago(since - st.st_mtime)} before this "
                              f"trial started; the trial did not write it", display)


def read_fresh_text(full: str, display: str, since: float) -> str:
    """The text of a file this trial wrote; Outcome for missing/stale/undecodable."""
    check_fresh(stat_file(full, display), display, since)
    try:
        with open(full, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Outcome(MISSING, f"cannot read {display}: {e.strerror}", display)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise Outcome(CORRUPT, f"{display} is not UTF-8 text (byte {e.start})", display)


def parse_json(text: str, display: str, what: str = ""):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        where = f"{what} of " if what else ""
        raise Outcome(CORRUPT, f"{where}{display} is not valid JSON: {short(e)}", display)


def short(e: Exception) -> str:
    return str(e).splitlines()[0][:120] if str(e) else type(e).__name__


ABSENT = object()


def lookup(obj, key: str):
    """obj[key] with dotted descent; the longest literal key wins; ABSENT if none."""
    if isinstance(obj, dict) and key in obj:
        return obj[key]
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head, tail = ".".join(parts[:cut]), ".".join(parts[cut:])
        if isinstance(obj, dict) and head in obj:
            found = lookup(obj[head], tail)
        elif isinstance(obj, list) and re.fullmatch(r"-?\d+", head) and -len(obj) <= int(head) < len(obj):
            found = lookup(obj[int(head)], tail)
        else:
            continue
        if found is not ABSENT:
            return found
    if isinstance(obj, list) and re.fullmatch(r"-?\d+", key) and -len(obj) <= int(key) < len(obj):
        return obj[int(key)]
    return ABSENT


def as_number(value):
    """A JSON number or numeric string as float, read by the same rules as a
    printed number (metrics.number); None for anything else or a refusal."""
    if not isinstance(value, (int, float, str)):
        return None
    try:
        return metrics.number(value)
    except (ValueError, OverflowError):
        return None


def finish_reading(raw, what: str, display: str) -> Reading:
    """Turn the raw value found for `what` into a Reading."""
    if raw is None:
        raise Outcome(MISSING, f"{what} is null in {display}", display)
    try:
        value = metrics.number(raw) if isinstance(raw, (int, float, str)) else None
    except (ValueError, OverflowError) as e:
        raise Outcome(CORRUPT, f"{what} in {display}: {e}", display) from None
    if value is None:
        raise Outcome(CORRUPT, f"{what} in {display} is not a number: {str(raw)[:60]!r}", display)
    if not math.isfinite(value):
        raise Outcome(NOT_FINITE, f"{what} in {display} is {value}", display)
    return Reading(value, OK, f"{what} = {value!r} from {display}", display)


def keys_hint(obj) -> str:
    if isinstance(obj, dict) and obj:
        keys = list(obj)
        more = f", ... ({len(keys)} keys)" if len(keys) > 12 else ""
        return f" (it has: {', '.join(map(str, keys[:12]))}{more})"
    return ""


def newest(repo_root: str, folder: str, display: str, patterns, what: str):
    """(full, display) of the most recently written file matching `patterns`."""
    found = []
    for pattern in patterns:
        for hit in glob.glob(os.path.join(glob.escape(folder), pattern)):
            try:
                rel = os.path.relpath(hit, os.path.realpath(repo_root))
                full, shown = resolve(repo_root, rel)
                found.append((os.stat(full).st_mtime_ns, shown, full))
            except (OSError, Outcome):
                continue
    if not found:
        raise Outcome(MISSING, f"no {what} under {display}", display)
    _, shown, full = max(found)
    return full, shown
