"""The verbs' workflows: where config, runner, metrics, decision, store and
git meet. The CLI parses flags and prints; everything it does goes through
one of the public functions here, each of which takes the repository lock.

Crash safety rests on one ordering, used by every decision:
  1. current.json records the decision (phase `decided`) and the candidate's
     paths, before git is touched;
  2. git acts (commit with a `Ratchet-Iteration` trailer, or save the patch
     and restore the incumbent; a `tampered` decision first restores the
     pinned harness, see harness.py);
  3. the record is appended to results.jsonl;
  4. state.json is replaced, current.json removed.
A command that starts after a kill at any point runs `recover()`, which
finishes step 2-4 from the buffer (idempotently) or rolls state forward from
a record already written, kills the processes the killed command left
running, and reports what it did. The fault-injection suite
(tests/test_kill_points.py) SIGKILLs commands at each of `faults.POINTS`.
"""

import dataclasses
import os
import secrets
import shutil
import sys
import time
from typing import Optional

from . import budget
from . import config as configmod
from . import artifacts, capture, decision, gitops, heartbeat, learning, lineage, metrics, paths, runner, unclean
from . import constraints, guard, harness, holdout, pareto, sources
from . import carry, executor, gitguard
from . import clip, faults, fresh, term
from . import paired
from .errors import RatchetError, UsageError
from . import seal
from .store import Lock, Store, adopt, atomic_write, now_iso, put_back


@dataclasses.dataclass
class Run:
    repo: str
    store: Store
    config: configmod.Config
    state: dict
    holdout: Optional[dict] = None  # set when this command ran the holdout
    verify_error: Optional[str] = None  # set when an automatic verify could not run



@dataclasses.dataclass(frozen=True)
class Candidate:
    """What the agent changed since the incumbent, sorted by scope."""

    tracked: tuple
    new: tuple
    protected: tuple
    outside: tuple
    note: Optional[str] = None
    kinds: tuple = ()  # (path, edited|deleted|added|staged) for each protected path git reports

    @property
    def paths(self) -> list:
        return list(self.tracked) + list(self.new)

    def to_dict(self) -> dict:
        return {"tracked": list(self.tracked), "new": list(self.new), "note": self.note}


# --- opening a run ------------------------------------------------------------

def load(cwd: str) -> Run:
    """Open the run, its contract verified first (seal.py): a sealed file
    changed outside ratchet stops the command here, before anything runs."""
    repo = gitops.find_root(cwd)
    store = Store(repo)
    seal.forget(store.root)
    if store.exists():
        adopted = adopt(store.root)
        if adopted:
            sys.stderr.write(f"ratchet: {adopted}\n")
    cfg = store.read_config()
    if cfg is None:
        raise UsageError("no ratchet run in this repository; start one with `ratchet.py init --run-command ...`")
    state = store.read_state()
    if seal.is_sealed(store.root):
        for name, found in (("state.json", state), ("harness.json", harness.load(store.root))):
            if found is None and not (name == "harness.json" and (state or {}).get("unpinned")):
                raise seal.missing(store.root, name)
    return Run(repo, store, configmod.from_dict(cfg), state or {})


def _initial_state(cfg: configmod.Config, repo: str) -> dict:
    return {"run_id": cfg.run_id, "iteration": -1, "incumbent_sha": cfg.start_commit,
            "incumbent_score": None, "baseline": None, "best": None, "best_iter": None,
            "last_score": None, "since_keep": 0, "consecutive_crashes": 0,
            "counts": {}, "stop": None, "untracked_before": gitops.untracked(repo),
            "ignored_before": gitops.ignored(repo)}


def init(cwd: str, args: dict, start: Optional[dict] = None) -> Run:
    """Validate flags, check the repository, create the experiment branch.

    `start` (from `chain`) makes the run begin at another commit than HEAD:
    {"sha", "original_branch", "parent"}; `parent` is written to the
    read-only `.ratchet/parent.json` of the new run.
    """
    repo = gitops.find_root(cwd)
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
    cfg = configmod.build(args, repo)
    tracked = capture.tracked_outputs(repo, cfg.source)
    if tracked:
        raise UsageError(f"--report-source {cfg.report_source} names file(s) git tracks ({', '.join(tracked)}); every "
                         f"trial rewrites them, so they must not be committed: `git rm --cached` them (and ignore "
                         f"them), then init again")
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
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
        lineage.write_parent(store, start.get("parent") if start else None)
        try:
            pinned = harness.pin(repo, store.root, cfg.protect, pin_exclude(cfg))
        except OSError as e:
            raise UsageError(f"cannot read protected file {e.filename}: {e.strerror}; fix its permissions or --protect") from None
        gitguard.pin(repo, store.root)
        carry.pin_user_files(repo, store.root, gitops.untracked(repo))
        cfg = dataclasses.replace(cfg, run_id=run_id, branch=branch or original, original_branch=original,
                                  start_commit=head, created=now_iso())
        if branch is not None:  # the ref now, the checkout last: a kill in between is finished by recover()
            gitops.create_branch(repo, branch, head)
            store.write_current({"iter": -1, "phase": "init", "branch": branch, "original_branch": original})
        store.write_config(cfg.to_dict())
        state = _initial_state(cfg, repo)
        state["archived"] = archived
        state["harness"] = pinned
        store.write_state(state)
        run = Run(repo, store, cfg, state)
        learning.start(run)
        faults.point("init-config")
        if branch is not None:
            gitops.checkout(repo, branch)
            store.clear_current()
    return run


def pin_exclude(cfg: configmod.Config) -> list:
    """Protected but never pinned: ratchet's state and the report (file, tracker
    folder or glob) that every trial rewrites."""
    src = cfg.source
    return [".ratchet"] + ([src.path] if src.kind not in sources.STREAMS and src.path else [])


# --- trials -------------------------------------------------------------------

def run_trial(run: Run, iteration: int, k: int, env: Optional[dict] = None, label: Optional[str] = None) -> dict:
    """Run trial k of `iteration`, capture its report, extract the metric,
    then keep only the head and tail of a huge captured output (clip.py).
    `label` names the trial in the heartbeat (doctor's runs are not iterations)."""
    trial = _run_trial(run, iteration, k, env, label)
    cut = {ext: n for ext in ("txt", "out", "err") for n in [clip.clip(run.store.report_path(iteration, k, ext))] if n}
    return {**trial, "clipped": cut} if cut else trial


