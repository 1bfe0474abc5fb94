"""The run's verbs, from `init` to `stop`: each opens the run, takes the
repository lock, recovers, then acts through keep/ (measure, judge, finish)."""

from __future__ import annotations

import os
import time

from ..core import config as configmod
from ..core import record
from ..core import constraints, decision, faults, pareto, sourcespec, state
from ..core.errors import UsageError
from ..io import executor, unclean, githistory, gitpatch, carry, fresh, gitguard, gitops, harness, seal, workspace
from ..io.store import Store, atomic_write, now_iso
from ..io.store_lock import Lock
from ..learn import learning
from ..measure import capture, trial
from ..keep import candidate, finish, integrity, paired, recheck, recover, strategy


def _start_point(repo: str, args: dict, start: dict | None) -> tuple:
    """(the commit the run starts at, the user's branch), once the repository
    can start a run: it has a commit, HEAD is on a branch (unless --no-branch),
    and tracked files have no uncommitted changes."""
    head = gitops.head_sha(repo) if start is None else start["sha"]
    if head is None:
        raise UsageError("the repository has no commits yet; commit your project first, then run init")
    original = gitops.current_branch(repo) if start is None else start["original_branch"]
    if start is not None and args.get("no_branch") and gitops.head_sha(repo) != head:
        raise UsageError(f"--no-branch would start the follow-up run at HEAD, not at the parent's best commit "
                         f"{head[:10]}; drop --no-branch (or check out {head[:10]} first)")
    if original is None and not args.get("no_branch"):
        raise UsageError("HEAD is detached; check out a branch first (git switch -c NAME)")
    dirty = gitops.tracked_changes(repo)
    if dirty:
        more = f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""
        raise UsageError(f"uncommitted changes to tracked files ({', '.join(dirty[:3])}{more}); commit or stash them first")
    return head, original


def init(cwd: str, args: dict, start: dict | None = None) -> workspace.Run:
    """Validate flags, check the repository, create the experiment branch.

    `start` (from `chain`) makes the run begin at another commit than HEAD:
    {"sha", "original_branch", "parent"}; `parent` is written to the
    read-only `.ratchet/parent.json` of the new run.
    """
    repo = gitops.find_root(cwd)
    head, original = _start_point(repo, args, start)
    cfg = configmod.build(args, repo, harness.commands_name(args, repo))
    executor.validate(cfg.executor, cfg.executor_options)
    tracked = capture.tracked_outputs(repo, cfg.source)
    if tracked:
        raise UsageError(f"--report-source {cfg.report_source} names file(s) git tracks ({', '.join(tracked)}); every "
                         f"trial rewrites them, so they must not be committed: `git rm --cached` them (and ignore "
                         f"them), then init again")
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()
    branch = None if args.get("no_branch") else (args.get("branch") or f"ratchet/{run_id}")
    if branch is not None:
        if not gitops.valid_branch_name(repo, branch):
            raise UsageError(f"--branch {branch!r} is not a valid git branch name")
        if gitops.branch_exists(repo, branch):
            raise UsageError(f"branch {branch!r} already exists; pick another with --branch")
    store = Store(repo)
    gitops.ensure_excluded(repo, "/.ratchet/")
    with Lock(store, "init"):
        archived = store.archive() if store.exists() else None
        seal.begin(store.root, run_id)  # the new run's key, before its first sealed file
        store.ensure_dirs()
        store.clear_current()  # a buffer left by an init killed before it wrote the config
        from ..io import lineage  # only `init` and `chain` write it
        lineage.write_parent(store, start.get("parent") if start else None)
        gitguard.pin(repo, store.root)
        try:
            pinned = harness.pin(repo, store.root, cfg.protect, pin_exclude(cfg), gitguard=gitguard.pins_digest(store.root))
        except OSError as e:
            raise UsageError(f"cannot read protected file {e.filename}: {e.strerror}; fix its permissions or --protect") from None
        changes, ignored = gitops.status_and_ignored(repo)
        carry.pin_user_files(repo, store.root, gitops.untracked_in(changes))
        cfg = record.replace(cfg, run_id=run_id, branch=branch or original, original_branch=original,
                                  start_commit=head, created=now_iso())
        if branch is not None:  # the ref now, the checkout last: a kill in between is finished by recover()
            githistory.create_branch(repo, branch, head)
            store.write_current({"iter": -1, "phase": "init", "branch": branch, "original_branch": original})
        store.write_config(cfg.to_dict())
        st = state.new_run(cfg.run_id, cfg.start_commit, gitops.untracked_in(changes), ignored,
                           archived=archived, harness=pinned)
        store.write_state(st)
        run = workspace.Run(repo, store, cfg, st)
        learning.start(run)
        faults.point("init-config")
        if branch is not None:
            githistory.checkout(repo, branch)
            store.clear_current()
    return run


