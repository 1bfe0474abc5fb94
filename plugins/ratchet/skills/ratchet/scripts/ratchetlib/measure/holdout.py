"""The holdout: an evaluation the agent never sees, run when the run is over.

`--holdout-command CMD` must print the primary metric the way the benchmark
does (same name, same `--metric-pattern`; when `--report-source` is a file and
the command writes it, that file is read). It runs `--trials` times on the
start commit and `--trials` times on the final incumbent (the run's best:
every keep beat the one before it), each checked out in a temporary
`git worktree` outside the repository, so the user's files, index and branch
are untouched. Untracked and ignored entries of the repository (a
virtualenv, a git-ignored data folder) are symlinked into the worktree so the
command finds them; `.ratchet/`, the report file and `__pycache__` folders
are not, and the worktree's files are stamped newer than anything built
before (fresh.py), so each commit runs its own code.

When: `ratchet.py holdout`, and automatically once the run stops (a stop
condition reached by `iterate`/`decide`, or `stop`). The result is written to
`.ratchet/holdout.json` (FORMATS.md). Verdicts never show it and `status`
only once the run has stopped, so the agent cannot tune against it.

"held": the final commit beats the start commit on the holdout by more than
`--min-improvement`, in the run's direction. The summary puts the holdout's
relative gain next to the benchmark's, so a gain that shrank is visible too:
the re-measured one (core/headline.py) when the final commit was verified,
else its own decision's mean, labelled as such.
"""

import os
import shutil
import tempfile

from ..io import clip, fresh, gitops, runner, store, store_files
from . import heartbeat, metrics
from ..core import change, headline
from ..core.decision import mean
from ..core.text import num
from ..core.state import RunState


def load(store_root: str):
    return store_files.read_doc(store_root, "holdout")


def _link_untracked(repo: str, worktree: str, skip) -> None:
    raw = gitops.git(repo, "ls-files", "-z", "--others", "--directory")
    for entry in raw.split("\0"):
        rel = entry.rstrip("/")
        if not rel or rel.split("/")[0] == ".ratchet" or rel in skip or rel.rsplit("/", 1)[-1] == "__pycache__":
            continue  # bytecode shared with the repository would serve the other commit's code (fresh.py)
        dest = os.path.join(worktree, rel)
        if os.path.lexists(dest):
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.symlink(os.path.join(repo, rel), dest)