def _run_trial(run: Run, iteration: int, k: int, env: Optional[dict] = None, label: Optional[str] = None) -> dict:
    cfg, store = run.config, run.store
    out, err, report = (store.report_path(iteration, k, ext) for ext in ("out", "err", "txt"))
    unclean.refuse_if_marked(store)
    src = cfg.source
    capture.move_aside(run.repo, store.path("reports"), src)
    before = artifacts.snapshot(run.repo, cfg.artifact_globs)
    beat = heartbeat.for_trial(label or f"iter {iteration} trial {k}/{cfg.trials}", cfg.trial_timeout_seconds)
    tr = executor.run(cfg, cfg.run_command, run.repo, out, err, cfg.trial_timeout_seconds, env, beat,
                      cancel_command=cfg.cancel_command, cancel_log=store.report_path(iteration, k, "cancel"),
                      trial=(iteration, k))
    ended = time.time()
    if tr.survivors:
        unclean.mark(store, tr, iteration, k)
    if cfg.report_source == "stdout":
        os.replace(out, report)
    elif cfg.report_source == "stderr":
        os.replace(err, report)
    elif cfg.report_path:
        full = os.path.join(run.repo, cfg.report_path)
        if os.path.isfile(full) and os.path.getmtime(full) >= tr.started - 1.0:
            shutil.copyfile(full, report)
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
        capture.settle(ended, next((p for p in (out, err, report) if os.path.exists(p)), None))
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
        ex = dataclasses.replace(ex, detail=ex.detail + "; the metric is in stderr: init again with --report-source stderr")
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


def _measure(run: Run, cur: dict, count: int, env: Optional[dict] = None, own: Optional[list] = None) -> list:
    """Run trials until `count` are done or one fails (or writes outside its
    change); buffer each one. `own`: the candidate's paths (None: the
    baseline, whose writes are the benchmark's outputs, carry.learn)."""
    while len(cur["trials"]) < count:
        t = watched_trial(run, cur["iter"], len(cur["trials"]) + 1, env, own=own)
        cur["trials"].append(t)
        run.store.write_current(cur)
        faults.point("trial-done")
        if t["status"] != "ok" or t.get("carried"):
            break
    return cur["trials"]


def watched_trial(run: Run, iteration: int, k: int, env: Optional[dict] = None, label: Optional[str] = None,
                  own: Optional[list] = None) -> dict:
    """`run_trial` bracketed by carry.watch/written: the run of the unmodified
    code (`own` None) teaches its outputs; a candidate's run (`own`: its paths)
    that wrote elsewhere, or any run that planted a startup hook, is undone at
    once and the trial carries `carried` (the iteration is then `tampered`)."""
    before = carry.watch(run)
    try:
        t = run_trial(run, iteration, k, env, label)
    except BaseException:  # Ctrl-C or SIGTERM mid-trial: what the run planted must not outlive the command
        moved, hooks = carry.written(run, before, () if own is None else own)
        carry.undo(run, before, moved if own is not None else {}, hooks)
        raise
    moved, hooks = carry.written(run, before, () if own is None else own)
    if own is None:
        run.state = carry.learn(run.repo, run.state, moved, [])
        moved = {}
    # protected files are the harness's to report and restore, after the batch (_after_batch)
    moved = {p: k for p, k in moved.items() if paths.classify(p, (), run.config.protect) != paths.PROTECTED}
    git = gitguard.verify(run.repo, run.store.root)  # put back now: the next swap checks files out
    if moved or hooks or git:
        lost = carry.undo(run, before, moved, hooks) + gitguard.restore(run.repo, run.store.root, git)
        t["carried"] = {"outside": moved, "hooks": hooks, "git": git, "lost": lost,
                        "role": "candidate" if own is not None else "incumbent"}
    return t


# --- candidates and decisions -------------------------------------------------

def candidate(run: Run) -> Candidate:
    """The agent's change against the incumbent, undoing self-made commits."""
    repo, st, cfg = run.repo, run.state, run.config
    note = None
    head = gitops.head_sha(repo)
    if head != st["incumbent_sha"]:
        branch = gitops.current_branch(repo)
        if branch != cfg.branch:
            raise UsageError(f"HEAD is on {branch or 'a detached commit'}, not the run's branch {cfg.branch}; "
                             f"`git checkout {cfg.branch}` and retry")
        gitops.soft_reset(repo, st["incumbent_sha"])
        note = (f"the agent committed {head[:10]} itself; its change is measured as this iteration's candidate "
                f"(the commit was undone and is re-made on keep)")
    before = set(st.get("untracked_before") or ())
    changes = gitops.status(repo)
    theirs = [c.path for c in changes if c.xy[0] == "A" and c.path in before]
    if theirs:  # untracked files that were there before, staged by the agent's `git add -A`: not its change
        gitops.git(repo, "reset", "-q", "--", *theirs)
        changes = gitops.status(repo)
        note = (note + "; " if note else "") + f"unstaged {_listing(dict.fromkeys(theirs, 'untracked before'), 3)}"
    mode_only = [c.path for c in changes if c.xy == " M" and paths.classify(c.path, cfg.editable, cfg.protect)
                 == paths.PROTECTED and harness.content_unchanged(repo, run.store.root, c.path)]
    if mode_only:  # a chmod is not tampering; put the mode back so git sees no change
        gitops.git(repo, "checkout", "-q", "HEAD", "--", *mode_only)
        changes = [c for c in changes if c.path not in mode_only]
        note = (note + "; " if note else "") + f"mode change of protected {', '.join(mode_only[:3])} undone (content unchanged)"
    changes = _refuse_nested(repo, changes, before)
    tracked = sorted(c.path for c in changes if not c.untracked)
    new = sorted(c.path for c in changes if c.untracked and c.path not in before)
    scope = {p: paths.classify(p, cfg.editable, cfg.protect) for p in tracked + new}
    xy = {c.path: c.xy for c in changes}
    protected = tuple(p for p, s in scope.items() if s == paths.PROTECTED)
    return Candidate(tuple(tracked), tuple(new), protected,
                     tuple(p for p, s in scope.items() if s == paths.OUTSIDE), note,
                     tuple((p, _git_kind(xy[p], repo, run.store.root, p)) for p in protected))