def pin_exclude(cfg: configmod.Config) -> list:
    """Protected but never pinned: ratchet's state and the report (file, tracker
    folder or glob) that every trial rewrites."""
    src = cfg.source
    return [".ratchet"] + ([src.path] if src.kind not in sourcespec.STREAMS and src.path else [])


def _require_active(run: workspace.Run, baseline_done: bool = True) -> None:
    if run.state.stop:
        raise UsageError(f"the run has stopped ({run.state.stop}); start a new one with `init`")
    if baseline_done and run.state.iteration < 0:
        raise UsageError("no baseline yet; run `ratchet.py baseline` first")
    branch, want = gitops.current_branch(run.repo), run.config.branch
    if want and branch != want:  # a keep would commit onto the user's branch
        raise UsageError(f"HEAD is on {branch or 'a detached commit'}, not the run's branch {want}; "
                         f"`git checkout {want}` and retry")


def baseline(cwd: str) -> tuple:
    run = workspace.open_run(cwd)
    with Lock(run.store, "baseline"):
        notes = recover.recover(run)
        if run.state.iteration >= 0:
            raise UsageError("the baseline is already recorded (iteration 0); continue with `iterate`")
        _require_active(run, baseline_done=False)
        changed = harness.verify(run.repo, run.store.root)
        if changed:
            raise UsageError(f"protected files changed since init: {candidate.listing(changed)}; undo that or run init again")
        if gitops.tracked_changes(run.repo):
            raise UsageError("baseline measures the unmodified start commit, but tracked files have changes; "
                             "commit or undo them first")
        cur = {"iter": 0, "phase": "measuring", "hypothesis": "baseline", "description": "unmodified start commit",
               "started": now_iso(), "t0": time.time(), "trials": []}
        run.store.write_current(cur)
        calibrate = run.config.decision == "paired"
        count = max(run.config.trials, run.config.calibration_runs) if calibrate else run.config.trials
        win = harness.window(run.repo, run.store.root)
        trials = strategy.batch(run, cur, count, paired.seed_env(run.config, 0, 1) if calibrate else None, own=None)
        bad = decision.failed_trial(trials)
        if bad is not None:
            run.store.clear_current()
            raise UsageError(f"baseline failed on trial {bad['trial']}: {bad['detail']}; fix the benchmark "
                             f"(see `ratchet.py tail --iter 0`) and run `baseline` again")
        extra = _baseline_checks(run, trials, win)
        if calibrate:
            extra.update(paired.calibration([t["score"] for t in trials]))
        avg = decision.mean(t["score"] for t in trials)
        v = decision.Verdict(decision.BASELINE, avg, None, f"baseline: mean of {len(trials)} trial(s)")
        extra.update(kept=True, sha=run.state.incumbent_sha)  # the start commit is the first incumbent
        rec = finish.settle(run, cur, v, trials, extra, candidate.Candidate((), (), (), ()))
    return run, rec, notes


