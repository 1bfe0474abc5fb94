"""`loop --parallel N`: N agents propose at once, one measurement at a time.

Each agent works in its own git worktree, `.ratchet/worktrees/slot-K`,
reset to the incumbent before every round (tracked files only: ignored and
untracked files of the main tree are not copied). When all have finished
(or hit the agent timeout), each proposal is taken as one binary patch
against the incumbent and measured in the main tree, one after the other,
so timing benchmarks never share the machine with each other (with a
cluster executor they are measured at once instead, each in its own
measurement tree and on its own node: remote.py). The best proposal that
passes the keep rule is committed; the rest are recorded.

One round is one iteration and one record (its number counts toward
--iterations and --patience like any iteration): the record is the kept
proposal's (or, when none is kept, the best measured one's), with `slot`
and the other proposals as sub-records in `alternatives` (FORMATS.md). Their
patches are saved as `patches/iter-NNNN-slot-K.patch`, apply-able on the
round's incumbent. Trials are numbered on through the round, so each
proposal's reports keep their own `trial` numbers for `tail` (on a
cluster proposal K's start at (K-1) x --trials + 1).

Crash safety: current.json stays in phase `agent` until the round's record
is decided, so a kill anywhere in the round is recovered as an interrupted
iteration (the measurements of the round are lost, the proposals' patches
stay in `agents/` output and `patches/`).
"""

import functools
import os
import time

from ...core import decision, record
from ...keep import finish, strategy
from ...verbs import session
from ...io import executor, fresh, gitguard, gitops, gitpatch, harness, store_files
from ...learn import learning
from ...core.errors import RatchetError
from . import remote
from .calls import AgentCall, failure
from ...io.store import atomic_write

_ORDER = {decision.REVERT: 0, decision.CONSTRAINT: 1, decision.GUARD_FAILED: 1, decision.CRASH: 2,
          decision.TIMEOUT: 2, decision.TAMPERED: 3, decision.OUT_OF_SCOPE: 3, decision.NO_CHANGE: 4,
          decision.AGENT_ERROR: 5}


# Record fields of a proposal's judgement that the round's record carries (judge.judge, _integrity_verdict).
_JUDGED = ("metrics", "warnings", "compare", "guard", "tampered", "unrestorable", "out_of_scope")


def worktree(run, k: int, sha: str) -> str:
    """Slot k's worktree, at `sha` with nothing else in it."""
    path = run.store.file("worktrees", f"slot-{k}")
    if os.path.exists(os.path.join(path, ".git")):
        gitops.git(path, "reset", "-q", "--hard", sha)
        gitops.git(path, "clean", "-fdq")
        return path
    gitops.git(run.repo, "worktree", "prune")
    store_files.remove_path(path)
    store_files.folder(run.store.root, "worktrees")
    gitops.git(run.repo, "worktree", "add", "-q", "--detach", "-f", path, sha)
    return path


def remove_worktrees(run) -> None:
    """Remove every slot worktree (at the end of a `loop`)."""
    top = run.store.file("worktrees")
    if not os.path.isdir(top):
        return
    for name in sorted(os.listdir(top)):
        gitops.git(run.repo, "worktree", "remove", "--force", os.path.join(top, name), check=False)
    store_files.remove_path(top, strict=False)
    gitops.git(run.repo, "worktree", "prune", check=False)


def _save_patch(run, it: int, k: int, patch: bytes):
    """Save slot k's proposal as patches/iter-NNNN-slot-K.patch; its path
    relative to .ratchet/, or None when the proposal changes nothing."""
    if not patch.strip():
        return None
    path = run.store.file("patches", f"iter-{it:04d}-slot-{k}.patch")
    atomic_write(path, patch)
    return os.path.relpath(path, run.store.root)


