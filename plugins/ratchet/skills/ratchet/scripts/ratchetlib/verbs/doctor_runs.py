"""The checks on the command's measured runs, in the order `doctor` reports
them: the run command (ran, crashed or hung, with its last output line),
the metric read, repeatability, trial time, the noise with what it implies
(detectable effect, false keeps) and the timeout. Each appends a `Check`;
the figures come from doctor_figures; the only I/O is reading the trials'
captured reports in doctor's temporary folder."""

import math
import os

from ..core import sourcespec
from .doctor_figures import (FAIL, OK, WARN, Check, Z_FALSE_KEEP, false_keep_rate, mde, noise, num_text,
                             seconds_text, suggest_timeout, trials_for)
from .doctor_paired import paired_noise_checks

BUDGET_SECONDS = 120.0         # extra runs for the noise stop once they would pass this (unless --runs)
GOAL_PCT = 2.0                 # the effect to be able to see when no --min-improvement says otherwise
MAX_SUGGESTED_TRIALS = 50
NOISY_CV_PCT = 5.0


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


def run_checks(cfg, trials: list, tmp: str, timeout: float, checks: list) -> dict:
    """run command, metric, trial time, noise, detectable effect, false keeps."""
    first = trials[0]
    # a crash explains itself on stderr; a hang's last sign of life is its progress on stdout
    last = _last_line(tmp, first["trial"], ("txt", "out", "err") if first["status"] == "timeout" else ("err", "txt", "out"))
    tail = f" (last output: {last})" if last else ""
    if first["status"] == "timeout":
        if cfg.trial_timeout_seconds is None:  # only doctor's own limit: a long training run is not a hang
            checks.append(Check("run command", WARN, f"`{cfg.run_command}` gave no result within doctor's own limit "
                                f"of {seconds_text(timeout)}; stopped, so the metric was not checked" + tail,
                                "if one run takes longer, give --trial-timeout-seconds above its length and run "
                                "doctor again; if it should be quicker, it hangs (waiting for input or a server?)"))
            return {}
        checks.append(Check("run command", FAIL, f"`{cfg.run_command}` gave no result within {seconds_text(timeout)}; its "
                            f"process tree was killed" + tail,
                            "make it finish (does it wait for input or a server?), or raise --trial-timeout-seconds"))
        return {}
    if first["status"] == "crash":
        checks.append(Check("run command", FAIL, f"`{cfg.run_command}` failed: {first['detail']}{tail}",
                            "run it by hand from the repository root and fix the error"))
        return {}
    checks.append(Check("run command", OK, f"`{cfg.run_command}` exits 0 ({seconds_text(first['seconds'])})"))
    if first["status"] != "ok":
        fix = ("print a line `" + cfg.metric_name + ": VALUE` (or JSON with that key), or give --metric-pattern "
               "'REGEX(with one group)' or the right --report-source") if cfg.source.kind in sourcespec.STREAMS + \
            (sourcespec.TEXT,) else "point --report-source at the file the command writes, with the right #KEY"
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
    if cfg.decision == "paired":  # an iteration is 2 runs per pair, min_pairs to max_trials pairs
        runs = f"{2 * cfg.min_pairs} to {2 * cfg.max_trials} runs"
        per, whole = f"{seconds_text(2 * cfg.min_pairs * mean_s)} to {seconds_text(2 * cfg.max_trials * mean_s)}", \
            2 * cfg.max_trials * mean_s * cfg.iterations
    else:
        runs, per, whole = f"--trials {cfg.trials}", seconds_text(mean_s * cfg.trials), mean_s * cfg.trials * cfg.iterations
    detail = (f"mean {seconds_text(mean_s)}, max {seconds_text(max_s)} over {len(secs)} run(s); one iteration of {runs} "
              f"~{per}, {cfg.iterations} iterations ~{seconds_text(whole)}{' at most' if cfg.decision == 'paired' else ''}")
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
        checks.append(Check("noise", OK, f"none: {n} identical scores ({num_text(mean)})"))
        fig.update(mde=0.0, mde_pct=0.0, false_keep=0.0)
        return
    cv = fig["cv_pct"]
    text = f"sd {num_text(sd)} over {n} runs" + (f", CV {cv:.2f}%" if cv is not None else "")
    if cv is not None and cv > NOISY_CV_PCT:
        checks.append(Check("noise", WARN, text + " (noisy)",
                            "fix the seed, use a bigger or fixed workload, pin the CPU (taskset), quiet the machine"))
    else:
        checks.append(Check("noise", OK, text))
    if cfg.decision == "paired":  # advice for the rule that will decide (doctor_paired)
        paired_noise_checks(cfg, fig, checks)
        return
    margin = cfg.min_improvement.over(mean)
    d = mde(sd, trials)
    fig["mde"] = d
    fig["mde_pct"] = d / abs(mean) * 100 if mean else None
    goal = cfg.min_improvement.value if cfg.min_improvement.relative and cfg.min_improvement.value > 0 else (
        margin / abs(mean) * 100 if margin > 0 and mean else GOAL_PCT)
    shown = f"{fig['mde_pct']:.2f}% ({num_text(d)})" if fig["mde_pct"] is not None else num_text(d)
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
               if safe_pct is not None else f"--min-improvement {num_text(safe)}")
        checks.append(Check("false keeps", WARN, text, fix))
    else:
        checks.append(Check("false keeps", OK, text))


def timeout_check(cfg, fig: dict, checks: list) -> None:
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
                            f"({seconds_text(max_s)}): a slightly slower candidate or a busy machine times out",
                            f"--trial-timeout-seconds {suggestion}"))
    else:
        checks.append(Check("timeout", OK, f"--trial-timeout-seconds {t:g} ({t / max_s:.0f}x the slowest run)"))
