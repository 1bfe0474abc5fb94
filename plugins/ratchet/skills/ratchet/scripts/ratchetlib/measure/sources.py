"""Metric sources: read the score from the files trainers already write.

The `--report-source` grammar and its parser live in core/source.py; this
module reads what a parsed `Source` names, after a trial.


Where each kind looks, given PATH:

- `hf`: the file itself, or in a folder the most recently written of
  `trainer_state.json` and `checkpoint-*/trainer_state.json`. `@last` (the
  default) takes the last `log_history` entry that has KEY, `@best` the best
  one in the run's direction. A KEY no entry has is retried as `eval_KEY`, so
  `hf:out#loss` finds `eval_loss`.
- `wandb`: a run folder (`run-*`, `offline-run-*`), or a `wandb/` folder
  (its `latest-run` link, else the newest run by the timestamp in its name),
  or a folder holding `wandb/` or `.wandb/`; the value is read from the
  run's `files/wandb-summary.json`.
- `tensorboard`: every event file the glob matches (a folder, or a glob match
  that is a folder, is searched recursively for `events.out.tfevents.*`); the
  value is the TAG scalar with the latest wall time across the files this
  trial wrote. Both `simple_value` and tensor-encoded scalars (float, double,
  half, bfloat16) count.
- `lightning`: the file itself, or in a folder the most recently written of
  `metrics.csv`, `version_*/metrics.csv` and `*/version_*/metrics.csv`.

Freshness: an old file is never read as a new result. A file whose
modification time is before `since` (the trial's start) reads as `stale`; for
folder kinds that is the file chosen in the newest run folder, and a W&B run
folder whose name says it was created before the trial is stale as well.
Timestamps get `MTIME_SLACK` of grace because the kernel stamps files from a
coarse clock that lags `time.time()` by up to a tick (~7 ms measured here);
on filesystems with whole-second timestamps the comparison is made at
whole-second precision.

`read_metric` never raises on file content: every outcome is a `Reading`.
"""

import calendar
import csv
import dataclasses
import glob
import io
import json
import math
import os
import posixpath
import re
import time
from typing import Optional

from ..core.sourcespec import SINGLE_FILE, Source
from . import metrics
from .tfevents import TFRecordError, read_tfevents_scalars

MTIME_SLACK = 0.05
"""Seconds of grace for file timestamps against `since` (see module doc)."""

OK, MISSING, STALE, CORRUPT, NOT_FINITE = "ok", "missing", "stale", "corrupt", "not-finite"


@dataclasses.dataclass(frozen=True)
class Reading:
    """One attempt to read the metric.

    `value` is a finite float exactly when `status` is `ok`, else None.
    `detail` is one line for the user; `path` is the file read (or that would
    have been), relative to the repository root, or None.
    """

    value: Optional[float]
    status: str
    detail: str
    path: Optional[str] = None


# --------------------------------------------------------------- clearing


def paths_to_clear(source: Source, repo_root: str) -> list:
    """Existing files (repo-relative) to move aside before a trial.

    Only a source that names one file exactly (text, json, jsonl, csv, and
    lightning given the metrics.csv itself) is listed: with that file gone, an
    old result cannot be read even when timestamps are coarse or skewed.
    Folder and glob sources (hf given a folder, wandb, tensorboard, lightning
    given a log folder) list nothing: trainers write a fresh run folder or
    event file per run, moving a user's whole log tree aside would be
    invasive, and the mtime / fresh-run-folder rule of `read_metric` already
    refuses anything written before the trial. `hf` lists nothing even for an
    exact file because `trainer_state.json` inside a checkpoint is what
    `resume_from_checkpoint` reads back.
    """
    if source.kind not in SINGLE_FILE or source.path is None:
        return []
    try:
        full, _ = _resolve(repo_root, source.path)
    except _Outcome:
        return []
    return [source.path] if os.path.isfile(full) else []


# --------------------------------------------------------------- reading


class _Outcome(Exception):
    """A non-ok reading, raised deep inside a reader and returned at the top."""

    def __init__(self, status: str, detail: str, path: Optional[str] = None):
        super().__init__(detail)
        self.status, self.detail, self.path = status, detail, path