def _sub(k, rep, info, v, trials, changed, patch, extra=None, arm=None) -> dict:
    """One proposal's sub-record; `extra` holds the judgement's record fields
    (metrics, guard, tampered, ...), `arm` the bandit arm its prompt named."""
    return {"slot": k, "hypothesis": rep.hypothesis, "description": rep.description, "decision": v.decision,
            "avg": v.avg, "delta": v.delta, "trial_scores": [t.get("score") for t in trials], "trials": trials,
            "reason": v.reason, "changed": changed, "patch": patch, "agent": info, "arm": arm, **(extra or {})}


def run_round(loop) -> tuple:
    """One round of `loop.opts.parallel` proposals: (record, paused reason)."""
    run = loop.run
    it, sha, calls, cur, results, timeout, wall_limited = _propose(loop)
    patches = [_save_patch(run, it, k, gitpatch.tree_patch(c.child.cwd, sha)) for k, c in enumerate(calls, 1)]
    if wall_limited and any(tr.timed_out for tr, _, _ in results):
        why = f"wall-clock budget reached ({loop.opts.max_wall_seconds:g}s)"
        v = decision.Verdict(decision.INTERRUPTED, None, None, f"interrupted: {why} while the agents worked")
        subs = [_sub(k, rep, info, v, [], [], rel, arm=c.arm)
                for k, ((_, rep, info), rel, c) in enumerate(zip(results, patches, calls), 1)]
        cur.update(hypothesis=subs[0]["hypothesis"], description=subs[0]["description"], agent=subs[0]["agent"],
                   arm=subs[0]["arm"])
        return finish.settle(run, cur, v, [], {"slot": 1, "alternatives": subs[1:], "patch": subs[0]["patch"]}), why
    if executor.remote(run.config):
        return _settle_best(run, cur, _measure_at_once(run, it, sha, results, patches, calls, timeout)), None
    subs, trial_no = [], 1
    for k, (result, rel, c) in enumerate(zip(results, patches, calls), 1):
        sub, used = _measure_proposal(run, it, k, result, rel, c.arm, timeout, trial_no)
        subs.append(sub)
        trial_no += used
    return _settle_best(run, cur, subs), None


def _measure_at_once(run, it: int, sha: str, results: list, patches: list, calls: list, timeout: float) -> list:
    """With a cluster executor: every proposal in its own measurement tree,
    all at the same time (remote.py); their summaries, in slot order."""
    per = run.config.trials
    fns = [functools.partial(_measure_proposal, run, it, k, result, rel, c.arm, timeout, (k - 1) * per + 1,
                             remote.measurement_tree(worktree(run, k, sha), run.store.root))
           for k, (result, rel, c) in enumerate(zip(results, patches, calls), 1)]
    watched = remote.watch_main_tree(run)
    return remote.checked(run, watched, [sub for sub, _ in remote.at_once(run.config, fns)])


def _propose(loop) -> tuple:
    """Start the round's agents, one per slot worktree, and collect them:
    (iteration, incumbent sha, calls, current.json buffer, results, the
    agents' timeout, whether the wall clock set it)."""
    run, opts = loop.run, loop.opts
    n = opts.parallel
    it = run.state.iteration + 1
    sha = run.state.incumbent_sha
    t0 = time.time()
    arms = learning.loop_arms(run, n)
    calls = [AgentCall(run, opts, it, worktree(run, k, sha), (k, n), arms[k - 1]) for k in range(1, n + 1)]
    cur = loop.begin(it, t0, [c.marker for c in calls], {"parallel": n})
    timeout, wall_limited = loop.agent_timeout()
    deadline = time.monotonic() + timeout
    loop.calls = calls
    for c in calls:
        c.start()
    results = [c.collect(max(deadline - time.monotonic(), 0.0)) for c in calls]
    loop.calls = []
    return it, sha, calls, cur, results, timeout, wall_limited


