"""A trial's report: what is moved aside before the run, what is read after.

Before a trial, every existing file the report source names exactly (a plain
report file, or `sources.paths_to_clear`) is moved into `.ratchet/reports/`
so an old file cannot pass for this trial's output. Nothing is deleted: the
first file moved from a path is kept as `original-<path>`, later ones (the
outputs of earlier trials, each already copied as that trial's report) as
`stale-<path>`, the last one winning. A file git tracks is never moved.

After a trial, a `KIND:` source is read with `sources.read_metric` (since =
the trial's start) and the file actually read is copied to the trial's report
(`reports/iter-NNNN-trial-NN.txt`) unless it is huge.

Folder sources (wandb, tensorboard, hf or lightning given a folder) are not
moved aside; they rely on `read_metric`'s freshness rule, which compares file
times with the trial's start minus `reading.MTIME_SLACK`. `settle` therefore
returns only once a file written before the trial ended would read as stale
to the next trial, so consecutive trials can never read each other's output.
"""

from __future__ import annotations

import math
import os
import time

from ..io import gitops, store_files
from ..core import paths
from ..core import sourcespec
from .reading import MTIME_SLACK, NOT_FINITE, OK

COPY_LIMIT = 64 * 1024 * 1024
"""A report file larger than this is not copied into .ratchet/ (its path is noted instead)."""


def flat_name(rel: str) -> str:
    """A repo-relative path as one file name (`a/b.csv` -> `a__b.csv`)."""
    return rel.replace("/", "__")


def tracked_outputs(repo: str, source: sourcespec.Source) -> list:
    """Files git tracks that the source names (its file, or files in its folder or glob).

    A trial rewrites them, which would show up as an edit of a protected path
    in the next iteration, so `init` refuses such a source.
    """
    if source.path is None:
        return []
    listed = gitops.git(repo, "ls-files", "-z").split("\0")
    return [p for p in listed if p and paths.matches(p, source.path)][:5]


def to_move(repo: str, source: sourcespec.Source, tree: dict | None = None) -> list:
    """Existing, untracked files (repo-relative) to move aside before a trial.
    `tree` (carry.tree, as the tree stands now) answers for every file it
    lists untracked; git's index for the rest, in one `ls-files` (issue 18:
    there was one for each file before every trial)."""
    if source.kind == sourcespec.TEXT:
        found = [source.path] if os.path.isfile(os.path.join(repo, source.path)) else []
    elif source.structured:
        from . import sources  # only a KIND: source loads the readers (and the tracker formats)
        found = sources.paths_to_clear(source, repo)
    else:
        return []
    ask = [rel for rel in found if tree is None or rel not in tree["files"]]
    tracked = set(gitops.git(repo, "ls-files", "-z", "--", *ask).split("\0")) if ask else set()
    return [rel for rel in found if rel not in tracked]


def move_aside(repo: str, reports_dir: str, source: sourcespec.Source, tree: dict | None = None) -> list:
    """Move every file of `to_move` into `reports_dir`; return where each went."""
    moved = []
    for rel in to_move(repo, source, tree):
        if not paths.contained(repo, rel):  # never move a file from outside the repository
            continue
        name = flat_name(rel)
        original = os.path.join(reports_dir, "original-" + name)
        dest = original if not os.path.exists(original) else os.path.join(reports_dir, "stale-" + name)
        store_files.move_in(os.path.join(repo, rel), dest)
        moved.append(dest)
    return moved


def read(repo: str, source: sourcespec.Source, metric_name: str, direction: str,
         started: float, report: str) -> dict:
    """Read a `KIND:` source after a trial: {status, score, detail, source_status}.

    status is the trial status: `ok`, `not-finite`, or `no-metric` for a file
    that is missing, stale or corrupt (`source_status` says which).
    """
    from . import sources
    reading = sources.read_metric(source, repo, metric_name, since=started, direction=direction)
    if reading.path:
        _copy_report(os.path.join(repo, reading.path), reading.path, report)
    if reading.status == OK:
        status = "ok"
    elif reading.status == NOT_FINITE:
        status = "not-finite"
    else:
        status = "no-metric"
    return {"status": status, "score": reading.value if status == "ok" else None,
            "detail": reading.detail, "source_status": reading.status}


def _copy_report(full: str, shown: str, report: str) -> None:
    try:
        size = os.path.getsize(full)
    except OSError:
        return
    if not os.path.isfile(full):
        return
    if size > COPY_LIMIT:
        store_files.write_plain(report, f"not copied: {shown} is {size / 2 ** 20:.0f} MiB; it is in the repository\n")
        return
    try:
        store_files.copy_in(full, report)
    except OSError:
        pass


def wait_until_stale(ended: float, probe: str | None) -> None:
    """Sleep until a file written before `ended` reads as stale to a new trial.

    `probe` is a file the trial wrote next to the report (its captured
    stdout): whole-second timestamps on it mean a coarse filesystem, where the
    freshness rule works at whole seconds, so the wait runs to the next second.
    """
    until = ended + MTIME_SLACK + 0.001
    try:
        if probe and os.stat(probe).st_mtime_ns % 1_000_000_000 == 0:
            until = max(until, math.floor(ended) + 1.001)
    except OSError:
        pass
    delay = until - time.time()
    if delay > 0:
        time.sleep(delay)