def _evaluate(cfg, repo: str, store_root: str, sha: str, label: str) -> dict:
    """Run the holdout `cfg.trials` times on `sha` in a temporary worktree."""
    folder = store_files.folder(store_root, "holdout_runs")
    tmp = tempfile.mkdtemp(prefix="ratchet-holdout-")
    wt = os.path.join(tmp, "wt")
    gitops.git(repo, "worktree", "prune", check=False)
    try:
        gitops.git(repo, "-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "-q", wt, sha)
        _link_untracked(repo, wt, {cfg.report_path} if cfg.report_path else set())
        # newer than any build product linked in from the repository (fresh.py)
        fresh.switched(wt, [p for p in gitops.git(wt, "ls-files", "-z").split("\0") if p])
        trials = []
        for k in range(1, cfg.trials + 1):
            out, err = (os.path.join(folder, f"{label}-trial-{k:02d}.{ext}") for ext in ("out", "err"))
            beat = heartbeat.for_trial(f"holdout on the {label} commit, run {k}/{cfg.trials}", cfg.trial_timeout_seconds)
            tr = runner.run(cfg.holdout_command, wt, out, err, cfg.trial_timeout_seconds, progress=beat,
                            record_dir=os.path.join(store_root, "procs"))  # names its keeper, as a trial's record does
            report = err if cfg.report_source == "stderr" else out
            if cfg.report_path and os.path.isfile(os.path.join(wt, cfg.report_path)):
                report = os.path.join(folder, f"{label}-trial-{k:02d}.txt")
                store_files.copy_in(os.path.join(wt, cfg.report_path), report)
            t = {"trial": k, "exit_code": tr.exit_code, "seconds": round(tr.seconds, 4), "score": None}
            if tr.timed_out or tr.exit_code != 0:
                t.update(status="timeout" if tr.timed_out else "crash",
                         detail="timed out" if tr.timed_out else f"exit code {tr.exit_code}")
            else:
                ex = metrics.extract(report, cfg.metric_name, cfg.metric_pattern)
                t.update(status=ex.status, score=ex.value, detail=ex.detail)
            # once the metric is read: only the head and tail of a huge output stay, as for trials
            cut = {path.rsplit(".", 1)[1]: n for path in sorted({out, err, report}) for n in [clip.trim(path)] if n}
            if cut:
                t["clipped"] = cut
            trials.append(t)
            if t["status"] != "ok":
                break
    finally:
        gitops.git(repo, "worktree", "remove", "--force", wt, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        gitops.git(repo, "worktree", "prune", check=False)
    bad = next((t for t in trials if t["status"] != "ok"), None)
    return {"sha": sha, "trials": trials, "avg": None if bad else mean(t["score"] for t in trials),
            "status": bad["status"] if bad else "ok", "detail": bad["detail"] if bad else f"mean of {len(trials)}"}


def _pct(new, old):
    return None if new is None or old in (None, 0) else (new - old) / abs(old) * 100


def _benchmark(cfg, state: RunState) -> dict:
    """The benchmark's gain the holdout's is put next to: the re-measured one
    (verify of the final commit, its metric's change) when there is one, else
    the final commit's own decision mean against the baseline, labelled."""
    verified = headline.of_head(state)
    pct, _ = change.verified_change(verified, cfg.direction) if verified else (None, None)
    if pct is not None:
        return {"start": state.baseline, "best": verified.get("value"), "gain_pct": pct, "re_measured": True}
    return {"start": state.baseline, "best": state.incumbent_score,
            "gain_pct": _pct(state.incumbent_score, state.baseline), "re_measured": False}


def run(cfg, repo: str, store_root: str, state: RunState) -> dict:
    """Evaluate start and final commits, write holdout.json, return it."""
    final = state.incumbent_sha or cfg.start_commit
    doc = {"format": store.FORMAT, "command": cfg.holdout_command, "metric": cfg.metric_name,
           "direction": cfg.direction, "started": store.now_iso()}
    doc["benchmark"] = _benchmark(cfg, state)
    if final == cfg.start_commit:  # nothing kept: nothing to check, and nothing to run
        doc.update(start={"sha": final, "trials": [], "avg": None, "status": "skipped", "detail": "nothing kept"},
                   held=None, gain_pct=None, summary="no change was kept, so there is nothing to check on the holdout")
        doc["best"] = doc["start"]
        doc["finished"] = store.now_iso()
        store_files.write_doc(store_root, "holdout", doc)
        return doc
    doc["start"] = _evaluate(cfg, repo, store_root, cfg.start_commit, "start")
    doc["best"] = _evaluate(cfg, repo, store_root, final, "best")
    s, b = doc["start"]["avg"], doc["best"]["avg"]
    doc["gain_pct"] = _pct(b, s)
    if s is None or b is None:
        which = doc["start"] if s is None else doc["best"]
        doc["held"] = None
        doc["summary"] = f"holdout failed on the {'start' if s is None else 'final'} commit: {which['detail']}"
    else:
        m = cfg.min_improvement.over(s)
        doc["held"] = cfg.better(b, s + m if cfg.direction == "max" else s - m)
        gain = "" if doc["gain_pct"] is None else f" ({doc['gain_pct']:+.2f}%)"
        bench = doc["benchmark"]["gain_pct"]
        said = (" re-measured on the benchmark" if doc["benchmark"]["re_measured"] else
                " on the benchmark (the final commit's own decision mean, not re-measured)")
        doc["summary"] = (f"{cfg.metric_name} start {num(s)} -> final {num(b)}{gain}"
                          + ("" if bench is None else f" vs {bench:+.2f}%{said}")
                          + (": the gain held" if doc["held"] else ": the gain did NOT hold (overfit to the benchmark?)"))
    doc["finished"] = store.now_iso()
    store_files.write_doc(store_root, "holdout", doc)
    return doc