def _baseline_checks(run: workspace.Run, trials: list, window: dict | None = None) -> dict:
    """The unmodified code must pass what every candidate must pass: the
    harness stays as pinned, constraints hold, the guard passes. Otherwise
    the run is misconfigured, and saying so now beats rejecting every change."""
    cfg = run.config
    problem = None
    changed = harness.verify(run.repo, run.store.root)
    for rel, kind in (harness.rewritten(run.repo, window) if window else {}).items():
        changed.setdefault(rel, kind)
    carried = next((t["carried"] for t in trials if t.get("carried")), {})
    if carried.get("hooks"):
        problem = (f"the benchmark itself changes Python's startup hooks ({candidate.listing(carried['hooks'], 3)}; "
                   f"undone), so every run would tilt the next one; make it leave them alone, then run init again")
    elif carried:  # git's own files (a run's writes elsewhere are the benchmark's outputs, learned)
        what = {**carried.get("git", {}), **carried.get("outside", {})}
        problem = (f"the benchmark itself changes git's own files ({candidate.listing(what, 3)}; undone), so every run "
                   f"would tilt the next one; make it leave them alone, then run init again")
    elif changed:
        problem = (f"the benchmark itself changed protected files ({candidate.listing(changed, 3)}); make it write "
                   f"elsewhere or narrow --protect, then run init again")
    why = None if problem else constraints.violation(trials, cfg.constraints, cfg.metric_name)
    if why:
        problem = f"the unmodified code fails {why}; fix the limit or the code, then run init again"
    extra = {"metrics": pareto.averages(trials, [cfg.metric_name] + cfg.extra_names)}
    if cfg.warnings:
        extra["warnings"] = constraints.warnings(extra["metrics"], cfg.warnings)
    if not problem and cfg.guard_command:
        from ..measure import guard  # only a run with a guard loads it
        extra["guard"] = g = guard.run(cfg, run.repo, run.store, 0)
        if g["status"] != "ok":
            problem = (f"the guard fails on the unmodified code: {g['detail']} (see `ratchet.py tail --guard "
                       f"--iter 0`); fix it and run `baseline` again")
    if problem:
        run.store.clear_current()
        raise UsageError(problem)
    return extra


def run_holdout(cwd: str) -> workspace.Run:
    """`holdout`: evaluate the start and the final commit now."""
    run = workspace.open_run(cwd)
    if not run.config.holdout_command:
        raise UsageError("this run has no holdout; give --holdout-command CMD to `init` to have one")
    with Lock(run.store, "holdout"):
        recover.recover(run)
        if run.state.iteration < 0:
            raise UsageError("no baseline yet; run `ratchet.py baseline` first")
        from ..measure import holdout  # only a run with a holdout loads it
        run.holdout = holdout.run(run.config, run.repo, run.store.root, run.state)
    return run


def iterate(cwd: str, hypothesis: str, description: str = "", critic: dict | None = None,
            arm: str | None = None) -> tuple:
    """Measure the working tree as the agent left it, decide, commit or revert."""
    if not hypothesis.strip():
        raise UsageError("--hypothesis is required: one line saying what the change should improve and why")
    run = workspace.open_run(cwd)
    learning.check_arm(run.config, arm)
    with Lock(run.store, "iterate"):
        notes = recover.recover(run)
        rec = step(run, hypothesis, description, critic, notes, arm=arm)
    return run, rec, notes


def step(run: workspace.Run, hypothesis: str, description: str = "", critic: dict | None = None,
         notes: list | None = None, agent: dict | None = None, t0: float | None = None,
         arm: str | None = None) -> dict:
    """One `iterate` for a caller that holds the lock and has run `recover`.

    The headless loop calls it after its agent exits, passing the agent's
    usage (`agent`, recorded as the record's `agent` field), when the
    iteration began (`t0`, so the record's `seconds` include the agent) and
    the bandit arm the prompt asked for (`arm`).
    """
    _require_active(run)
    it = run.state.iteration + 1
    stale = run.store.read_current()
    if stale and stale.get("phase") == "measuring" and notes is not None:
        notes.append(f"discarded {len(stale.get('trials', []))} unfinished trial(s) of iteration {stale['iter']}; measuring again")
    cur = {"iter": it, "phase": "measuring", "hypothesis": hypothesis.strip(), "description": description.strip(),
           "critic": critic, "started": now_iso(), "t0": t0 or time.time(), "trials": [], "agent": agent}
    cur.update(arm=arm, similar=learning.similar(hypothesis, run.state))
    return _decide(run, cur, run_trials=True)