def read_metric(source: Source, repo_root: str, key_default: str, *,
                since: float, direction: str) -> Reading:
    """Read the metric a trial that started at `since` left in `source`.

    Never raises on file content; raises ValueError only when called for a
    stream or text source, or with a direction other than max/min.
    """
    if not source.structured:
        raise ValueError(f"report source '{source.spec or source.kind}' is read by the core extractor")
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be max or min, not {direction!r}")
    key = source.key or key_default
    try:
        return _READERS[source.kind](source, repo_root, key, since, direction)
    except _Outcome as o:
        return Reading(None, o.status, o.detail, o.path)


def _resolve(repo_root: str, rel: str):
    """(absolute real path, display path) of `rel`; _Outcome if it leaves the root."""
    root = os.path.realpath(repo_root)
    full = os.path.realpath(os.path.join(root, rel))
    if full != root and not full.startswith(root.rstrip(os.sep) + os.sep):
        raise _Outcome(MISSING, f"{rel} resolves outside the repository; not read", rel)
    return full, os.path.relpath(full, root).replace(os.sep, "/")


def _is_fresh(st: os.stat_result, since: float) -> bool:
    if st.st_mtime_ns % 1_000_000_000 == 0:
        since = math.floor(since)
    return st.st_mtime_ns / 1e9 >= since - MTIME_SLACK


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _stat_file(full: str, display: str) -> os.stat_result:
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise _Outcome(MISSING, f"{display} does not exist (the trial did not write it)", display)
    except OSError as e:
        raise _Outcome(MISSING, f"cannot read {display}: {e.strerror}", display)
    if not os.path.isfile(full):
        raise _Outcome(MISSING, f"{display} is not a file", display)
    return st


def _check_fresh(st: os.stat_result, display: str, since: float) -> None:
    if not _is_fresh(st, since):
        raise _Outcome(STALE, f"{display} was last written {_ago(since - st.st_mtime)} before this "
                              f"trial started; the trial did not write it", display)


def _read_fresh_text(full: str, display: str, since: float) -> str:
    """The text of a file this trial wrote; _Outcome for missing/stale/undecodable."""
    _check_fresh(_stat_file(full, display), display, since)
    try:
        with open(full, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _Outcome(MISSING, f"cannot read {display}: {e.strerror}", display)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _Outcome(CORRUPT, f"{display} is not UTF-8 text (byte {e.start})", display)


def _parse_json(text: str, display: str, what: str = ""):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        where = f"{what} of " if what else ""
        raise _Outcome(CORRUPT, f"{where}{display} is not valid JSON: {_short(e)}", display)


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:120] if str(e) else type(e).__name__


_ABSENT = object()


def _lookup(obj, key: str):
    """obj[key] with dotted descent; the longest literal key wins; _ABSENT if none."""
    if isinstance(obj, dict) and key in obj:
        return obj[key]
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head, tail = ".".join(parts[:cut]), ".".join(parts[cut:])
        if isinstance(obj, dict) and head in obj:
            found = _lookup(obj[head], tail)
        elif isinstance(obj, list) and re.fullmatch(r"-?\d+", head) and -len(obj) <= int(head) < len(obj):
            found = _lookup(obj[int(head)], tail)
        else:
            continue
        if found is not _ABSENT:
            return found
    if isinstance(obj, list) and re.fullmatch(r"-?\d+", key) and -len(obj) <= int(key) < len(obj):
        return obj[int(key)]
    return _ABSENT


def _number(value):
    """A JSON number or numeric string as float, read by the same rules as a
    printed number (metrics.number); None for anything else or a refusal."""
    if not isinstance(value, (int, float, str)):
        return None
    try:
        return metrics.number(value)
    except (ValueError, OverflowError):
        return None


def _finish(raw, what: str, display: str) -> Reading:
    """Turn the raw value found for `what` into a Reading."""
    if raw is None:
        raise _Outcome(MISSING, f"{what} is null in {display}", display)
    try:
        value = metrics.number(raw) if isinstance(raw, (int, float, str)) else None
    except (ValueError, OverflowError) as e:
        raise _Outcome(CORRUPT, f"{what} in {display}: {e}", display) from None
    if value is None:
        raise _Outcome(CORRUPT, f"{what} in {display} is not a number: {str(raw)[:60]!r}", display)
    if not math.isfinite(value):
        raise _Outcome(NOT_FINITE, f"{what} in {display} is {value}", display)
    return Reading(value, OK, f"{what} = {value!r} from {display}", display)


