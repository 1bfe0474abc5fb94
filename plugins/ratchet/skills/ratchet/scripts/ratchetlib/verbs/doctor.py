"""`ratchet.py doctor`: is this benchmark usable? A preflight before `init`.

It takes the init flags that say what to measure (run command, metric,
report source, trials, timeout, protect, editable, min-improvement) or, with
none, the current run's config, and checks in order: git present and recent
enough, a work tree (not bare) on a branch (not detached) with commits and
clean tracked files, no survivors of an earlier trial, the flags, then runs
the command a few times through the engine's own trial path
(`trial.run_trial`: same capture, same metric extraction, same process-tree
kill, same heartbeat) and reports whether it ran, whether the metric was
read, the trial time, the noise, what that noise implies, the protected
paths and the timeout. Every check is one `Check` (ok, warn or fail) with a
one-line fix for warn and fail; the verb exits 0 when nothing failed, 2
otherwise.

Nothing is left behind in the user's tree beyond what the command itself
writes: the trials' captured reports live in a temporary folder in the
system temp (removed at the end), and a report file the user already had,
which a trial moves aside like every trial does (capture.py), is put back.

The checks on the measured runs are in doctor_runs, the pure figures (and the
`Check` record) in doctor_figures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time

from ..core import record, sourcespec
from ..measure import capture
from ..io import executor, workspace
from ..measure import trial
from ..io import gitops, harness
from ..core import paths, term
from ..core import config as configmod
from ..core.errors import RatchetError, UsageError
from ..io.store import Store
from ..io.store_lock import Lock
from .doctor_figures import Check, FAIL, OK, WARN
from .doctor_runs import BUDGET_SECONDS, MAX_SUGGESTED_TRIALS, run_checks, timeout_check

MIN_GIT = (2, 17)              # `git worktree remove` (the holdout) is the newest command ratchet uses
DEFAULT_RUNS = 5
DOCTOR_TIMEOUT = 600.0         # the limit of one run when no --trial-timeout-seconds is given


def _git_checks(cwd: str, checks: list) -> str | None:
    """git, repository, branch, commits, clean tree; the root, or None when
    nothing else can be checked."""
    v = gitops.version()
    if v is None:
        checks.append(Check("git", FAIL, "git is not installed or not on PATH", "install git 2.17 or newer"))
        return None
    shown = ".".join(map(str, v))
    if v < MIN_GIT:
        checks.append(Check("git", FAIL, f"git {shown} is older than 2.17", "upgrade git to 2.17 or newer"))
    else:
        checks.append(Check("git", OK, f"git {shown}"))
    try:
        root = gitops.find_root(cwd)
    except UsageError as e:
        checks.append(Check("repository", FAIL, str(e).split(";")[0],
                            "run from your project's git work tree (`git init` and a first commit if it has none)"))
        return None
    if gitops.head_sha(root) is None:
        checks.append(Check("repository", FAIL, f"{root} has no commits yet", "commit your project first"))
        return None
    checks.append(Check("repository", OK, root))
    branch = gitops.current_branch(root)
    if branch is None:
        checks.append(Check("branch", FAIL, "HEAD is detached (init needs a branch to return to)",
                            "git switch -c NAME (or check out your branch)"))
    else:
        checks.append(Check("branch", OK, branch + (" (shallow clone)" if gitops.is_shallow(root) else "")))
    dirty = gitops.tracked_changes(root)
    if dirty:
        more = f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""
        checks.append(Check("clean tree", FAIL, f"uncommitted changes to tracked files: {', '.join(dirty[:3])}{more}",
                            "commit or stash them: init refuses a dirty tree"))
    else:
        checks.append(Check("clean tree", OK, "no uncommitted changes to tracked files"))
    return root


def _ratchet_state(root: str, checks: list) -> dict | None:
    """The earlier run, if any (a warning when active); a fail for survivors."""
    store = Store(root)
    from ..io import unclean
    if unclean.load(store) is not None:  # a corrupt marker blocks trials too
        checks.append(Check("leftover processes", FAIL, "an earlier trial's processes survived (.ratchet/UNCLEAN)",
                            "stop them, then run `ratchet.py clean`"))
    cfg = store.read_config() if store.exists() else None
    if cfg is not None:
        st = store.read_state()
        if st is None or not st.stop:
            checks.append(Check("earlier run", WARN, f"run {cfg.get('run_id')} is active on {cfg.get('branch')}",
                                "`ratchet.py stop` it first if you mean to start over (init archives it)"))
    return cfg


def _config(root: str, flags: dict, existing: dict | None, checks: list) -> configmod.Config | None:
    if not flags.get("run_command"):
        if existing is not None:
            checks.append(Check("flags", OK, f"none given: checking run {existing.get('run_id')}'s settings"))
            return configmod.from_dict(existing)
        checks.append(Check("flags", FAIL, "no --run-command given and no run in this repository",
                            "give the init flags: --run-command CMD --metric-name NAME --report-source stdout"))
        return None
    given = dict(flags)
    assumed = not given.get("report_source")
    if assumed:  # what init does too: most benchmarks print their metric
        given["report_source"] = "stdout"
    if not given.get("direction") and not given.get("metric"):
        given["direction"] = "max"  # only the margin check reads it; said below
        checks.append(Check("direction", WARN, "no --direction given", "add --direction max or min (init needs it)"))
    try:
        cfg = configmod.build(given, root, harness.commands_name(given, root))
        executor.validate(cfg.executor, cfg.executor_options)
    except UsageError as e:
        checks.append(Check("flags", FAIL, str(e), "correct the flag; `ratchet.py init --help` lists them"))
        return None
    tracked = capture.tracked_outputs(root, cfg.source)
    if tracked:
        checks.append(Check("report source", FAIL, f"{cfg.report_source} names file(s) git tracks: {', '.join(tracked)}",
                            "git rm --cached them and ignore them: every trial rewrites them"))
        return None
    checks.append(Check("flags", OK, f"metric {cfg.metric_name} from {cfg.report_source}"
                        + (" (no --report-source given: stdout assumed, as init does)" if assumed else "")))
    return cfg


def _measure(root: str, cfg: configmod.Config, runs: int | None, tmp: str) -> tuple:
    """Run the command up to `runs` times (default: DEFAULT_RUNS within the
    budget), its reports in the folder `tmp`; (trials, timeout used)."""
    timeout = cfg.trial_timeout_seconds or DOCTOR_TIMEOUT
    run_cfg = record.replace(cfg, trial_timeout_seconds=timeout)
    store = Store(root)
    store.root = tmp
    store.ensure_dirs()
    run = workspace.Run(root, store, run_cfg, {})
    want = runs or DEFAULT_RUNS
    moved = capture.to_move(root, cfg.source)
    trials, t0 = [], time.monotonic()
    try:
        for k in range(1, want + 1):
            if k > 1 and runs is None and trials:
                per = max(t["seconds"] for t in trials)
                if time.monotonic() - t0 + per > BUDGET_SECONDS:
                    break
            t = trial.run_trial(run, 0, k, label=f"doctor run {k}/{want}")
            trials.append(t)
            if t["status"] != "ok":
                break
    finally:
        _put_back(root, tmp, moved)
    return trials, timeout


def _put_back(root: str, tmp: str, moved: list) -> None:
    """Return the report files the user had to where they were."""
    for rel in moved:
        saved = os.path.join(tmp, "reports", "original-" + capture.flat_name(rel))
        if os.path.exists(saved):
            os.replace(saved, os.path.join(root, rel))


def _protect_checks(root: str, cfg, checks: list) -> None:
    src = cfg.source.path if cfg.source.kind not in sourcespec.STREAMS else None
    specs = [s for s in cfg.protect if s not in (".ratchet", src)]
    if not specs:
        checks.append(Check("protected", WARN, "nothing but .ratchet/ is protected: the agent could edit the benchmark",
                            "--protect the files that measure (e.g. --protect bench.py tests/)"))
        return
    missing, found = [], []
    for spec in specs:
        files, _ = harness.protected_files(root, [spec], [".ratchet"])
        (found if files else missing).append((spec, len(files)))
    auto = set(cfg.auto_protected)
    shown = ", ".join(f"{s}{' (named by a command)' if s in auto else ''}" + (f" ({n} files)" if n > 1 else "")
                      for s, n in found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
    if missing:
        checks.append(Check("protected", FAIL, f"matches no file: {', '.join(s for s, _ in missing[:5])}"
                            + (f" (found: {shown})" if found else ""),
                            "check the spelling: protect paths are relative to the repository root"))
    else:
        checks.append(Check("protected", OK, shown))


def _outputs_check(root: str, before: set, cfg, checks: list) -> None:
    src = cfg.source.path if cfg.source.kind not in sourcespec.STREAMS else None
    new = [p for p in gitops.untracked(root) if p not in before and p.split("/")[0] != ".ratchet"
           and not (src and paths.matches(p, src))]
    if new:
        checks.append(Check("outputs", WARN, f"the command leaves {len(new)} untracked file(s): {', '.join(new[:3])}",
                            "add them to .gitignore so they are never mistaken for part of a change"))


def _executor_check(root: str, cfg, checks: list) -> None:
    """--executor slurm|ray: the commands, and a 1 s test job round trip (executor.py).
    Its files go in a folder inside the repository, which the nodes must share."""
    if cfg.executor == "local":
        return
    folder = tempfile.mkdtemp(prefix=".ratchet-doctor-", dir=root)
    try:
        for status, message, fix in executor.doctor_checks(cfg, folder):
            checks.append(Check("executor", status, message, fix or ""))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def doctor(cwd: str, flags: dict, runs: int | None = None) -> dict:
    """All checks; {"ok", "checks", "measurement", "suggested"}."""
    if runs is not None and runs < 1:
        raise UsageError("--runs must be >= 1")
    checks = []
    root = _git_checks(cwd, checks)
    cfg = fig = None
    if root is not None:
        existing = _ratchet_state(root, checks)
        cfg = _config(root, flags, existing, checks)
    if cfg is not None:
        _executor_check(root, cfg, checks)
    blocked = any(c.name == "leftover processes" or (c.name == "executor" and c.status == FAIL) for c in checks)
    if cfg is not None and not blocked:
        store = Store(root)
        before = set(gitops.untracked(root))
        dirty_before = set(gitops.tracked_changes(root))
        # a cluster's jobs write their output themselves: into the repository, which the nodes share
        tmp = tempfile.mkdtemp(prefix=".ratchet-doctor-" if cfg.executor != "local" else "ratchet-doctor-",
                               dir=root if cfg.executor != "local" else None)
        # With a run in this repository, hold its lock: no iteration measures while doctor runs the command.
        with (Lock(store, "doctor") if store.exists() else contextlib.nullcontext()):
            try:
                trials, timeout = _measure(root, cfg, runs, tmp)
                if trials:
                    fig = run_checks(cfg, trials, tmp, timeout, checks)
                    timeout_check(cfg, fig, checks)
            except RatchetError as e:  # survivors of the kill: the measurement is void
                checks.append(Check("run command", FAIL, str(e).split(";")[0], "stop those processes (kill PID)"))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        changed = [p for p in gitops.tracked_changes(root) if p not in dirty_before]
        if changed:
            checks.append(Check("side effects", FAIL, f"the command changes tracked files: {', '.join(changed[:3])}",
                                "make it write elsewhere (or untrack and ignore those files); undo with git checkout"))
        _outputs_check(root, before, cfg, checks)
        _protect_checks(root, cfg, checks)
    suggested = {}
    if fig:
        if fig.get("suggested_timeout") and cfg.trial_timeout_seconds is None:
            suggested["trial_timeout_seconds"] = fig["suggested_timeout"]
        if fig.get("suggested_trials", cfg.trials) > cfg.trials and fig["suggested_trials"] <= MAX_SUGGESTED_TRIALS:
            suggested["trials"] = fig["suggested_trials"]
        if fig.get("suggested_max_trials") and fig["suggested_max_trials"] > cfg.max_trials:
            suggested["max_trials"] = fig["suggested_max_trials"]
        if fig.get("false_keep", 0) > 0.05 and fig.get("suggested_min_improvement_pct"):
            suggested["min_improvement"] = f"{fig['suggested_min_improvement_pct']:.2g}%"
    return {"format": 1, "ok": not any(c.status == FAIL for c in checks),
            "checks": [c.to_dict() for c in checks], "measurement": fig or None, "suggested": suggested}


def human(result: dict, color: bool = False) -> str:
    """One line per check (`ok`, `warn`, `FAIL`), a `fix:` line under each
    warn and fail, and a closing count; printable (term.printable) apart
    from the colour it adds itself."""
    lines = []
    for c in result["checks"]:
        label = {OK: "ok", WARN: "warn", FAIL: "FAIL"}[c["status"]]
        lines.append(f"{term.paint(label.ljust(4), c['status'], color)}  "
                     + term.printable(f"{c['name']}: {c['detail']}"))
        if c["status"] != OK and c["fix"]:
            lines.append(term.printable(f"      fix: {c['fix']}"))
    fails = sum(c["status"] == FAIL for c in result["checks"])
    warns = sum(c["status"] == WARN for c in result["checks"])
    if result["suggested"]:
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in result["suggested"].items())
        lines.append(term.printable(f"suggested init flags: {flags}"))
    lines.append(f"doctor: {fails} fail, {warns} warn: " + (
        "fix the FAIL lines before `init`" if fails else "ready for `init`" + (" (see the warnings)" if warns else "")))
    return "\n".join(lines)
