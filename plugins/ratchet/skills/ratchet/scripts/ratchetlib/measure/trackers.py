"""The tracker folders: Hugging Face Trainer state, Weights & Biases run
folders and TensorBoard event files. Each reader finds the newest file this
trial wrote in the folder layout its tracker uses and reads the metric from
it (the freshness rules are in sources.py's docstring)."""


import glob
import math
import os
import posixpath
import re
import time


from ..core import record
from ..core.sourcespec import Source
from .reading import (
    CORRUPT, MISSING, MTIME_SLACK, NOT_FINITE, OK, Outcome, newest,
    Reading, STALE, ABSENT, ago, as_number,
    finish_reading, is_fresh, keys_hint, lookup, parse_json, read_fresh_text,
    resolve,
)
from .tfevents import TFRecordError, read_tfevents_scalars



def read_hf(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = resolve(repo_root, source.path)
    if os.path.isdir(full):
        full, display = newest(repo_root, full, display,
                                ("trainer_state.json", "checkpoint-*/trainer_state.json"),
                                "trainer_state.json")
    state = parse_json(read_fresh_text(full, display, since), display)
    history = state.get("log_history", ABSENT) if isinstance(state, dict) else ABSENT
    if history is ABSENT:
        raise Outcome(MISSING, f"{display} has no log_history; is it a Trainer trainer_state.json?", display)
    if not isinstance(history, list):
        raise Outcome(CORRUPT, f"log_history in {display} is not a list", display)
    entries = _hf_entries(history, key)
    if not entries and not key.startswith("eval_"):
        key, entries = "eval_" + key, _hf_entries(history, "eval_" + key)
    if not entries:
        raise Outcome(MISSING, f"no log_history entry in {display} has '{key}'", display)
    if source.pick == "last":
        i, raw = entries[-1]
        return finish_reading(raw, f"last '{key}' (log_history[{i}])", display)
    return _hf_best(entries, key, direction, display)


def _hf_entries(history: list, key: str) -> list:
    return [(i, e[key]) for i, e in enumerate(history)
            if isinstance(e, dict) and e.get(key) is not None]


def _hf_best(entries: list, key: str, direction: str, display: str) -> Reading:
    numbers = []
    for i, raw in entries:
        value = as_number(raw)
        if value is None:
            raise Outcome(CORRUPT, f"'{key}' in log_history[{i}] of {display} is not a number", display)
        numbers.append((value, i))
    finite = [(v, i) for v, i in numbers if math.isfinite(v)]
    if not finite:
        raise Outcome(NOT_FINITE, f"every '{key}' in {display} is nan or inf", display)
    pick = max if direction == "max" else min
    value, i = pick(finite, key=lambda vi: vi[0])
    return Reading(value, OK, f"best '{key}' = {value!r} (log_history[{i}], of {len(finite)}) from {display}",
                   display)


_RUN_DIR = re.compile(r"(?:offline-)?run-(\d{8}_\d{6})-[^/]+\Z")


def read_wandb(source: Source, repo_root: str, key: str, since: float, direction: str) -> Reading:
    full, display = resolve(repo_root, source.path)
    if not os.path.isdir(full):
        raise Outcome(MISSING, f"{display} is not a folder (want a W&B run folder or a wandb/ folder)",
                       display)
    run_full, run_display = _wandb_run(repo_root, full, display)
    _check_run_folder_time(run_full, run_display, since)
    summary_full = os.path.join(run_full, "files", "wandb-summary.json")
    summary_display = f"{run_display}/files/wandb-summary.json"
    summary = parse_json(read_fresh_text(summary_full, summary_display, since), summary_display)
    raw = lookup(summary, key)
    if raw is ABSENT:
        raise Outcome(MISSING, f"no key '{key}' in {summary_display}{keys_hint(summary)}", summary_display)
    return finish_reading(raw, f"'{key}'", summary_display)


def _wandb_run(repo_root: str, full: str, display: str):
    """(full, display) of the run folder that DIR designates."""
    if _RUN_DIR.search(os.path.basename(full)) or os.path.isfile(
            os.path.join(full, "files", "wandb-summary.json")):
        return full, display
    root = os.path.realpath(repo_root)
    if os.path.isdir(os.path.join(full, "latest-run")):
        return resolve(repo_root, os.path.relpath(os.path.join(full, "latest-run"), root))
    runs = _run_folders(full)
    if runs:
        name = max(runs, key=lambda n: (_RUN_DIR.search(n).group(1), _mtime(os.path.join(full, n)), n))
        return resolve(repo_root, os.path.relpath(os.path.join(full, name), root))
    for sub in ("wandb", ".wandb"):
        if os.path.isdir(os.path.join(full, sub)):
            return _wandb_run(repo_root, os.path.join(full, sub), f"{display}/{sub}")
    raise Outcome(MISSING, f"no W&B run folder (run-*, offline-run-*) in {display}", display)


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
    import calendar  # with datetime, ~2.4 ms: only where a timestamp is parsed
    local, utc = time.mktime(parsed), calendar.timegm(parsed)
    if max(local, utc) < math.floor(since) - MTIME_SLACK:
        raise Outcome(STALE, f"the newest W&B run {run_display} started {ago(since - max(local, utc))} "
                              f"before this trial; the trial started no run", run_display)


def read_tensorboard(source: Source, repo_root: str, tag: str, since: float, direction: str) -> Reading:
    files = _event_files(repo_root, source.path)
    if not files:
        raise Outcome(MISSING, f"no TensorBoard event files match {source.path}", source.path)
    fresh = [(st.st_mtime_ns, shown, full) for st, shown, full in files if is_fresh(st, since)]
    if not fresh:
        newest = max(files, key=lambda f: f[0].st_mtime_ns)
        raise Outcome(STALE, f"all {len(files)} event files matching {source.path} predate this trial "
                              f"(newest: {newest[1]}, {ago(since - newest[0].st_mtime)} before)", newest[1])
    best, notes = None, []
    for order, (_, shown, full) in enumerate(sorted(fresh)):
        try:
            scalars, note = read_tfevents_scalars(full, tag)
        except TFRecordError as e:
            raise Outcome(CORRUPT, f"{shown}: {e}", shown)
        except OSError as e:
            raise Outcome(MISSING, f"cannot read {shown}: {e.strerror}", shown)
        if note:
            notes.append(f"{shown}: {note}")
        for index, (wall_time, step, value) in enumerate(scalars):
            candidate = ((wall_time, step, order, index), value, step, shown)
            if best is None or candidate[0] > best[0]:
                best = candidate
    note = f" ({'; '.join(notes)})" if notes else ""
    if best is None:
        raise Outcome(MISSING, f"no scalar '{tag}' in {len(fresh)} fresh event file(s) matching "
                                f"{source.path}{note}", source.path)
    _, value, step, shown = best
    reading = finish_reading(value, f"'{tag}' (step {step})", shown)
    return record.replace(reading, detail=reading.detail + note)


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
                full, shown = resolve(root, rel)
                st = os.stat(full)
            except (Outcome, OSError):
                continue
            if os.path.isfile(full):
                found[full] = (st, shown, full)
    return list(found.values())


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")
