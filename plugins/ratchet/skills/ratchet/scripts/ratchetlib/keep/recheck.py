"""`verify`: the start commit against the best (HEAD), measured in pairs
like a candidate (paired.py), so the run's cumulative gain is a
re-measurement with its interval, not the winning decision's own figure.
Run by the `verify` verb, at the stop, once a keep has stood `SETTLED`
iterations, every --verify-every iterations (finish.verify_when_due), and
before a --threshold stop (finish.confirm_threshold: only a re-measured value
stops the run). The tree switches between the two commits' files
for the paths they differ in; a kill mid-switch is put back by
`recover_verify` (current.json phase `verifying`)."""

from __future__ import annotations

import os

from ..core import change, faults, paths
from ..core.effects import incumbent_first
from ..core.gain import gain_interval
from ..io import fresh, githistory, gitops, harness
from ..measure import trial
from ..core.errors import RatchetError, UsageError
from ..io import store_files
from ..io.store import now_iso
from ..core.power import noise_of, relative
from .paired import effects_of, mean_or_none, seed_env

SETTLED = 3  # a best that stood this many decisions is re-measured: the headline is honest soon after a keep


def _changed_paths(repo: str, a: str, b: str) -> list:
    out = gitops.git(repo, "diff", "--no-renames", "--name-only", "-z", a, b)
    return [p for p in out.split("\0") if p]


def _in(repo: str, sha: str, paths: list) -> set:
    if not paths:
        return set()
    out = gitops.git(repo, "ls-tree", "-r", "-z", "--name-only", sha, "--", *paths)
    return {p for p in out.split("\0") if p}


def to_start(repo: str, start: str, changed: list) -> None:
    """The files that differ between the start and HEAD as at the start."""
    there = _in(repo, start, changed)
    if there:
        gitops.git(repo, "checkout", "-q", start, "--", *sorted(there))
    _remove(repo, [p for p in changed if p not in there])
    gitops.git(repo, "reset", "-q")
    fresh.switched(repo, changed)


def to_best(repo: str, changed: list) -> None:
    """Back to HEAD (idempotent: recovery calls it)."""
    gitops.git(repo, "reset", "-q")
    here = _in(repo, "HEAD", changed)
    if here:
        gitops.git(repo, "checkout", "-q", "HEAD", "--", *sorted(here))
    _remove(repo, [p for p in changed if p not in here])
    fresh.switched(repo, changed)


def _remove(repo: str, rels: list) -> None:
    for p in rels:
        full = os.path.join(repo, p)
        if paths.contained(repo, p) and os.path.lexists(full) and not os.path.isdir(full):
            os.remove(full)


def recover_verify(run, cur: dict) -> list:
    to_best(run.repo, cur.get("changed") or [])
    run.store.clear_current()
    return ["a killed `verify` left the start commit's files in the tree; the best commit was restored"]


def remeasure(run, pairs: int | None = None) -> dict | None:
    """Paired runs of the start commit (incumbent) against HEAD, the best
    (candidate); returns the `state.verified` dict and writes verify.json.
    None when nothing was kept. The caller holds the lock; the tree must have
    no uncommitted changes to the paths that differ."""
    cfg, st, repo = run.config, run.state, run.repo
    start, best = cfg.start_commit, gitops.head_sha(repo)
    if best == start or st.iteration < 0:
        return None
    changed = _changed_paths(repo, start, best)
    dirty = set(gitops.tracked_changes(repo)) & set(changed)
    if dirty:
        raise UsageError(f"verify swaps files the working tree has changed ({', '.join(sorted(dirty)[:3])}); "
                         f"iterate or undo that change first")
    noise = noise_of(st.noise)
    prior = noise if noise is not None and noise.log_scale == bool(st.log_scale) else None
    inc, cand = _pairs(run, start, changed, pairs or cfg.max_trials, prior)
    moved = harness.verify(repo, run.store.root)
    if moved:
        harness.restore(repo, run.store.root, moved)
    head_iter = st.incumbent_iter
    if head_iter is None:  # a state from before `incumbent_iter`: the keep commit's trailer names it
        head_iter = githistory.commit_trailer(repo, best)
    verified, doc = _figures(cfg, st, inc, cand, prior)
    verified.update(sha=best, iter=head_iter)
    store_files.write_doc(run.store.root, "verify", {**verified, "start": start, **doc})
    return verified