def _refuse_nested(repo: str, changes: list, before: set) -> list:
    """An edit inside a submodule (or a nested repository) is refused: git
    cannot diff, swap, commit or revert its files from this repository, so
    measuring it would report a revert that leaves the edit in place, and a
    keep would point at a submodule commit that exists nowhere else. A
    submodule dirty only with bytecode (its modules were imported) is no
    change: it is dropped from `changes`; one the user had at init
    (`before`) is theirs, as any untracked file."""
    nested = gitops.nested_repos(repo, [c.path for c in changes if c.path not in before])
    subs = [p.rstrip("/") for p in nested if gitops.nested_edited(repo, p)]
    if subs:
        s = subs[0]
        raise UsageError(f"the change is inside git submodule or nested repository {', '.join(subs[:3])}, which ratchet "
                         f"cannot swap, commit or revert from this repository; undo it (git -C {s} stash -u, then "
                         f"git submodule update -- {s} if its commit moved) and change this repository's own files, "
                         f"or run ratchet inside {s}")
    return [c for c in changes if c.path not in nested]


def ignored_new(run: Run) -> list:
    """Git-ignored entries made since init outside any trial (by the agent,
    usually): a kept change that reads one works here and crashes in a clean
    checkout of the branch. Not counted: what trials write (it is absorbed
    into `ignored_before` after each decision), `.ratchet/`, bytecode, the
    report and --artifact-glob matches. A new file inside an ignored folder
    that already existed is not seen (the folder is one entry)."""
    cfg = run.config
    if "ignored_before" not in run.state:  # a run started before this was kept: nothing to compare with
        return []
    before = set(run.state["ignored_before"])
    skip = [".ratchet"] + list(cfg.artifact_globs) + ([cfg.report_path] if cfg.report_path else [])
    out = []
    for p in gitops.ignored(run.repo):
        rel = p.rstrip("/")
        if p in before or paths.matches_any(rel, skip) or rel.rsplit("/", 1)[-1] == "__pycache__" \
                or rel.endswith((".pyc", ".pyo")):
            continue
        out.append(p)
    return out


def _git_kind(xy: str, repo: str, store_root: str, path: str) -> str:
    """How git sees a protected path: `staged` is a change in the index only."""
    if xy == "??" or "A" in xy:
        return harness.ADDED
    if "D" in xy:
        return harness.DELETED
    return "staged" if harness.content_unchanged(repo, store_root, path) else harness.EDITED


def _listing(changes: dict, n: int = 5) -> str:
    items = [f"{p} ({k})" for p, k in list(changes.items())[:n]]
    return ", ".join(items) + (f" and {len(changes) - n} more" if len(changes) > n else "")


def _tampered(run: Run, changes: dict, when: str) -> tuple:
    """The `tampered` verdict and its record fields for harness `changes`."""
    lost = harness.unrestorable(run.store.root, changes)
    reason = (f"tampered: protected file(s) changed {when}: {_listing(changes)}; "
              f"the harness was restored and the candidate reverted")
    if lost:
        reason += f"; no copy to restore {', '.join(lost[:3])}: the run stops"
    extra = {"tampered": changes, **({"unrestorable": lost} if lost else {})}
    return decision.Verdict(decision.TAMPERED, None, None, reason), extra


def _integrity_verdict(run: Run, cand: Candidate) -> tuple:
    """Before trials: (verdict, record fields) for a tampered harness, no
    change, or a change outside the editable scope; (None, {}) otherwise."""
    changes = {**_sealed_changes(run), **harness.verify(run.repo, run.store.root)}
    changes.update(gitguard.verify(run.repo, run.store.root))
    for p in gitguard.attributes_in(cand.paths):
        changes.setdefault(p, harness.ADDED if p in cand.new else harness.EDITED)
    for p, kind in cand.kinds:
        changes.setdefault(p, kind)
    if changes:
        return _tampered(run, dict(sorted(changes.items())), "before the trials")
    if not cand.paths:
        return decision.Verdict(decision.NO_CHANGE, None, None, "no change: the working tree equals the incumbent"), {}
    if cand.outside:
        return (decision.Verdict(decision.OUT_OF_SCOPE, None, None,
                                 f"out-of-scope: changed path(s) outside the editable scope: {', '.join(cand.outside[:5])}"),
                {"out_of_scope": list(cand.outside)})
    return None, {}


def _after_batch(run: Run, when: str, window: Optional[dict] = None, trials=()) -> Optional[tuple]:
    """After trials or the guard ran candidate code: `tampered` if the harness,
    a sealed file or git's configuration moved, if a pinned file was rewritten
    since `window` (harness.window, taken before that code ran) even though its
    content is back, or if a run wrote outside its change (carry.py, already
    undone by `watched_trial`)."""
    changes = {**_sealed_changes(run), **harness.verify(run.repo, run.store.root)}
    changes.update(gitguard.verify(run.repo, run.store.root))
    for rel, kind in (harness.rewritten(run.repo, window) if window else {}).items():
        changes.setdefault(rel, kind)
    if changes:
        return _tampered(run, dict(sorted(changes.items())), when)
    hit = next((t["carried"] for t in trials if t.get("carried")), None)
    if hit is None:
        return None
    if hit.get("git"):
        v, extra = _tampered(run, hit["git"], when)
        return v, {**extra, **({"outside_writes": hit["outside"]} if hit["outside"] else {})}
    who = "the candidate's run" if hit["role"] == "candidate" else "an incumbent run"
    extra = {"outside_writes": hit["outside"], "startup_hooks": hit["hooks"]}
    if hit["lost"]:
        extra["not_restored"] = hit["lost"]
    return decision.Verdict(decision.TAMPERED, None, None, carry.reason(hit["outside"], hit["hooks"], hit["lost"], who)), extra


def _sealed_changes(run: Run) -> dict:
    """Sealed `.ratchet/` files rewritten while this command ran (by a trial,
    the guard or the agent): put back at once, before the harness is read,
    and reported as tampered paths (`.ratchet/config.json`: edited)."""
    names = seal.changed(run.store.root)
    put_back(run.store.root, names)
    return {f".ratchet/{n}": harness.EDITED for n in names}