def check(run: workspace.Run) -> tuple:
    """(Candidate, verdict or None, record fields): the integrity checks of
    the tree's change before trials (tampered, no change, out of scope)."""
    cand = candidate.candidate(run)
    v, extra = integrity.before_trials(run, cand)
    return cand, v, extra


def _decide(run: workspace.Run, cur: dict, run_trials: bool) -> dict:
    """Judge the candidate in the tree (measuring it first when `run_trials`),
    then the one tail."""
    cand = candidate.candidate(run)
    if "ignored_new" not in cur:  # before any trial writes its outputs
        cur["ignored_new"] = candidate.ignored_new(run, cand)
    if cand.note:
        cur["note"] = cand.note
    v, extra = integrity.before_trials(run, cand)
    trials = cur.get("trials", [])
    if v is None:
        pair, win = None, None
        if run_trials:
            trials, pair, win = strategy.measure(run, cur, cand)
        v, extra = strategy.assess(run, cur["iter"], trials, pair, win)
    return finish.settle(run, cur, v, trials, extra, cand)


def verify(cwd: str, pairs: int | None = None) -> tuple:
    """`verify`: paired re-measurement of the start commit against the best."""
    if pairs is not None and pairs < 2:
        raise UsageError(f"--pairs must be at least 2 (got {pairs})")
    run = workspace.open_run(cwd)
    with Lock(run.store, "verify"):
        notes = recover.recover(run)
        if run.state.iteration < 0:
            raise UsageError("no baseline yet; run `ratchet.py baseline` first")
        cur = run.store.read_current()
        if cur and cur.get("phase") == "measuring" and cur.get("trials"):
            raise UsageError("an iteration is being measured (run-trial); decide it first")
        verified = recheck.remeasure(run, pairs)
        if verified:
            run.save(state.with_verified(run.state, verified, run.config))  # a --threshold it confirms stops
            finish.holdout_at_stop(run)
    return run, verified, notes


def run_one(cwd: str) -> tuple:
    """`run-trial`: one more trial of the current candidate, buffered."""
    run = workspace.open_run(cwd)
    with Lock(run.store, "run-trial"):
        notes = recover.recover(run)
        _require_active(run)
        it = run.state.iteration + 1
        cur = run.store.read_current()
        if not cur or cur.get("iter") != it or cur.get("phase") != "measuring":
            cur = {"iter": it, "phase": "measuring", "started": now_iso(), "t0": time.time(), "trials": []}
        cand = candidate.candidate(run)
        if "ignored_new" not in cur:
            cur["ignored_new"] = candidate.ignored_new(run, cand)
        v, extra = integrity.before_trials(run, cand)
        if v is None:
            cur["candidate"] = cand.to_dict()
            fresh.switched(run.repo, cand.paths)
            win = harness.window(run.repo, run.store.root)
            t = trial.watched_trial(run, it, len(cur["trials"]) + 1, own=cand.paths)
            cur["trials"].append(t)
            run.store.write_current(cur)
            after = integrity.after_batch(run, "while the candidate ran", win, cur["trials"])
            if after is None:
                return run, t, None, notes
            v, extra = after
        return run, None, finish.settle(run, cur, v, cur["trials"], extra, cand), notes


def score(cwd: str, value: str, trial: int | None = None) -> dict:
    """`score VALUE`: the agent's reading of a report no extractor could read."""
    try:
        x = float(value)
    except ValueError:
        raise UsageError(f"score {value!r} is not a number") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise UsageError(f"score {value!r} is not finite; a nan/inf result is a crash, not a score")
    run = workspace.open_run(cwd)
    with Lock(run.store, "score"):
        cur = run.store.read_current()
        if not cur or cur.get("phase") != "measuring" or not cur.get("trials"):
            raise UsageError("no trial to score; run `ratchet.py run-trial` first")
        idx = (trial or len(cur["trials"])) - 1
        if not 0 <= idx < len(cur["trials"]):
            raise UsageError(f"--trial {trial} does not exist; trials run so far: {len(cur['trials'])}")
        t = cur["trials"][idx]
        if t["status"] in ("crash", "timeout"):
            raise UsageError(f"trial {t['trial']} {t['status']}ed ({t['detail']}); a failed run cannot be scored")
        cur["trials"][idx] = {**t, "score": x, "status": "ok", "detail": "scored by the agent"}
        run.store.write_current(cur)
        return cur["trials"][idx]