def _measure_proposal(run, it: int, k: int, result: tuple, rel, arm, timeout: float, trial_no: int,
                      tree=None) -> tuple:
    """Proposal `k` applied to the main tree, measured from trial number
    `trial_no`, then undone: (its summary for the round, trials it used).
    `tree`: a measurement tree (remote.py) to apply it to instead, left as is."""
    tr, rep, info = result
    why = failure(tr, rep, timeout, info["log"])
    if why:
        return _sub(k, rep, info, decision.Verdict(decision.AGENT_ERROR, None, None, why), [], [], rel, arm=arm), 0
    if not rel:
        v = decision.Verdict(decision.NO_CHANGE, None, None, "no change: the proposal equals the incumbent")
        return _sub(k, rep, info, v, [], [], None, arm=arm), 0
    with open(os.path.join(run.store.root, rel), "rb") as f:
        patch = f.read()
    at = run if tree is None else record.replace(run, repo=tree)  # the state is immutable: shared as is
    err = gitpatch.apply_patch(at.repo, patch)
    if err:
        v = decision.Verdict(decision.AGENT_ERROR, None, None,
                             f"agent-error: the proposal does not apply to the {'main' if tree is None else 'measurement'} "
                             f"tree ({err})")
        return _sub(k, rep, info, v, [], [], rel, arm=arm), 0
    cand, v, extra = session.check(at)
    fresh.switched(at.repo, cand.paths)  # proposals follow each other within a second, often the same size
    trials = []
    if v is None:
        v, extra, trials = strategy.proposal(at, it, trial_no, own=cand.paths)
    if v.decision == decision.TAMPERED:  # git's own files (shared by every worktree) before any checkout
        gitguard.restore(at.repo, run.store.root)
    if tree is not None:  # the tree is reset before the next round
        return _sub(k, rep, info, v, trials, cand.paths, rel, extra, arm), len(trials)
    gitpatch.back_to_head(run.repo, list(cand.tracked), list(cand.new))
    fresh.switched(run.repo, cand.paths)
    if v.decision == decision.TAMPERED:  # the next proposal is measured against the pinned harness
        harness.restore(run.repo, run.store.root)
    return _sub(k, rep, info, v, trials, cand.paths, rel, extra, arm), len(trials)


def _best(run, subs: list) -> dict:
    """The proposal the round records: the best keep, else the best measured
    revert, else the most telling failure (_ORDER)."""
    best = None
    for s in (s for s in subs if s["decision"] == decision.KEEP):
        if best is None or run.config.better(s["avg"], best["avg"]):
            best = s
    if best is None:
        for s in (s for s in subs if s["decision"] == decision.REVERT):
            if best is None or run.config.better(s["avg"], best["avg"]):
                best = s
    return best or min(subs, key=lambda s: _ORDER.get(s["decision"], 9))


def _settle_best(run, cur: dict, subs: list) -> dict:
    """The round's one decision through the one tail: the best proposal is
    re-applied and kept, or recorded; every other keep reads as a revert."""
    best = _best(run, subs)
    others = []
    for s in subs:
        if s is best:
            continue
        if s["decision"] == decision.KEEP:
            s = {**s, "decision": decision.REVERT,
                 "reason": f"not kept: {s['reason']}, but proposal {best['slot']} measured better"}
        others.append(s)
    cur.update(hypothesis=best["hypothesis"], description=best["description"], agent=best["agent"], arm=best["arm"])
    extra = {"slot": best["slot"], "alternatives": others,
             **{k: best[k] for k in _JUDGED if k in best}}
    v = decision.Verdict(best["decision"], best["avg"], best["delta"], best["reason"])
    if best["decision"] == decision.KEEP:
        with open(os.path.join(run.store.root, best["patch"]), "rb") as f:
            err = gitpatch.apply_patch(run.repo, f.read())
        if err:
            raise RatchetError(f"the kept proposal no longer applies to the main tree: {err}")
        fresh.switched(run.repo, best["changed"])
    else:
        extra.update(changed=best["changed"], patch=best["patch"])
    return finish.settle(run, cur, v, best["trials"], extra)