def _judge(run: Run, it: int, trials: list, pair: Optional[tuple] = None) -> tuple:
    """Crash/timeout, then constraints, then the metric(s), then the guard.

    `pair` = (stats verdict or None, incumbent trials) of a paired
    measurement (paired.py): the test's verdict replaces the mean rule, and
    several metrics are compared with the incumbent as measured in the pairs."""
    cfg, st = run.config, run.state
    avgs = pareto.averages(trials, [cfg.metric_name] + cfg.extra_names)
    extra = {"metrics": avgs}
    if pair is not None:
        bad = decision.failed_trial(pair[1])
        if bad is not None:
            return decision.Verdict(decision.TIMEOUT if bad["status"] == "timeout" else decision.CRASH, avgs[cfg.metric_name],
                                    None, f"incumbent run failed (pair {bad['pair']}, trial {bad['trial']}): "
                                    f"{bad.get('detail') or bad['status']}; the benchmark or machine is unstable"), \
                {**extra, "incumbent_trials": pair[1]}
    if decision.failed_trial(trials) is not None:
        return decision.judge(trials, st["incumbent_score"], cfg), extra
    if cfg.warnings:
        extra["warnings"] = constraints.warnings(avgs, cfg.warnings)
    why = constraints.violation(trials, cfg.constraints, cfg.metric_name)
    if why:
        inc = st["incumbent_score"]
        return decision.Verdict(decision.CONSTRAINT, avgs[cfg.metric_name], avgs[cfg.metric_name] - inc,
                                f"{why}; reverted"), extra
    if pair is not None:
        sv, inc_trials = pair
        extra.update(paired.evidence(cfg, sv, trials, inc_trials))
        inc = decision.mean(t["score"] for t in inc_trials)
        extra["incumbent"] = inc
    if len(cfg.objectives) > 1:
        incumbent = st.get("incumbent_metrics") or {cfg.metric_name: st["incumbent_score"]}
        if pair is not None:
            incumbent = pareto.averages(pair[1], [n for n, _, _ in cfg.objectives])
        v, extra["compare"] = pareto.judge(avgs, incumbent, cfg.objectives)
    elif pair is not None:
        avg = avgs[cfg.metric_name]
        v = decision.Verdict(decision.KEEP if sv.keep else decision.REVERT, avg, avg - inc, sv.reason)
    else:
        v = decision.judge(trials, st["incumbent_score"], cfg)
    if v.decision == decision.KEEP and cfg.guard_command:
        win = harness.window(run.repo, run.store.root)
        extra["guard"] = g = guard.run(cfg, run.repo, run.store, it)
        tampered = _after_batch(run, "while the guard ran", win)
        if tampered:
            return tampered[0], {**extra, **tampered[1]}
        if g["status"] != "ok":
            return decision.Verdict(decision.GUARD_FAILED, v.avg, v.delta,
                                    f"guard-failed: {g['detail']}; reverted although the metric would keep it "
                                    f"({v.reason})"), extra
    return v, extra


def _record(iteration: int, v: decision.Verdict, trials: list, incumbent, cur: dict, cand: Candidate,
            extra: Optional[dict] = None) -> dict:
    rec = {"iter": iteration, "hypothesis": cur.get("hypothesis", ""), "description": cur.get("description", ""),
            "trial_scores": [t.get("score") for t in trials], "avg": v.avg, "decision": v.decision,
            "kept": v.decision == decision.KEEP, "sha": None, "incumbent": incumbent, "delta": v.delta,
            "timestamp": now_iso(), "reason": v.reason + (f" ({cand.note})" if cand.note else ""),
            "trials": trials, "changed": cand.paths, "patch": None, "critic": cur.get("critic"),
            "seconds": round(time.time() - cur.get("t0", time.time()), 3), "agent": cur.get("agent")}
    rec.update(extra or {})
    made = cur.get("ignored_new")
    if made:
        rec["ignored_new"] = list(made)
        if rec["kept"]:
            shown = ", ".join(made[:5]) + (f" and {len(made) - 5} more" if len(made) > 5 else "")
            rec["reason"] += (f"; not part of the commit: git-ignored {shown}, made since init (a clean checkout "
                              f"of the branch will not have it: `git add -f` what the change needs)")
    return rec


def apply_record(state: dict, rec: dict, cfg: configmod.Config) -> dict:
    """The run state after `rec`: pure, so recovery can replay it."""
    st = dict(state)
    counts = dict(st.get("counts") or {})
    counts[rec["decision"]] = counts.get(rec["decision"], 0) + 1
    st["counts"], st["iteration"] = counts, rec["iter"]
    d = rec["decision"]
    if rec.get("avg") is not None:
        st["last_score"] = rec["avg"]
    if d in (decision.KEEP, decision.BASELINE):
        st["incumbent_sha"], st["incumbent_score"] = rec["sha"], rec["avg"]
        st["incumbent_metrics"] = rec.get("metrics") or {cfg.metric_name: rec["avg"]}
        if len(cfg.objectives) > 1:
            point = {"iter": rec["iter"], "sha": rec["sha"], "metrics": st["incumbent_metrics"]}
            st["pareto"] = pareto.update_frontier(st.get("pareto"), point, cfg.objectives)
        if st.get("best") is None or cfg.better(rec["avg"], st["best"]):
            st["best"], st["best_iter"] = rec["avg"], rec["iter"]
        if d == decision.BASELINE:
            st["baseline"] = rec["avg"]
        st["since_keep"] = 0
    elif d != decision.INTERRUPTED:
        st["since_keep"] = st.get("since_keep", 0) + 1
    if d in decision.FAILURES:
        st["consecutive_crashes"] = st.get("consecutive_crashes", 0) + 1
    elif d in (decision.KEEP, decision.REVERT, decision.BASELINE):
        st["consecutive_crashes"] = 0
    agent = budget.fold(st.get("agent"), rec)
    if agent is not None:
        st["agent"] = agent
    if rec.get("unrestorable"):
        st["stop"] = st.get("stop") or (f"harness could not be restored ({', '.join(rec['unrestorable'][:3])}); "
                                        f"restore it by hand and start a new run")
    st["stop"] = st.get("stop") or decision.stop_reason(st, cfg)
    st = learning.fold(st, rec, cfg)
    st = paired.fold(st, rec, cfg)
    return st