def _keys_hint(obj) -> str:
    if isinstance(obj, dict) and obj:
        keys = list(obj)
        more = f", ... ({len(keys)} keys)" if len(keys) > 12 else ""
        return f" (it has: {', '.join(map(str, keys[:12]))}{more})"
    return ""


# json ------------------------------------------------------------------


def _read_json(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = _resolve(repo_root, source.path)
    doc = _parse_json(_read_fresh_text(full, display, since), display)
    raw = _lookup(doc, key)
    if raw is _ABSENT:
        raise _Outcome(MISSING, f"no key '{key}' in {display}{_keys_hint(doc)}", display)
    return _finish(raw, f"'{key}'", display)


# jsonl -----------------------------------------------------------------


def _read_jsonl(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    """The last record with a non-null KEY; lines after it must parse.

    An unterminated last line that does not parse is a torn write and is
    ignored; any other line that does not parse makes the file corrupt.
    """
    full, display = _resolve(repo_root, source.path)
    text = _read_fresh_text(full, display, since)
    lines = text.split("\n")
    note = ""
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as e:
            if i == len(lines) - 1:
                note = " (ignored a torn last line)"
                continue
            raise _Outcome(CORRUPT, f"line {i + 1} of {display} is not valid JSON: {_short(e)}", display)
        raw = _lookup(record, key)
        if raw is not _ABSENT and raw is not None:
            reading = _finish(raw, f"'{key}' (line {i + 1})", display)
            return dataclasses.replace(reading, detail=reading.detail + note)
    raise _Outcome(MISSING, f"no record in {display} has '{key}'{note}", display)


# csv and lightning -----------------------------------------------------


def _csv_last(text: str, column: str, display: str) -> Reading:
    """The last row with a non-empty `column`.

    An unterminated last row with the wrong number of fields is a torn write
    and is ignored; a wrong field count anywhere else, or a quote left open,
    makes the file corrupt.
    """
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as e:
        raise _Outcome(CORRUPT, f"{display} is not valid CSV: {_short(e)}", display)
    rows = [(n, r) for n, r in enumerate(rows, 1) if r]
    if not rows:
        raise _Outcome(MISSING, f"{display} is empty", display)
    header = rows[0][1]
    if column not in header:
        raise _Outcome(MISSING, f"no column '{column}' in {display} (it has: {', '.join(header)})", display)
    body, note = rows[1:], ""
    if body and not text.endswith(("\n", "\r")) and len(body[-1][1]) != len(header):
        body, note = body[:-1], " (ignored a torn last row)"
    for n, row in body:
        if len(row) != len(header):
            raise _Outcome(CORRUPT, f"row {n} of {display} has {len(row)} fields, the header {len(header)}",
                           display)
    col = header.index(column)
    for n, row in reversed(body):
        if row[col].strip():
            reading = _finish(row[col], f"'{column}' (row {n})", display)
            return dataclasses.replace(reading, detail=reading.detail + note)
    raise _Outcome(MISSING, f"no row of {display} has a value for '{column}'{note}", display)


def _read_csv(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = _resolve(repo_root, source.path)
    return _csv_last(_read_fresh_text(full, display, since), key, display)


def _read_lightning(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = _resolve(repo_root, source.path)
    if os.path.isdir(full):
        full, display = _newest(repo_root, full, display,
                                ("metrics.csv", "version_*/metrics.csv", "*/version_*/metrics.csv"),
                                "Lightning metrics.csv")
    return _csv_last(_read_fresh_text(full, display, since), key, display)


def _newest(repo_root: str, folder: str, display: str, patterns, what: str):
    """(full, display) of the most recently written file matching `patterns`."""
    found = []
    for pattern in patterns:
        for hit in glob.glob(os.path.join(glob.escape(folder), pattern)):
            try:
                rel = os.path.relpath(hit, os.path.realpath(repo_root))
                full, shown = _resolve(repo_root, rel)
                found.append((os.stat(full).st_mtime_ns, shown, full))
            except (OSError, _Outcome):
                continue
    if not found:
        raise _Outcome(MISSING, f"no {what} under {display}", display)
    _, shown, full = max(found)
    return full, shown


# hf --------------------------------------------------------------------


def _read_hf(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = _resolve(repo_root, source.path)
    if os.path.isdir(full):
        full, display = _newest(repo_root, full, display,
                                ("trainer_state.json", "checkpoint-*/trainer_state.json"),
                                "trainer_state.json")
    state = _parse_json(_read_fresh_text(full, display, since), display)
    history = state.get("log_history", _ABSENT) if isinstance(state, dict) else _ABSENT
    if history is _ABSENT:
        raise _Outcome(MISSING, f"{display} has no log_history; is it a Trainer trainer_state.json?", display)
    if not isinstance(history, list):
        raise _Outcome(CORRUPT, f"log_history in {display} is not a list", display)
    entries = _hf_entries(history, key)
    if not entries and not key.startswith("eval_"):
        key, entries = "eval_" + key, _hf_entries(history, "eval_" + key)
    if not entries:
        raise _Outcome(MISSING, f"no log_history entry in {display} has '{key}'", display)
    if source.pick == "last":
        i, raw = entries[-1]
        return _finish(raw, f"last '{key}' (log_history[{i}])", display)
    return _hf_best(entries, key, direction, display)


def _hf_entries(history: list, key: str) -> list:
    return [(i, e[key]) for i, e in enumerate(history)
            if isinstance(e, dict) and e.get(key) is not None]


def _hf_best(entries: list, key: str, direction: str, display: str) -> Reading:
    numbers = []
    for i, raw in entries:
        value = _number(raw)
        if value is None:
            raise _Outcome(CORRUPT, f"'{key}' in log_history[{i}] of {display} is not a number", display)
        numbers.append((value, i))
    finite = [(v, i) for v, i in numbers if math.isfinite(v)]
    if not finite:
        raise _Outcome(NOT_FINITE, f"every '{key}' in {display} is nan or inf", display)
    pick = max if direction == "max" else min
    value, i = pick(finite, key=lambda vi: vi[0])
    return Reading(value, OK, f"best '{key}' = {value!r} (log_history[{i}], of {len(finite)}) from {display}",
                   display)


# wandb -----------------------------------------------------------------

_RUN_DIR = re.compile(r"(?:offline-)?run-(\d{8}_\d{6})-[^/]+\Z")


def _read_wandb(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = _resolve(repo_root, source.path)
    if not os.path.isdir(full):
        raise _Outcome(MISSING, f"{display} is not a folder (want a W&B run folder or a wandb/ folder)",
                       display)
    run_full, run_display = _wandb_run(repo_root, full, display)
    _check_run_folder_time(run_full, run_display, since)
    summary_full = os.path.join(run_full, "files", "wandb-summary.json")
    summary_display = f"{run_display}/files/wandb-summary.json"
    summary = _parse_json(_read_fresh_text(summary_full, summary_display, since), summary_display)
    raw = _lookup(summary, key)
    if raw is _ABSENT:
        raise _Outcome(MISSING, f"no key '{key}' in {summary_display}{_keys_hint(summary)}", summary_display)
    return _finish(raw, f"'{key}'", summary_display)


def _wandb_run(repo_root: str, full: str, display: str):
    """(full, display) of the run folder that DIR designates."""
    if _RUN_DIR.search(os.path.basename(full)) or os.path.isfile(
            os.path.join(full, "files", "wandb-summary.json")):
        return full, display
    root = os.path.realpath(repo_root)
    if os.path.isdir(os.path.join(full, "latest-run")):
        return _resolve(repo_root, os.path.relpath(os.path.join(full, "latest-run"), root))
    runs = _run_folders(full)
    if runs:
        name = max(runs, key=lambda n: (_RUN_DIR.search(n).group(1), _mtime(os.path.join(full, n)), n))
        return _resolve(repo_root, os.path.relpath(os.path.join(full, name), root))
    for sub in ("wandb", ".wandb"):
        if os.path.isdir(os.path.join(full, sub)):
            return _wandb_run(repo_root, os.path.join(full, sub), f"{display}/{sub}")
    raise _Outcome(MISSING, f"no W&B run folder (run-*, offline-run-*) in {display}", display)


def _run_folders(folder: str) -> list:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [n for n in names if _RUN_DIR.search(n) and os.path.isdir(os.path.join(folder, n))]


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _check_run_folder_time(run_full: str, run_display: str, since: float) -> None:
    """Stale when the run folder's name says it was created before `since`.

    W&B stamps the name with the local start time to the second. The stamp is
    read both as local time and as UTC and the folder is stale only when both
    readings predate the trial, so a writer that used the other convention can
    never make a fresh run look old (in zones east of UTC that costs the check
    its precision for runs less than the zone offset old; the summary's own
    mtime still applies).
    """
    m = _RUN_DIR.search(os.path.basename(run_full))
    if not m:
        return
    try:
        parsed = time.strptime(m.group(1), "%Y%m%d_%H%M%S")
    except ValueError:
        return
    local, utc = time.mktime(parsed), calendar.timegm(parsed)
    if max(local, utc) < math.floor(since) - MTIME_SLACK:
        raise _Outcome(STALE, f"the newest W&B run {run_display} started {_ago(since - max(local, utc))} "
                              f"before this trial; the trial started no run", run_display)


# tensorboard -----------------------------------------------------------


def _read_tensorboard(source: Source, repo_root: str, tag: str, since: float, direction: str) -> Reading:
    files = _event_files(repo_root, source.path)
    if not files:
        raise _Outcome(MISSING, f"no TensorBoard event files match {source.path}", source.path)
    fresh = [(st.st_mtime_ns, shown, full) for st, shown, full in files if _is_fresh(st, since)]
    if not fresh:
        newest = max(files, key=lambda f: f[0].st_mtime_ns)
        raise _Outcome(STALE, f"all {len(files)} event files matching {source.path} predate this trial "
                              f"(newest: {newest[1]}, {_ago(since - newest[0].st_mtime)} before)", newest[1])
    best, notes = None, []
    for order, (_, shown, full) in enumerate(sorted(fresh)):
        try:
            scalars, note = read_tfevents_scalars(full, tag)
        except TFRecordError as e:
            raise _Outcome(CORRUPT, f"{shown}: {e}", shown)
        except OSError as e:
            raise _Outcome(MISSING, f"cannot read {shown}: {e.strerror}", shown)
        if note:
            notes.append(f"{shown}: {note}")
        for index, (wall_time, step, value) in enumerate(scalars):
            candidate = ((wall_time, step, order, index), value, step, shown)
            if best is None or candidate[0] > best[0]:
                best = candidate
    note = f" ({'; '.join(notes)})" if notes else ""
    if best is None:
        raise _Outcome(MISSING, f"no scalar '{tag}' in {len(fresh)} fresh event file(s) matching "
                                f"{source.path}{note}", source.path)
    _, value, step, shown = best
    reading = _finish(value, f"'{tag}' (step {step})", shown)
    return dataclasses.replace(reading, detail=reading.detail + note)


def _event_files(repo_root: str, pattern: str) -> list:
    """[(stat, display, full)] of event files the pattern designates, inside the root."""
    root = os.path.realpath(repo_root)
    hits = glob.glob(pattern, root_dir=root, recursive=True) if _has_magic(pattern) else [pattern]
    found = {}
    for hit in hits:
        if os.path.isdir(os.path.join(root, hit)):
            inner = glob.glob(posixpath.join(glob.escape(hit), "**", "events.out.tfevents.*"),
                              root_dir=root, recursive=True)
        else:
            inner = [hit]
        for rel in inner:
            try:
                full, shown = _resolve(root, rel)
                st = os.stat(full)
            except (_Outcome, OSError):
                continue
            if os.path.isfile(full):
                found[full] = (st, shown, full)
    return list(found.values())


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


_READERS = {
    "json": _read_json,
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "hf": _read_hf,
    "wandb": _read_wandb,
    "tensorboard": _read_tensorboard,
    "lightning": _read_lightning,
}