def _pairs(run, start: str, changed: list, n: int, prior) -> tuple:
    """(start's scores, best's scores): up to `n` pairs, the tree switched
    between the two commits' files (current.json says so, for recovery)
    and left on the best."""
    cfg, repo, it = run.config, run.repo, run.state.iteration
    run.store.write_current({"iter": it, "phase": "verifying", "changed": changed, "started": now_iso()})
    inc, cand, in_tree = [], [], "best"  # reports: iter-N-trial-101... (the iteration's own trials number from 1)
    try:
        for p in range(1, n + 1):
            env = seed_env(cfg, 10 ** 6 + it, p)
            for role in (("start", "best") if incumbent_first(p) else ("best", "start")):
                if role != in_tree:
                    to_start(repo, start, changed) if role == "start" else to_best(repo, changed)
                    in_tree = role
                    if role == "start":
                        faults.point("verify-swapped")
                t = trial.run_trial(run, it, 100 + len(inc) + len(cand) + 1, env, f"verify pair {p}/{n} {role}")
                if t["status"] != "ok":
                    raise RatchetError(f"verify: a run of the {role} commit failed ({t.get('detail')}); "
                                       f"see .ratchet/{t['report']}")
                (inc if role == "start" else cand).append(t["score"])
            if prior is not None and prior.deterministic and p >= 2 and len(set(zip(inc, cand))) == 1:
                break  # a deterministic metric: more pairs say the same
    finally:
        if in_tree != "best":
            to_best(repo, changed)
        run.store.clear_current()
    return inc, cand


def _figures(cfg, st, inc: list, cand: list, prior) -> tuple:
    """(the `verified` figures, verify.json's evidence) from the scores (pure)."""
    effects, scale = effects_of(cfg, [{"score": s} for s in cand], [{"score": s} for s in inc], bool(st.log_scale))
    same = prior is not None and prior.log_scale == scale
    gain = gain_interval(effects, 0.95, log_scale=scale, sigma_prior=prior.sigma_pair if same else None,
                         prior_df=prior.df if same else 0.0)
    base = mean_or_none(inc)
    pct = lambda x: None if relative(x, scale, base) is None else relative(x, scale, base) * 100  # noqa: E731
    verified = {"gain_pct": pct(gain.estimate),
                "interval": None if gain.interval is None else [pct(x) for x in gain.interval],
                "pairs": gain.pairs, "at_iteration": st.iteration, "timestamp": now_iso()}
    verified["value"], verified["value_interval"] = at_baseline(gain, st.baseline, cfg.direction)
    # what people read: the change of the metric itself (change.py), low end first
    verified["change_pct"], verified["change_interval"] = change.verified_change(
        {"gain_pct": verified["gain_pct"], "interval": verified["interval"], "log_scale": scale}, cfg.direction)
    return verified, {"start_scores": inc, "best_scores": cand, "effects": effects, "log_scale": scale,
                      "gain": gain.to_json()}


def at_baseline(gain, baseline, direction: str) -> tuple:
    """(value, [lo, hi] | None): the baseline moved by the re-measured ratio (log
    scale) or difference, what a --threshold is compared with; (None, None)
    without a baseline. The start's own runs in the verify cancel drift; the
    baseline anchors the figure where the user set the threshold."""
    if baseline is None:
        return None, None

    def at(effect):  # 12 digits: exp(log(16/10)) * 10 reads 16, as the threshold 16 was meant
        moved = change.from_effect(effect, direction, gain.log_scale)
        return float(f"{baseline * (1.0 + moved) if gain.log_scale else baseline + moved:.12g}")
    iv = None if gain.interval is None else sorted(at(x) for x in gain.interval)
    return at(gain.estimate), iv


def due(run) -> bool:
    """Verify now? At the stop, when the best has stood SETTLED decisions (so
    the headline after a keep is honest soon, without a verify per keep in a
    streak of keeps), and every --verify-every iterations; once per best commit."""
    cfg, st = run.config, run.state
    if cfg.decision != "paired" or st.iteration < 1:
        return False
    if (st.verified or {}).get("sha") == st.incumbent_sha:
        return False
    if st.incumbent_sha == cfg.start_commit:
        return False
    return (bool(st.stop) or st.since_keep == SETTLED
            or bool(cfg.verify_every and st.iteration % cfg.verify_every == 0))