def _apply_git(run: Run, rec: dict, cand: dict) -> dict:
    """Commit (keep) or save the patch and restore the incumbent (others).

    Idempotent, so recovery can call it again after a kill part-way.
    """
    repo, it = run.repo, rec["iter"]
    tracked, new = cand.get("tracked", []), cand.get("new", [])
    if rec["decision"] == decision.KEEP:
        head = gitops.head_sha(repo)
        if head != run.state["incumbent_sha"] and gitops.commit_trailer(repo, head) == it:
            return {**rec, "sha": head}
        title = (rec.get("description") or rec.get("hypothesis") or "change").splitlines()[0][:72]
        msg = term.printable(f"ratchet: iter {it}: {title}\n\n{rec['reason']}\n\n{gitops.TRAILER}: {it}\n")
        rec = {**rec, "sha": gitops.commit_paths(repo, tracked + new, msg)}
        faults.point("committed")
        return rec
    if rec["decision"] == decision.TAMPERED:  # git's own files first: the revert below checks files out
        gitguard.restore(repo, run.store.root)
        harness.restore(repo, run.store.root)
    if tracked or new:
        patch_file = run.store.patch_path(it)
        # The patch never carries harness changes: re-applying it must not tamper again.
        mine = [p for p in tracked + new if paths.classify(p, run.config.editable, run.config.protect) != paths.PROTECTED
                and p not in gitguard.attributes_in([p])]
        if mine and not os.path.exists(patch_file):
            patch = gitops.diff_patch(repo, [p for p in tracked if p in mine], [p for p in new if p in mine])
            atomic_write(patch_file, patch.encode("utf-8", "surrogateescape"))
        gitops.restore(repo, tracked, new)
        fresh.switched(repo, tracked + new)
        faults.point("reverted")
        if mine:
            rec = {**rec, "patch": os.path.relpath(patch_file, run.store.root)}
    return rec


def _finalize(run: Run, rec: dict, cand: dict) -> dict:
    """Steps 1-4 of the module docstring for one decided iteration."""
    run.store.write_current({"iter": rec["iter"], "phase": "decided", "decision": rec, "candidate": cand})
    faults.point("decided")
    rec = _apply_git(run, rec, cand)
    rec = artifacts.apply(run.store.root, run.repo, run.config, rec)
    run.store.append_record(rec)
    faults.point("recorded")
    _commit_state(run, rec)
    return rec


def _commit_state(run: Run, rec: dict) -> None:
    st = apply_record(run.state, rec, run.config)
    st["untracked_before"] = gitops.untracked(run.repo)
    # what the trials wrote joins; what the agent made stays out until a keep has named it
    pending = set() if rec.get("kept") else set(rec.get("ignored_new") or ())
    st["ignored_before"] = [p for p in gitops.ignored(run.repo) if p not in pending]
    learning.persist(run, rec, st)
    run.store.write_state(st)
    faults.point("state-renamed")
    run.store.clear_current()
    run.state = st


def recover(run: Run) -> list:
    """Finish whatever a killed command left half-done; return notes (also
    kept in state["recovered"], which `status` shows)."""
    killed = run.store.taken_over
    notes = _leftover_processes(run) + (_leftover_jobs(run, killed) if killed else [])
    fixed = run.store.repair()
    if fixed:
        notes.append(fixed)
    notes += artifacts.recover(run.store.root)
    last = run.store.records(last=1)
    try:
        cur = run.store.read_current()
    except seal.SealError:  # forged, not torn: nothing may act on it
        raise
    except UsageError:  # the buffer of an unfinished iteration is unreadable: measure it again
        notes.append(f"current.json was unreadable; set aside as {run.store.set_aside('current.json')}, "
                     f"and the unfinished iteration is measured again")
        cur = None
    if last and last[-1]["iter"] > run.state.get("iteration", -1):
        rec = last[-1]
        if not run.store.record_trusted(rec):
            raise seal.SealError(f".ratchet/results.jsonl's last record (iteration {rec['iter']}) was not written by "
                                 f"ratchet (it does not match its seal); nothing was run. Remove that line, or start "
                                 f"a new run with `init`")
        if rec.get("kept") and rec.get("sha") and gitops.head_sha(run.repo) != rec["sha"]:
            notes.append(f"record of iteration {rec['iter']} found but HEAD is not its commit; state left as is")
        else:
            _commit_state(run, rec)
            notes.append(f"iteration {rec['iter']} was recorded but the state was not updated; state rolled forward")
        cur = None
    if cur and cur.get("phase") == "decided":
        if last and last[-1]["iter"] == cur["iter"]:
            run.store.clear_current()
        else:
            rec = _finalize(run, cur["decision"], cur.get("candidate") or {})
            notes.append(f"finished iteration {rec['iter']} ({rec['decision']}) that a killed command had decided")
    elif cur and cur.get("phase") == "measuring" and cur.get("swap"):
        notes += paired.recover(run, cur)
    elif cur and cur.get("phase") == "verifying":
        notes += paired.recover_verify(run, cur)
    elif cur and cur.get("phase") == "agent":
        runner.kill_marked(cur.get("markers") or [])
        if cur.get("iter") == run.state.get("iteration", -1) + 1 and not run.state.get("stop"):
            rec = abandon(run, decision.INTERRUPTED, "interrupted: the loop was killed while the agent worked", cur)
            notes.append(f"iteration {rec['iter']} was cut short by a killed `loop`; recorded as interrupted"
                         + (f", its change saved in .ratchet/{rec['patch']} and undone" if rec.get("patch") else ""))
        else:
            run.store.clear_current()
    elif cur and cur.get("phase") == "init":
        notes += _finish_init(run, cur)
    if notes:
        _remember(run, notes)
    return notes


def _leftover_processes(run: Run) -> list:
    """A killed command's trial, guard or agent processes run on without it:
    kill them (found by the marker prefix its lock names, runner.py)."""
    holder, run.store.taken_over = run.store.taken_over, None
    if not holder or not isinstance(holder.get("pid"), int):
        return []
    killed, left = runner.kill_left_by(holder["pid"], holder.get("pid_start"))
    if not killed:
        return []
    what = f"the killed `{holder.get('verb') or 'ratchet'}` (pid {holder['pid']})"
    if left:
        unclean.write(run.store, f"left by {what}", left)
        return [f"{len(left)} process(es) {what} left running survived a kill (pid "
                f"{', '.join(str(p['pid']) for p in left[:5])}); trials are blocked until `ratchet.py clean`"]
    return [f"killed {len(killed)} process(es) {what} left running"]


