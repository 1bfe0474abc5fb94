"""`ratchet.py doctor`: is this benchmark usable? A preflight before `init`.

It takes the init flags that say what to measure (run command, metric,
report source, trials, timeout, protect, editable, min-improvement) or, with
none, the current run's config, and checks in order: git present and recent
enough, a work tree (not bare) on a branch (not detached) with commits and
clean tracked files, no survivors of an earlier trial, the flags, then runs
the command a few times through the engine's own trial path
(`engine.run_trial`: same capture, same metric extraction, same process-tree
kill, same heartbeat) and reports whether it ran, whether the metric was
read, the trial time, the noise, what that noise implies, the protected
paths and the timeout. Every check is one `Check` (ok, warn or fail) with a
one-line fix for warn and fail; the verb exits 0 when nothing failed, 2
otherwise.

Nothing is left behind in the user's tree beyond what the command itself
writes: the trials' captured reports live in a temporary folder in the
system temp (removed at the end), and a report file the user already had,
which a trial moves aside like every trial does (capture.py), is put back.

The noise figures are deliberately simple (issue 3 brings the paired test):
from n runs, sd is the sample standard deviation and CV = sd / |mean|. With
N = --trials runs per iteration, comparing two means of N:
- the smallest effect detected with power 0.8 at two-sided alpha 0.05 is
  MDE = (1.96 + 0.84) * sqrt(2) * sd / sqrt(N) ~= 2.8 * sqrt(2) * sd / sqrt(N);
- the engine keeps a change whose mean beats the incumbent by more than the
  margin, so a change that does nothing is kept with probability
  1 - Phi(margin / (sd * sqrt(2 / N))): 50% with no margin. A margin of
  1.645 * sd * sqrt(2 / N) brings that to 5%.
Both assume roughly normal, independent runs; n = 3..5 runs estimate sd
roughly, which is why these lines warn rather than fail.
"""

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
import time
from typing import Optional

from . import capture, engine, gitops, harness, paths, sources, term
from . import config as configmod
from .errors import RatchetError, UsageError
from .store import Lock, Store, read_json

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_GIT = (2, 17)              # `git worktree remove` (the holdout) is the newest command ratchet uses
DEFAULT_RUNS = 5
BUDGET_SECONDS = 120.0         # extra runs for the noise stop once they would pass this (unless --runs)
DOCTOR_TIMEOUT = 600.0         # the limit of one run when no --trial-timeout-seconds is given
Z_POWER = 2.8                  # 1.96 (alpha 0.05, two-sided) + 0.84 (power 0.8)
Z_FALSE_KEEP = 1.645           # one-sided 5%
GOAL_PCT = 2.0                 # the effect to be able to see when no --min-improvement says otherwise
MAX_SUGGESTED_TRIALS = 50
NOISY_CV_PCT = 5.0


@dataclasses.dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- pure figures ---------------------------------------------------------------

def noise(scores: list) -> dict:
    """mean, sd (sample), cv (percent) of the scores; sd None below two."""
    n = len(scores)
    mean = math.fsum(scores) / n if n else None
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "cv_pct": None}
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in scores) / (n - 1))
    return {"n": n, "mean": mean, "sd": sd, "cv_pct": sd / abs(mean) * 100 if mean else None}


def mde(sd: float, trials: int) -> float:
    """The smallest detectable difference of two means of `trials` runs (module docstring)."""
    return Z_POWER * math.sqrt(2) * sd / math.sqrt(trials)


def false_keep_rate(sd: float, trials: int, margin: float) -> float:
    """P(a no-op change is kept) when a keep needs mean > incumbent + margin."""
    if sd <= 0:
        return 0.0
    z = margin / (sd * math.sqrt(2 / trials))
    return 0.5 * math.erfc(z / math.sqrt(2))


def trials_for(sd: float, mean: float, goal_pct: float, trials: int) -> int:
    """--trials that bring the MDE down to goal_pct of |mean|."""
    goal = abs(mean) * goal_pct / 100
    if goal <= 0:
        return trials
    return max(trials, math.ceil((Z_POWER * math.sqrt(2) * sd / goal) ** 2))


