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


import io
import json
import os

from ..core import record
from ..core.sourcespec import SINGLE_FILE, Source
from .reading import (
    CORRUPT, MISSING, Outcome, Reading, ABSENT, newest,
    finish_reading, keys_hint, lookup, parse_json, read_fresh_text, resolve,
    short,
)
from .trackers import read_hf, read_tensorboard, read_wandb


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
        full, _ = resolve(repo_root, source.path)
    except Outcome:
        return []
    return [source.path] if os.path.isfile(full) else []


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
    except Outcome as o:
        return Reading(None, o.status, o.detail, o.path)


def _read_json(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = resolve(repo_root, source.path)
    doc = parse_json(read_fresh_text(full, display, since), display)
    raw = lookup(doc, key)
    if raw is ABSENT:
        raise Outcome(MISSING, f"no key '{key}' in {display}{keys_hint(doc)}", display)
    return finish_reading(raw, f"'{key}'", display)


def _read_jsonl(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    """The last record with a non-null KEY; lines after it must parse.

    An unterminated last line that does not parse is a torn write and is
    ignored; any other line that does not parse makes the file corrupt.
    """
    full, display = resolve(repo_root, source.path)
    text = read_fresh_text(full, display, since)
    lines = text.split("\n")
    note = ""
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError) as e:
            if i == len(lines) - 1:
                note = " (ignored a torn last line)"
                continue
            raise Outcome(CORRUPT, f"line {i + 1} of {display} is not valid JSON: {short(e)}", display)
        raw = lookup(entry, key)
        if raw is not ABSENT and raw is not None:
            reading = finish_reading(raw, f"'{key}' (line {i + 1})", display)
            return record.replace(reading, detail=reading.detail + note)
    raise Outcome(MISSING, f"no record in {display} has '{key}'{note}", display)


def _csv_last(text: str, column: str, display: str) -> Reading:
    """The last row with a non-empty `column`.

    An unterminated last row with the wrong number of fields is a torn write
    and is ignored; a wrong field count anywhere else, or a quote left open,
    makes the file corrupt.
    """
    import csv  # only a csv: source reads it (every iterate imports this module)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as e:
        raise Outcome(CORRUPT, f"{display} is not valid CSV: {short(e)}", display)
    rows = [(n, r) for n, r in enumerate(rows, 1) if r]
    if not rows:
        raise Outcome(MISSING, f"{display} is empty", display)
    header = rows[0][1]
    if column not in header:
        raise Outcome(MISSING, f"no column '{column}' in {display} (it has: {', '.join(header)})", display)
    body, note = rows[1:], ""
    if body and not text.endswith(("\n", "\r")) and len(body[-1][1]) != len(header):
        body, note = body[:-1], " (ignored a torn last row)"
    for n, row in body:
        if len(row) != len(header):
            raise Outcome(CORRUPT, f"row {n} of {display} has {len(row)} fields, the header {len(header)}",
                           display)
    col = header.index(column)
    for n, row in reversed(body):
        if row[col].strip():
            reading = finish_reading(row[col], f"'{column}' (row {n})", display)
            return record.replace(reading, detail=reading.detail + note)
    raise Outcome(MISSING, f"no row of {display} has a value for '{column}'{note}", display)


def _read_csv(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = resolve(repo_root, source.path)
    return _csv_last(read_fresh_text(full, display, since), key, display)


def _read_lightning(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = resolve(repo_root, source.path)
    if os.path.isdir(full):
        full, display = newest(repo_root, full, display,
                                ("metrics.csv", "version_*/metrics.csv", "*/version_*/metrics.csv"),
                                "Lightning metrics.csv")
    return _csv_last(read_fresh_text(full, display, since), key, display)


_READERS = {
    "json": _read_json,
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "hf": read_hf,
    "wandb": read_wandb,
    "tensorboard": read_tensorboard,
    "lightning": _read_lightning,
}