def _leftover_jobs(run: Run, holder: dict) -> list:
    """The remote jobs (slurm, ray) a killed command left queued or running:
    cancel them all (they carry the run id, executor.py); UNCLEAN for any left."""
    what = f"the killed `{holder.get('verb') or 'ratchet'}` (pid {holder.get('pid')})"
    missing = executor.missing_commands(run.config.executor) if run.config.executor != "local" else []
    if missing:
        return [f"jobs {what} may have left could not be checked ({', '.join(missing)} not on PATH): cancel "
                f"jobs named {executor.prefix(run.config.run_id)}* by hand"]
    cancelled, left = executor.cancel_run(run.config)
    if left:
        unclean.write(run.store, f"jobs left by {what}", left)
        return [f"{len(left)} job(s) {what} left could not be cancelled ({left[0]['cmd']}); trials are blocked "
                f"until `ratchet.py clean`"]
    return [f"cancelled {len(cancelled)} job(s) {what} left: {', '.join(c['cmd'] for c in cancelled[:3])}"] \
        if cancelled else []


def _finish_init(run: Run, cur: dict) -> list:
    """An `init` killed between creating the experiment branch and checking it out."""
    branch = cur.get("branch")
    here = gitops.current_branch(run.repo)
    switch = bool(branch and here != branch and here == cur.get("original_branch")
                  and gitops.branch_exists(run.repo, branch) and not gitops.tracked_changes(run.repo))
    if switch:
        gitops.checkout(run.repo, branch)
    run.store.clear_current()
    return [f"a killed `init` had not checked out the run's branch; switched to {branch}"] if switch else []


def _remember(run: Run, notes: list) -> None:
    """The last recovery into state.json, so `status` can tell it later."""
    prev = run.state.get("recovered") or {}
    st = {**run.state, "recovered": {"count": prev.get("count", 0) + 1, "at": now_iso(),
                                     "iteration": run.state.get("iteration", -1), "notes": notes[:8]}}
    run.store.write_state(st)
    run.state = st


def recover_for_status(run: Run) -> tuple:
    """`status` recovers too when no live command holds the lock, so the first
    look after a crash says what was fixed: (notes, the live holder or None)."""
    try:
        with Lock(run.store, "status"):
            return recover(run), None
    except seal.SealError:
        raise
    except UsageError:  # a live command holds the lock (or .ratchet/ is read-only): only look
        return [], Lock(run.store, "status").holder()
    except (RatchetError, OSError) as e:
        return [f"could not finish the recovery ({e}); the next command retries"], None


# --- the verbs ------------------------------------------------------------------

def _require_active(run: Run, baseline_done: bool = True) -> None:
    if run.state.get("stop"):
        raise UsageError(f"the run has stopped ({run.state['stop']}); start a new one with `init`")
    if baseline_done and run.state.get("iteration", -1) < 0:
        raise UsageError("no baseline yet; run `ratchet.py baseline` first")
    branch, want = gitops.current_branch(run.repo), run.config.branch
    if want and branch != want:  # a keep would commit onto the user's branch
        raise UsageError(f"HEAD is on {branch or 'a detached commit'}, not the run's branch {want}; "
                         f"`git checkout {want}` and retry")


def baseline(cwd: str) -> tuple:
    run = load(cwd)
    with Lock(run.store, "baseline"):
        notes = recover(run)
        if run.state.get("iteration", -1) >= 0:
            raise UsageError("the baseline is already recorded (iteration 0); continue with `iterate`")
        _require_active(run, baseline_done=False)
        changed = harness.verify(run.repo, run.store.root)
        if changed:
            raise UsageError(f"protected files changed since init: {_listing(changed)}; undo that or run init again")
        if gitops.tracked_changes(run.repo):
            raise UsageError("baseline measures the unmodified start commit, but tracked files have changes; "
                             "commit or undo them first")
        cur = {"iter": 0, "phase": "measuring", "hypothesis": "baseline", "description": "unmodified start commit",
               "started": now_iso(), "t0": time.time(), "trials": []}
        run.store.write_current(cur)
        calibrate = run.config.decision == "paired"
        count = max(run.config.trials, run.config.calibration_runs) if calibrate else run.config.trials
        win = harness.window(run.repo, run.store.root)
        trials = _measure(run, cur, count, paired.seed_env(run.config, 0, 1) if calibrate else None, own=None)
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
        cand = Candidate((), (), (), ())
        rec = _record(0, v, trials, None, cur, cand, extra)
        rec["kept"], rec["sha"] = True, run.state["incumbent_sha"]
        rec = artifacts.apply(run.store.root, run.repo, run.config, rec)
        run.store.append_record(rec)
        _commit_state(run, rec)
    return run, rec, notes


def _baseline_checks(run: Run, trials: list, window: Optional[dict] = None) -> dict:
    """The unmodified code must pass what every candidate must pass: the
    harness stays as pinned, constraints hold, the guard passes. Otherwise
    the run is misconfigured, and saying so now beats rejecting every change."""
    cfg = run.config
    problem = None
    changed = harness.verify(run.repo, run.store.root)
    for rel, kind in (harness.rewritten(run.repo, window) if window else {}).items():
        changed.setdefault(rel, kind)
    planted = next((t["carried"]["hooks"] for t in trials if t.get("carried")), None)
    if planted:
        problem = (f"the benchmark itself changes Python's startup hooks ({_listing(planted, 3)}; undone), so "
                   f"every run would tilt the next one; make it leave them alone, then run init again")
    elif changed:
        problem = (f"the benchmark itself changed protected files ({_listing(changed, 3)}); make it write "
                   f"elsewhere or narrow --protect, then run init again")
    why = None if problem else constraints.violation(trials, cfg.constraints, cfg.metric_name)
    if why:
        problem = f"the unmodified code fails {why}; fix the limit or the code, then run init again"
    extra = {"metrics": pareto.averages(trials, [cfg.metric_name] + cfg.extra_names)}
    if cfg.warnings:
        extra["warnings"] = constraints.warnings(extra["metrics"], cfg.warnings)
    if not problem and cfg.guard_command:
        extra["guard"] = g = guard.run(cfg, run.repo, run.store, 0)
        if g["status"] != "ok":
            problem = (f"the guard fails on the unmodified code: {g['detail']} (see `ratchet.py tail --guard "
                       f"--iter 0`); fix it and run `baseline` again")
    if problem:
        run.store.clear_current()
        raise UsageError(problem)
    return extra