def suggest_timeout(max_seconds: float) -> int:
    """Three times the slowest run, at least 10 s, rounded up to a round number."""
    t = max(10.0, 3 * max_seconds)
    step = 5 if t < 60 else (30 if t < 600 else 300)
    return int(math.ceil(t / step) * step)


def _s(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _num(x) -> str:
    return f"{x:.4g}"


# --- the checks -------------------------------------------------------------------

def _git_checks(cwd: str, checks: list) -> Optional[str]:
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


def _ratchet_state(root: str, checks: list) -> Optional[dict]:
    """The earlier run, if any (a warning when active); a fail for survivors."""
    store = Store(root)
    from . import unclean
    if unclean.load(store) is not None:  # a corrupt marker blocks trials too
        checks.append(Check("leftover processes", FAIL, "an earlier trial's processes survived (.ratchet/UNCLEAN)",
                            "stop them, then run `ratchet.py clean`"))
    cfg = store.read_config() if store.exists() else None
    if cfg is not None:
        st = store.read_state() or {}
        if not st.get("stop"):
            checks.append(Check("earlier run", WARN, f"run {cfg.get('run_id')} is active on {cfg.get('branch')}",
                                "`ratchet.py stop` it first if you mean to start over (init archives it)"))
    return cfg


def _config(root: str, flags: dict, existing: Optional[dict], checks: list) -> Optional[configmod.Config]:
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
        cfg = configmod.build(given, root)
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


def _measure(root: str, cfg: configmod.Config, runs: Optional[int], tmp: str) -> tuple:
    """Run the command up to `runs` times (default: DEFAULT_RUNS within the
    budget), its reports in the folder `tmp`; (trials, timeout used)."""
    timeout = cfg.trial_timeout_seconds or DOCTOR_TIMEOUT
    run_cfg = dataclasses.replace(cfg, trial_timeout_seconds=timeout)
    store = Store(root)
    store.root = tmp
    store.ensure_dirs()
    run = engine.Run(root, store, run_cfg, {})
    want = runs or DEFAULT_RUNS
    moved = capture.to_move(root, cfg.source)
    trials, t0 = [], time.monotonic()
    try:
        for k in range(1, want + 1):
            if k > 1 and runs is None and trials:
                per = max(t["seconds"] for t in trials)
                if time.monotonic() - t0 + per > BUDGET_SECONDS:
                    break
            t = engine.run_trial(run, 0, k, label=f"doctor run {k}/{want}")
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


def _last_line(tmp: str, k: int, order=("err", "out", "txt")) -> str:
    for ext in order:
        p = os.path.join(tmp, "reports", f"iter-0000-trial-{k:02d}.{ext}")
        try:
            with open(p, "rb") as f:
                f.seek(max(0, os.path.getsize(p) - 4096))
                lines = [x.strip() for x in f.read().decode("utf-8", "replace").splitlines() if x.strip()]
        except OSError:
            continue
        if lines:
            return lines[-1][:160]
    return ""


def _run_checks(cfg, trials: list, tmp: str, timeout: float, checks: list) -> dict:
    """run command, metric, trial time, noise, detectable effect, false keeps."""
    first = trials[0]
    # a crash explains itself on stderr; a hang's last sign of life is its progress on stdout
    last = _last_line(tmp, first["trial"], ("txt", "out", "err") if first["status"] == "timeout" else ("err", "txt", "out"))
    tail = f" (last output: {last})" if last else ""
    if first["status"] == "timeout":
        if cfg.trial_timeout_seconds is None:  # only doctor's own limit: a long training run is not a hang
            checks.append(Check("run command", WARN, f"`{cfg.run_command}` gave no result within doctor's own limit "
                                f"of {_s(timeout)}; stopped, so the metric was not checked" + tail,
                                "if one run takes longer, give --trial-timeout-seconds above its length and run "
                                "doctor again; if it should be quicker, it hangs (waiting for input or a server?)"))
            return {}
        checks.append(Check("run command", FAIL, f"`{cfg.run_command}` gave no result within {_s(timeout)}; its "
                            f"process tree was killed" + tail,
                            "make it finish (does it wait for input or a server?), or raise --trial-timeout-seconds"))
        return {}
    if first["status"] == "crash":
        checks.append(Check("run command", FAIL, f"`{cfg.run_command}` failed: {first['detail']}{tail}",
                            f"run it by hand from the repository root and fix the error"))
        return {}
    checks.append(Check("run command", OK, f"`{cfg.run_command}` exits 0 ({_s(first['seconds'])})"))
    if first["status"] != "ok":
        fix = ("print a line `" + cfg.metric_name + ": VALUE` (or JSON with that key), or give --metric-pattern "
               "'REGEX(with one group)' or the right --report-source") if cfg.source.kind in sources.STREAMS + \
            (sources.TEXT,) else "point --report-source at the file the command writes, with the right #KEY"
        shown = _last_line(tmp, first["trial"], ("txt", "out", "err"))
        checks.append(Check("metric", FAIL, f"{cfg.metric_name}: {first['status']} ({first['detail']})"
                            + (f"; the report ends with: {shown}" if shown else ""), fix))
        return {}
    checks.append(Check("metric", OK, f"{cfg.metric_name} = {first['score']:.6g} ({first['detail']})"))
    bad = next((t for t in trials if t["status"] != "ok"), None)
    if bad is not None:
        checks.append(Check("repeatability", FAIL, f"run {bad['trial']} of {len(trials)} failed ({bad['status']}: "
                            f"{bad['detail']}) after run 1 succeeded",
                            "make the benchmark deterministic: a flaky run is recorded as a crash of the candidate"))
    ok = [t for t in trials if t["status"] == "ok"]
    secs = [t["seconds"] for t in ok]
    mean_s, max_s = math.fsum(secs) / len(secs), max(secs)
    n_trials = cfg.trials
    per_iter = mean_s * n_trials
    whole = per_iter * cfg.iterations
    detail = (f"mean {_s(mean_s)}, max {_s(max_s)} over {len(secs)} run(s); one iteration of --trials {n_trials} "
              f"~{_s(per_iter)}, {cfg.iterations} iterations ~{_s(whole)}")
    if whole > 24 * 3600:
        checks.append(Check("trial time", WARN, detail, "fewer --iterations or --trials, or a shorter benchmark run"))
    else:
        checks.append(Check("trial time", OK, detail))
    fig = {"runs": len(ok), "scores": [t["score"] for t in ok], "seconds": secs, "mean_seconds": mean_s,
           "max_seconds": max_s}
    fig.update(noise([t["score"] for t in ok]))
    _noise_checks(cfg, fig, checks)
    return fig


def _noise_checks(cfg, fig: dict, checks: list) -> None:
    sd, mean, n, trials = fig["sd"], fig["mean"], fig["n"], cfg.trials
    if sd is None:
        checks.append(Check("noise", WARN, f"not measured: only {n} run fit the doctor's {BUDGET_SECONDS:.0f} s budget",
                            "ratchet.py doctor --runs 3 (same flags) measures it"))
        return
    if sd == 0:
        checks.append(Check("noise", OK, f"none: {n} identical scores ({_num(mean)})"))
        fig.update(mde=0.0, mde_pct=0.0, false_keep=0.0)
        return
    cv = fig["cv_pct"]
    text = f"sd {_num(sd)} over {n} runs" + (f", CV {cv:.2f}%" if cv is not None else "")
    if cv is not None and cv > NOISY_CV_PCT:
        checks.append(Check("noise", WARN, text + " (noisy)",
                            "fix the seed, use a bigger or fixed workload, pin the CPU (taskset), quiet the machine"))
    else:
        checks.append(Check("noise", OK, text))
    margin = cfg.min_improvement.over(mean)
    d = mde(sd, trials)
    fig["mde"] = d
    fig["mde_pct"] = d / abs(mean) * 100 if mean else None
    goal = cfg.min_improvement.value if cfg.min_improvement.relative and cfg.min_improvement.value > 0 else (
        margin / abs(mean) * 100 if margin > 0 and mean else GOAL_PCT)
    shown = f"{fig['mde_pct']:.2f}% ({_num(d)})" if fig["mde_pct"] is not None else _num(d)
    text = f"with --trials {trials}, changes smaller than {shown} are mostly lost in the noise (2.8*sqrt(2)*sd/sqrt(N))"
    need = trials_for(sd, mean, goal, trials) if mean else trials
    fig["suggested_trials"] = need
    if fig["mde_pct"] is not None and fig["mde_pct"] > goal:
        fix = (f"--trials {need} to see {goal:.3g}% changes" if need <= MAX_SUGGESTED_TRIALS else
               f"reduce the noise first: seeing {goal:.3g}% needs ~{need} trials per iteration")
        checks.append(Check("detectable effect", WARN, text, fix))
    else:
        checks.append(Check("detectable effect", OK, text))
    rate = false_keep_rate(sd, trials, margin)
    fig["false_keep"] = rate
    safe = Z_FALSE_KEEP * sd * math.sqrt(2 / trials)
    safe_pct = safe / abs(mean) * 100 if mean else None
    fig["suggested_min_improvement_pct"] = safe_pct
    text = f"a change that does nothing is kept {rate * 100:.0f}% of the time with --min-improvement {cfg.min_improvement}"
    if rate > 0.05:
        fix = (f"--min-improvement {safe_pct:.2g}% (a no-op then keeps ~5% of the time), or more --trials"
               if safe_pct is not None else f"--min-improvement {_num(safe)}")
        checks.append(Check("false keeps", WARN, text, fix))
    else:
        checks.append(Check("false keeps", OK, text))


def _protect_checks(root: str, cfg, checks: list) -> None:
    src = cfg.source.path if cfg.source.kind not in sources.STREAMS else None
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


def _timeout_check(cfg, fig: dict, checks: list) -> None:
    max_s = fig.get("max_seconds")
    if max_s is None:
        return
    suggestion = suggest_timeout(max_s)
    fig["suggested_timeout"] = suggestion
    t = cfg.trial_timeout_seconds
    if t is None:
        checks.append(Check("timeout", WARN, "no --trial-timeout-seconds: a candidate that hangs stalls the loop",
                            f"--trial-timeout-seconds {suggestion} (3x the slowest run)"))
    elif t < 2 * max_s:
        checks.append(Check("timeout", WARN, f"--trial-timeout-seconds {t:g} is under twice the slowest run "
                            f"({_s(max_s)}): a slightly slower candidate or a busy machine times out",
                            f"--trial-timeout-seconds {suggestion}"))
    else:
        checks.append(Check("timeout", OK, f"--trial-timeout-seconds {t:g} ({t / max_s:.0f}x the slowest run)"))


def _outputs_check(root: str, before: set, cfg, checks: list) -> None:
    src = cfg.source.path if cfg.source.kind not in sources.STREAMS else None
    new = [p for p in gitops.untracked(root) if p not in before and p.split("/")[0] != ".ratchet"
           and not (src and paths.matches(p, src))]
    if new:
        checks.append(Check("outputs", WARN, f"the command leaves {len(new)} untracked file(s): {', '.join(new[:3])}",
                            "add them to .gitignore so they are never mistaken for part of a change"))


def _executor_check(root: str, cfg, checks: list) -> None:
    """--executor slurm|ray: the commands, and a 1 s test job round trip (executor.py).
    Its files go in a folder inside the repository, which the nodes must share."""
    from . import executor
    if cfg.executor == "local":
        return
    folder = tempfile.mkdtemp(prefix=".ratchet-doctor-", dir=root)
    try:
        for status, message, fix in executor.doctor_checks(cfg, folder):
            checks.append(Check("executor", status, message, fix or ""))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def doctor(cwd: str, flags: dict, runs: Optional[int] = None) -> dict:
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
                    fig = _run_checks(cfg, trials, tmp, timeout, checks)
                    _timeout_check(cfg, fig, checks)
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