def decide(cwd: str, hypothesis: str, description: str = "", critic: dict | None = None,
           arm: str | None = None) -> tuple:
    """`decide`: judge the buffered trials of this iteration."""
    if not hypothesis.strip():
        raise UsageError("--hypothesis is required")
    run = workspace.open_run(cwd)
    learning.check_arm(run.config, arm)
    with Lock(run.store, "decide"):
        notes = recover.recover(run)
        _require_active(run)
        cur = run.store.read_current()
        if not cur or cur.get("phase") != "measuring" or not cur.get("trials"):
            raise UsageError("no trials recorded for this iteration; use `run-trial` first (or `iterate`)")
        n, failed = len(cur["trials"]), decision.failed_trial(cur["trials"])
        if failed is None and n < run.config.trials:
            raise UsageError(f"{n} of {run.config.trials} trials run; run `run-trial` again before deciding")
        cur.update(hypothesis=hypothesis.strip(), description=description.strip(), critic=critic)
        cur.update(arm=arm, similar=learning.similar(hypothesis, run.state))
        rec = _decide(run, cur, run_trials=False)
    return run, rec, notes


def stop(cwd: str) -> tuple:
    """End the run and return to the user's branch; the experiment stays."""
    run = workspace.open_run(cwd)
    with Lock(run.store, "stop"):
        notes = recover.recover(run)
        cancelled, left = executor.cancel_run(run.config)
        if cancelled:
            notes.append(f"cancelled {len(cancelled)} job(s) of this run still queued or running")
        if left:
            unclean.write(run.store, "jobs of the run that `stop` could not cancel", left)
            notes.append(f"{len(left)} job(s) could not be cancelled ({left[0]['cmd']}); see .ratchet/UNCLEAN")
        cand = candidate.candidate(run) if run.state.iteration >= 0 else None
        if cand and cand.paths:
            it = run.state.iteration + 1
            patch = run.store.path("patches", f"iter-{it:04d}-unfinished.patch")
            atomic_write(patch, gitpatch.diff_patch(run.repo, list(cand.tracked), list(cand.new)).encode("utf-8", "surrogateescape"))
            faults.point("stop-saved")
            gitpatch.back_to_head(run.repo, list(cand.tracked), list(cand.new))
            fresh.switched(run.repo, cand.paths)
            notes.append(f"an unfinished change was saved to {os.path.relpath(patch, run.repo)} and undone")
        elif gitops.tracked_changes(run.repo):
            raise UsageError("tracked files have uncommitted changes; commit or stash them before `stop`")
        changed = harness.verify(run.repo, run.store.root)
        if changed:
            lost = harness.restore(run.repo, run.store.root, changed)
            notes.append(f"restored protected files changed since init: {candidate.listing(changed)}"
                         + (f"; could not restore {', '.join(lost[:3])}" if lost else ""))
        moved = gitguard.verify(run.repo, run.store.root)
        if moved:
            lost = gitguard.restore(run.repo, run.store.root, moved)
            notes.append(f"restored git's configuration changed since init: {candidate.listing(moved)}"
                         + (f"; could not restore {', '.join(lost[:3])}" if lost else ""))
        run.save(state.stopped(run.state, "stopped by user"))
        finish.verify_when_due(run)
        learning.write_program(run, run.state)
        finish.holdout_at_stop(run)
        cfg = run.config
        if cfg.original_branch and cfg.branch != cfg.original_branch and gitops.current_branch(run.repo) != cfg.original_branch:
            githistory.checkout(run.repo, cfg.original_branch)
    return run, notes