def _holdout_at_stop(run: Run) -> None:
    """Once the run has stopped, evaluate the holdout (once per final commit)."""
    cfg, st = run.config, run.state
    if not (st.get("stop") and cfg.holdout_command and st.get("iteration", -1) >= 0):
        return
    done = holdout.load(run.store.root)
    if done and (done.get("best") or {}).get("sha") == st.get("incumbent_sha"):
        return
    try:
        run.holdout = holdout.run(cfg, run.repo, run.store.root, st)
    except (RatchetError, OSError) as e:  # the run's record stands; say why there is no holdout
        run.holdout = {"held": None, "summary": f"the holdout could not run: {e}"}


def run_holdout(cwd: str) -> Run:
    """`holdout`: evaluate the start and the final commit now."""
    run = load(cwd)
    if not run.config.holdout_command:
        raise UsageError("this run has no holdout; give --holdout-command CMD to `init` to have one")
    with Lock(run.store, "holdout"):
        recover(run)
        if run.state.get("iteration", -1) < 0:
            raise UsageError("no baseline yet; run `ratchet.py baseline` first")
        run.holdout = holdout.run(run.config, run.repo, run.store.root, run.state)
    return run


def iterate(cwd: str, hypothesis: str, description: str = "", critic: Optional[dict] = None,
            arm: Optional[str] = None) -> tuple:
    """Measure the working tree as the agent left it, decide, commit or revert."""
    if not hypothesis.strip():
        raise UsageError("--hypothesis is required: one line saying what the change should improve and why")
    run = load(cwd)
    learning.check_arm(run.config, arm)
    with Lock(run.store, "iterate"):
        notes = recover(run)
        rec = step(run, hypothesis, description, critic, notes, arm=arm)
    return run, rec, notes


def step(run: Run, hypothesis: str, description: str = "", critic: Optional[dict] = None,
         notes: Optional[list] = None, agent: Optional[dict] = None, t0: Optional[float] = None,
         arm: Optional[str] = None) -> dict:
    """One `iterate` for a caller that holds the lock and has run `recover`.

    The headless loop calls it after its agent exits, passing the agent's
    usage (`agent`, recorded as the record's `agent` field), when the
    iteration began (`t0`, so the record's `seconds` include the agent) and
    the bandit arm the prompt asked for (`arm`).
    """
    _require_active(run)
    it = run.state["iteration"] + 1
    stale = run.store.read_current()
    if stale and stale.get("phase") == "measuring" and notes is not None:
        notes.append(f"discarded {len(stale.get('trials', []))} unfinished trial(s) of iteration {stale['iter']}; measuring again")
    cur = {"iter": it, "phase": "measuring", "hypothesis": hypothesis.strip(), "description": description.strip(),
           "critic": critic, "started": now_iso(), "t0": t0 or time.time(), "trials": [], "agent": agent}
    cur.update(arm=arm, similar=learning.similar(hypothesis, run.state))
    return _decide(run, cur, run_trials=True)


def abandon(run: Run, kind: str, reason: str, cur: dict) -> dict:
    """Record iteration `cur["iter"]` as `kind` (agent-error, interrupted)
    without judging it: the trials run so far are kept, the candidate in the
    tree is saved as the patch and undone. A harness the agent changed makes
    it `tampered` instead (the harness is restored). The caller holds the lock."""
    cand = candidate(run)
    cur.setdefault("ignored_new", ignored_new(run))
    v, extra = _integrity_verdict(run, cand)
    if v is None or v.decision != decision.TAMPERED:
        v, extra = decision.Verdict(kind, None, None, reason), {}
    else:
        v = dataclasses.replace(v, reason=f"{v.reason} ({reason.split(':', 1)[0]} as well)")
    return settle(run, cur, v, cur.get("trials") or [], extra, cand)


def check(run: Run) -> tuple:
    """(Candidate, verdict or None, record fields): the integrity checks of
    the tree's change before trials (tampered, no change, out of scope)."""
    cand = candidate(run)
    v, extra = _integrity_verdict(run, cand)
    return cand, v, extra


def measure(run: Run, it: int, first: int = 1, own=None) -> tuple:
    """Trials of the candidate in the tree from trial number `first`, then the
    integrity check after them and the judgement (constraints, metric(s),
    guard): (verdict, record fields, trials). For callers that hold the lock
    and buffer the iteration themselves (`loop --parallel`)."""
    trials, win = [], harness.window(run.repo, run.store.root)
    own = list(own or ())
    while len(trials) < run.config.trials:
        t = watched_trial(run, it, first + len(trials), own=own)
        trials.append(t)
        if t["status"] != "ok" or t.get("carried"):
            break
    v, extra = _after_batch(run, "while the candidate ran", win, trials) or _judge(run, it, trials)
    return v, extra, trials


def settle(run: Run, cur: dict, v: decision.Verdict, trials: list, extra: Optional[dict] = None,
           cand: Optional[Candidate] = None) -> dict:
    """Finish iteration `cur["iter"]` on a verdict reached by the caller (a
    parallel round, an abandoned iteration): a keep commits the candidate in
    the tree, anything else saves it as the patch and undoes it; `extra`
    fields join the record. The caller holds the lock."""
    cand = cand or candidate(run)
    rec = _record(cur["iter"], v, trials, run.state.get("incumbent_score"), cur, cand, extra)
    rec.update(arm=cur.get("arm"), similar=cur.get("similar"))
    rec = _finalize(run, rec, cand.to_dict())
    _holdout_at_stop(run)
    _verify_when_due(run)
    return rec


def _decide(run: Run, cur: dict, run_trials: bool) -> dict:
    cand = candidate(run)
    if "ignored_new" not in cur:  # before any trial writes its outputs
        cur["ignored_new"] = ignored_new(run)
    if cand.note:
        cur["note"] = cand.note
    v, extra = _integrity_verdict(run, cand)
    trials = cur.get("trials", [])
    if v is None:
        pair, win = None, None
        if run_trials:
            cur["candidate"] = cand.to_dict()
            run.store.write_current(cur)
            fresh.switched(run.repo, cand.paths)  # the agent's edit may share a second (and a size) with a cached side
            win = harness.window(run.repo, run.store.root)
            if run.config.decision == "paired":
                trials, inc_trials, sv, _ = paired.measure(run, cur, cand, watched_trial)
                pair = (sv, inc_trials)
            else:
                trials = _measure(run, cur, run.config.trials, own=cand.paths)
        every = list(trials) + list(pair[1] if pair else [])
        v, extra = _after_batch(run, "while the candidate ran", win, every) or _judge(run, cur["iter"], trials, pair)
        if pair and "incumbent_trials" not in extra:  # a tampered pair still shows what the incumbent did
            extra = {**extra, "incumbent_trials": pair[1]}
    rec = _record(cur["iter"], v, trials, run.state["incumbent_score"], cur, cand, extra)
    rec.update(arm=cur.get("arm"), similar=cur.get("similar"))
    rec = _finalize(run, rec, cand.to_dict())
    _holdout_at_stop(run)
    _verify_when_due(run)
    return rec


