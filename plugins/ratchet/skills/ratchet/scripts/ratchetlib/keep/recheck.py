"""`verify`: the start commit against the best (HEAD), measured in pairs
like a candidate (paired.py), so the run's cumulative gain is a
re-measurement with its interval, not the winning decision's own figure.
Run by the `verify` verb, at the stop and every --verify-every iterations
(finish.verify_when_due). The tree switches between the two commits' files
for the paths they differ in; a kill mid-switch is put back by
`recover_verify` (current.json phase `verifying`)."""

import os
from typing import Optional

from ..core import change, faults, paths
from ..core.effects import incumbent_first
from ..core.gain import gain_interval
from ..io import fresh, gitops, harness
from ..measure import trial
from ..core.errors import RatchetError, UsageError
from ..io import store_files
from ..io.store import now_iso
from ..core.power import noise_of, relative
from .paired import effects_of, mean_or_none, seed_env


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


def remeasure(run, pairs: Optional[int] = None) -> Optional[dict]:
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
    n = pairs or cfg.max_trials
    noise = noise_of(st.noise)
    prior = noise if noise is not None and noise.log_scale == bool(st.log_scale) else None
    cur = {"iter": st.iteration, "phase": "verifying", "changed": changed, "started": now_iso()}
    run.store.write_current(cur)
    it = st.iteration  # reports: iter-N-trial-101... (the iteration's own trials number from 1)
    inc, cand, in_tree = [], [], "best"
    try:
        for p in range(1, n + 1):
            env = seed_env(cfg, 10 ** 6 + st.iteration, p)
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
    moved = harness.verify(repo, run.store.root)
    if moved:
        harness.restore(repo, run.store.root, moved)
    effects, scale = effects_of(cfg, [{"score": s} for s in cand], [{"score": s} for s in inc],
                                bool(st.log_scale))
    gain = gain_interval(effects, 0.95, log_scale=scale,
                               sigma_prior=prior.sigma_pair if prior and prior.log_scale == scale else None,
                               prior_df=prior.df if prior and prior.log_scale == scale else 0.0)
    base = mean_or_none(inc)
    pct = lambda x: None if relative(x, scale, base) is None else relative(x, scale, base) * 100  # noqa: E731
    verified = {"gain_pct": pct(gain.estimate),
                "interval": None if gain.interval is None else [pct(x) for x in gain.interval],
                "pairs": gain.pairs, "sha": best, "iter": st.best_iter, "at_iteration": st.iteration,
                "timestamp": now_iso()}
    # what people read: the change of the metric itself (change.py), low end first
    verified["change_pct"], verified["change_interval"] = change.verified_change(
        {"gain_pct": verified["gain_pct"], "interval": verified["interval"], "log_scale": scale}, cfg.direction)
    store_files.write_doc(run.store.root, "verify", {**verified, "start": start, "start_scores": inc,
                                                     "best_scores": cand, "effects": effects, "log_scale": scale,
                                                     "gain": gain.to_json()})
    return verified


def verified_line(verified: Optional[dict], direction: str = "max", log_scale: bool = True) -> Optional[str]:
    """`verified gain over the start: -99.3% (137x lower) [-99.4%, -99.2%] (8
    pairs, best of iter 7)` or None: the metric's own change (change.py);
    `direction`/`log_scale` convert a state written before `change_pct`."""
    if not isinstance(verified, dict) or verified.get("gain_pct") is None:
        return None
    pct, iv = change.verified_change(verified, direction, log_scale)
    if pct is None:
        return None
    bounds = f" {change.bracket(iv[0] / 100, iv[1] / 100)}" if iv else ""
    return (f"verified gain over the start: {change.percent(pct / 100)}{bounds} "
            f"({verified.get('pairs')} pairs, best of iter {verified.get('iter')})")


def due(run) -> bool:
    """Verify now? At the stop, and every --verify-every iterations; once per best commit."""
    cfg, st = run.config, run.state
    if cfg.decision != "paired" or st.iteration < 1:
        return False
    if (st.verified or {}).get("sha") == st.incumbent_sha:
        return False
    if st.incumbent_sha == cfg.start_commit:
        return False
    return bool(st.stop) or bool(cfg.verify_every and st.iteration % cfg.verify_every == 0)
