"""How a candidate is measured: the run's rule, behind one `measure`.

`mean` runs the candidate `--trials` times (the incumbent's score is the one
recorded at its keep); `paired` interleaves incumbent and candidate runs
until the sequential test decides (paired.py). Either way the trials are
then checked (integrity.after_batch), judged (judge.py, pure) and gated by
the guard (integrity.gate): `assess`."""

from __future__ import annotations


from ..core import faults
from ..io import fresh, harness, workspace
from ..measure import trial
from . import integrity, judge, paired


def batch(run: workspace.Run, cur: dict, count: int, env: dict | None = None, own: list | None = None) -> list:
    """Run trials until `count` are done or one fails (or writes outside its
    change); buffer each one. `own`: the candidate's paths (None: the
    baseline, whose writes are the benchmark's outputs, carry.learn)."""
    while len(cur["trials"]) < count:
        t = trial.watched_trial(run, cur["iter"], len(cur["trials"]) + 1, env, own=own)
        cur["trials"].append(t)
        run.store.write_current(cur)
        faults.point("trial-done")
        if t["status"] != "ok" or t.get("carried"):
            break
    return cur["trials"]


def measure(run: workspace.Run, cur: dict, cand) -> tuple:
    """The candidate in the tree, measured by the run's rule: (candidate
    trials, (stats verdict, incumbent trials) or None, the harness window
    taken before any of its code ran)."""
    cur["candidate"] = cand.to_dict()
    if run.config.decision != "paired":  # paired writes it with the swap, before its first trial (save_candidate)
        run.store.write_current(cur)
    fresh.switched(run.repo, cand.paths)  # the agent's edit may share a second (and a size) with a cached side
    win = harness.window(run.repo, run.store.root)
    if run.config.decision == "paired":
        trials, inc_trials, sv, _ = paired.measure(run, cur, cand)
        return trials, (sv, inc_trials), win
    return batch(run, cur, run.config.trials, own=cand.paths), None, win


def assess(run: workspace.Run, it: int, trials: list, pair: tuple | None, win: dict | None) -> tuple:
    """(verdict, record fields) of measured trials: tampering first, then the
    judgement, then the guard for a keep."""
    every = list(trials) + list(pair[1] if pair else [])
    after = integrity.after_batch(run, "while the candidate ran", win, every)
    if after:
        v, extra = after
    else:
        v, extra = integrity.gate(run, it, *judge.judge(run.config, run.state, trials, pair))
    if pair and "incumbent_trials" not in extra:  # a tampered pair still shows what the incumbent did
        extra = {**extra, "incumbent_trials": pair[1]}
    return v, extra


def proposal(run: workspace.Run, it: int, first: int = 1, own=None) -> tuple:
    """Trials of the candidate in the tree from trial number `first`, then
    `assess`: (verdict, record fields, trials). For callers that hold the
    lock and buffer the iteration themselves (`loop --parallel`)."""
    trials, win = [], harness.window(run.repo, run.store.root)
    own = list(own or ())
    while len(trials) < run.config.trials:
        t = trial.watched_trial(run, it, first + len(trials), own=own)
        trials.append(t)
        if t["status"] != "ok" or t.get("carried"):
            break
    return (*assess(run, it, trials, None, win), trials)