def _verify_when_due(run: Run) -> None:
    """Paired runs: re-measure start vs best at the stop and every --verify-every iterations."""
    if not paired.due(run):
        return
    try:
        verified = paired.verify(run, run_trial)
    except (RatchetError, UsageError, OSError) as e:  # the decision stands; say why there is no verified gain
        run.verify_error = str(e)
        return
    if verified:
        st = {**run.state, "verified": verified}
        run.store.write_state(st)
        run.state = st


def verify(cwd: str, pairs: Optional[int] = None) -> tuple:
    """`verify`: paired re-measurement of the start commit against the best."""
    if pairs is not None and pairs < 2:
        raise UsageError(f"--pairs must be at least 2 (got {pairs})")
    run = load(cwd)
    with Lock(run.store, "verify"):
        notes = recover(run)
        if run.state.get("iteration", -1) < 0:
            raise UsageError("no baseline yet; run `ratchet.py baseline` first")
        cur = run.store.read_current()
        if cur and cur.get("phase") == "measuring" and cur.get("trials"):
            raise UsageError("an iteration is being measured (run-trial); decide it first")
        verified = paired.verify(run, run_trial, pairs)
        if verified:
            st = {**run.state, "verified": verified}
            run.store.write_state(st)
            run.state = st
    return run, verified, notes


def run_one(cwd: str) -> tuple:
    """`run-trial`: one more trial of the current candidate, buffered."""
    run = load(cwd)
    with Lock(run.store, "run-trial"):
        notes = recover(run)
        _require_active(run)
        it = run.state["iteration"] + 1
        cur = run.store.read_current()
        if not cur or cur.get("iter") != it or cur.get("phase") != "measuring":
            cur = {"iter": it, "phase": "measuring", "started": now_iso(), "t0": time.time(), "trials": []}
        cand = candidate(run)
        if "ignored_new" not in cur:
            cur["ignored_new"] = ignored_new(run)
        v, extra = _integrity_verdict(run, cand)
        if v is None:
            cur["candidate"] = cand.to_dict()
            fresh.switched(run.repo, cand.paths)
            win = harness.window(run.repo, run.store.root)
            t = watched_trial(run, it, len(cur["trials"]) + 1, own=cand.paths)
            cur["trials"].append(t)
            run.store.write_current(cur)
            after = _after_batch(run, "while the candidate ran", win, cur["trials"])
            if after is None:
                return run, t, None, notes
            v, extra = after
        rec = _record(it, v, cur["trials"], run.state["incumbent_score"], cur, cand, extra)
        rec = _finalize(run, rec, cand.to_dict())
        _holdout_at_stop(run)
        return run, None, rec, notes


def score(cwd: str, value: str, trial: Optional[int] = None) -> dict:
    """`score VALUE`: the agent's reading of a report no extractor could read."""
    try:
        x = float(value)
    except ValueError:
        raise UsageError(f"score {value!r} is not a number") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise UsageError(f"score {value!r} is not finite; a nan/inf result is a crash, not a score")
    run = load(cwd)
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


def decide(cwd: str, hypothesis: str, description: str = "", critic: Optional[dict] = None,
           arm: Optional[str] = None) -> tuple:
    """`decide`: judge the buffered trials of this iteration."""
    if not hypothesis.strip():
        raise UsageError("--hypothesis is required")
    run = load(cwd)
    learning.check_arm(run.config, arm)
    with Lock(run.store, "decide"):
        notes = recover(run)
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
    run = load(cwd)
    with Lock(run.store, "stop"):
        notes = recover(run)
        cancelled, left = executor.cancel_run(run.config)
        if cancelled:
            notes.append(f"cancelled {len(cancelled)} job(s) of this run still queued or running")
        if left:
            unclean.write(run.store, "jobs of the run that `stop` could not cancel", left)
            notes.append(f"{len(left)} job(s) could not be cancelled ({left[0]['cmd']}); see .ratchet/UNCLEAN")
        cand = candidate(run) if run.state.get("iteration", -1) >= 0 else None
        if cand and cand.paths:
            it = run.state["iteration"] + 1
            patch = run.store.path("patches", f"iter-{it:04d}-unfinished.patch")
            atomic_write(patch, gitops.diff_patch(run.repo, list(cand.tracked), list(cand.new)).encode("utf-8", "surrogateescape"))
            faults.point("stop-saved")
            gitops.restore(run.repo, list(cand.tracked), list(cand.new))
            fresh.switched(run.repo, cand.paths)
            notes.append(f"an unfinished change was saved to {os.path.relpath(patch, run.repo)} and undone")
        elif gitops.tracked_changes(run.repo):
            raise UsageError("tracked files have uncommitted changes; commit or stash them before `stop`")
        changed = harness.verify(run.repo, run.store.root)
        if changed:
            lost = harness.restore(run.repo, run.store.root, changed)
            notes.append(f"restored protected files changed since init: {_listing(changed)}"
                         + (f"; could not restore {', '.join(lost[:3])}" if lost else ""))
        moved = gitguard.verify(run.repo, run.store.root)
        if moved:
            lost = gitguard.restore(run.repo, run.store.root, moved)
            notes.append(f"restored git's configuration changed since init: {_listing(moved)}"
                         + (f"; could not restore {', '.join(lost[:3])}" if lost else ""))
        st = dict(run.state)
        st["stop"] = st.get("stop") or "stopped by user"
        run.store.write_state(st)
        run.state = st
        _verify_when_due(run)
        learning.write_program(run, run.state)
        _holdout_at_stop(run)
        cfg = run.config
        if cfg.original_branch and cfg.branch != cfg.original_branch and gitops.current_branch(run.repo) != cfg.original_branch:
            gitops.checkout(run.repo, cfg.original_branch)
    return run, notes
