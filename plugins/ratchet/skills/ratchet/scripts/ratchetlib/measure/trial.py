"""One trial: the run command, captured, becomes a number. The one place where
a command's output turns into a score: the process (runner), the report it
writes (capture, sources, metrics), its checkpoints (artifacts) and its
heartbeat; `watched_trial` brackets it with carry.watch/written so a run
that writes outside its change, or plants a startup hook, is undone at once.
Used by every measurement: the mean rule, the paired swap, verify, doctor."""

from __future__ import annotations

import os
import time

from ..core import config as configmod
from ..core import record
from ..core import paths
from ..io import artifacts, carry, clip, executor, gitguard, store_files, unclean, workspace
from . import capture, heartbeat, metrics


def run_trial(run: workspace.Run, iteration: int, k: int, env: dict | None = None, label: str | None = None,
              tree: dict | None = None) -> dict:
    """Run trial k of `iteration`, capture its report, extract the metric,
    then keep only the head and tail of a huge captured output (clip.py).
    `label` names the trial in the heartbeat (doctor's runs are not iterations);
    `tree` is the tree as it stands (carry.watch's), when known."""
    trial = _run_trial(run, iteration, k, env, label, tree)
    cut = {ext: n for ext in ("txt", "out", "err") for n in [clip.trim(run.store.report_path(iteration, k, ext))] if n}
    return {**trial, "clipped": cut} if cut else trial


def _run_trial(run: workspace.Run, iteration: int, k: int, env: dict | None = None, label: str | None = None,
               tree: dict | None = None) -> dict:
    cfg, store = run.config, run.store
    out, err, report = (store.report_path(iteration, k, ext) for ext in ("out", "err", "txt"))
    unclean.refuse_if_marked(store)
    src = cfg.source
    capture.move_aside(run.repo, store.path("reports"), src, tree)
    before = artifacts.snapshot(run.repo, cfg.artifact_globs)
    beat = heartbeat.for_trial(label or f"iter {iteration} trial {k}/{cfg.trials}", cfg.trial_timeout_seconds)
    tr = executor.run(cfg, cfg.run_command, run.repo, out, err, cfg.trial_timeout_seconds, env, beat,
                      cancel_command=cfg.cancel_command, cancel_log=store.report_path(iteration, k, "cancel"),
                      trial=(iteration, k), record_dir=store.path("procs"))
    ended = time.time()
    if tr.survivors:
        unclean.mark(store, tr, iteration, k)
    if cfg.report_source == "stdout":
        store_files.move_in(out, report)
    elif cfg.report_source == "stderr":
        store_files.move_in(err, report)
    elif cfg.report_path:
        full = os.path.join(run.repo, cfg.report_path)
        if os.path.isfile(full) and os.path.getmtime(full) >= tr.started - 1.0:
            store_files.copy_in(full, report)
    found = capture.read(run.repo, src, cfg.metric_name, cfg.direction, tr.started, report) \
        if src.structured else None
    trial = {"trial": k, "exit_code": tr.exit_code, "seconds": round(tr.seconds, 4), "score": None,
             "report": os.path.relpath(report, store.root)}
    if tr.cancel:
        trial["cancel"] = tr.cancel
    if getattr(tr, "job", None):
        trial["job"] = tr.job
    trial.update(artifacts.written(run.repo, cfg.artifact_globs, before, tr.started))
    if src.structured:
        capture.wait_until_stale(ended, next((p for p in (out, err, report) if os.path.exists(p)), None))
    if tr.timed_out:
        gone = f"{tr.job['executor']} job {tr.job['id']} cancelled" if getattr(tr, "job", None) else "process tree killed"
        return {**trial, "status": "timeout", "detail": f"timed out after {cfg.trial_timeout_seconds:g}s ({gone})"}
    if getattr(tr, "failure", None):
        return {**trial, "status": "crash", "detail": tr.failure}
    if tr.exit_code != 0:
        return {**trial, "status": "crash", "detail": f"exit code {tr.exit_code}"}
    if found is not None:
        return {**trial, **found}
    if cfg.report_path and not os.path.exists(report):
        return {**trial, "status": "no-metric", "detail": f"the command did not write {cfg.report_path}"}
    ex = metrics.extract(report, cfg.metric_name, cfg.metric_pattern)
    if ex.status == metrics.MISSING and cfg.report_source == "stdout" and \
            metrics.extract(err, cfg.metric_name, cfg.metric_pattern).status == metrics.OK:
        ex = record.replace(ex, detail=ex.detail + "; the metric is in stderr: init again with --report-source stderr")
    trial = {**trial, "status": ex.status, "score": ex.value, "detail": ex.detail}
    return _extra_metrics(cfg, report, trial) if cfg.extra_names and ex.status == metrics.OK else trial


def _extra_metrics(cfg: configmod.Config, report: str, trial: dict) -> dict:
    """Every other metric of the report into trial["metrics"]; a trial missing
    one of the primary metrics (--metric) is `no-metric`, like the first one."""
    found = {n: metrics.extract(report, n) for n in cfg.extra_names}
    trial = {**trial, "metrics": {cfg.metric_name: trial["score"], **{n: e.value for n, e in found.items()}}}
    for name, _, _ in cfg.objectives[1:]:
        if found[name].status != metrics.OK:
            return {**trial, "status": found[name].status, "score": None, "detail": f"metric {name}: {found[name].detail}"}
    return trial


def watched_trial(run: workspace.Run, iteration: int, k: int, env: dict | None = None, label: str | None = None,
                  own: list | None = None, seen: dict | None = None) -> dict:
    """`run_trial` bracketed by carry.watch/written: the run of the unmodified
    code (`own` None) teaches its outputs; a candidate's run (`own`: its paths)
    that wrote elsewhere, or any run that planted a startup hook, is undone at
    once and the trial carries `carried` (the iteration is then `tampered`).
    `seen` (carry.watch): the tree this trial leaves, for the next trial when
    nothing touches the tree in between (the caller clears it on a swap);
    emptied here when anything was put back."""
    before = carry.watch(run, seen)
    if seen is not None:
        seen.clear()
    try:
        t = run_trial(run, iteration, k, env, label, before["tree"])
    except BaseException:  # Ctrl-C or SIGTERM mid-trial: what the run planted must not outlive the command
        moved, hooks = carry.written(run, before, () if own is None else own)
        carry.undo(run, before, moved if own is not None else {}, hooks)
        raise
    moved, hooks = carry.written(run, before, () if own is None else own, seen)
    if own is None:
        run.state = carry.learn(run.repo, run.state, moved, [])
        moved = {}
    # protected files are the harness's to report and restore, after the batch (_after_batch)
    moved = {p: k for p, k in moved.items() if paths.classify(p, (), run.config.protect) != paths.PROTECTED}
    git = gitguard.verify(run.repo, run.store.root)  # put back now: the next swap checks files out
    if moved or hooks or git:
        if seen is not None:
            seen.clear()
        lost = carry.undo(run, before, moved, hooks) + gitguard.restore(run.repo, run.store.root, git)
        t["carried"] = {"outside": moved, "hooks": hooks, "git": git, "lost": lost,
                        "role": "candidate" if own is not None else "incumbent"}
    return t
