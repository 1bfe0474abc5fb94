"""Keep or revert, and whether the run should stop: pure functions only.

`judge` turns the trials of one iteration into a decision against the
incumbent's score; `stop_reason` reads the run's counters after a decision.
Nothing here touches a file or a process, so every rule is unit-testable and
the same code serves `iterate`, `decide` and the benchmarks.
"""

from __future__ import annotations

import math

from . import headline, record
from .text import num, ratio_pct

KEEP, REVERT, CRASH, TIMEOUT, NO_CHANGE, BASELINE = (
    "keep", "revert", "crash", "timeout", "no-change", "baseline")
# Integrity outcomes (issue 4): the harness changed, a path outside the
# editable scope changed, a hard constraint failed, the guard failed.
TAMPERED, OUT_OF_SCOPE, CONSTRAINT, GUARD_FAILED = ("tampered", "out-of-scope", "constraint", "guard-failed")
AGENT_ERROR, INTERRUPTED = "agent-error", "interrupted"  # headless loop only
FAILURES = (CRASH, TIMEOUT, AGENT_ERROR)


class Verdict(record.Record):
    decision: str
    avg: float | None
    delta: float | None
    reason: str


def mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return math.fsum(vals) / len(vals) if vals else None


def failed_trial(trials) -> dict | None:
    """The first trial that did not produce a valid score, if any."""
    return next((t for t in trials if t["status"] != "ok"), None)


def judge(trials: list, incumbent: float, config) -> Verdict:
    """Decide on an iteration's trials (dicts with status/score/exit_code).

    Any timed-out trial makes the iteration a timeout and any other invalid
    trial a crash: a broken candidate is never kept on its good runs. A valid
    candidate is kept only when its mean beats the incumbent by more than the
    margin in the configured direction; a tie is a revert.
    """
    bad = failed_trial(trials)
    if bad is not None:
        kind = TIMEOUT if bad["status"] == "timeout" else CRASH
        return Verdict(kind, mean(t.get("score") for t in trials), None,
                       f"trial {bad['trial']}: {bad.get('detail') or bad['status']}")
    avg = mean(t["score"] for t in trials)
    delta = avg - incumbent
    margin = config.min_improvement.over(incumbent)
    bar = incumbent + margin if config.direction == "max" else incumbent - margin
    pct = f" ({ratio_pct(delta, incumbent)})" if incumbent else ""
    if config.better(avg, bar):
        return Verdict(KEEP, avg, delta, f"kept: {num(avg)} beats {num(incumbent)}{pct} by more than margin {config.min_improvement}")
    word = "ties" if avg == incumbent else ("is worse than" if config.better(incumbent, avg) else "does not beat")
    return Verdict(REVERT, avg, delta, f"reverted: {num(avg)} {word} {num(incumbent)}{pct} + margin {config.min_improvement}")


def stop_reason(state: dict, config) -> str | None:
    """The first stop condition that holds after a decision, else None."""
    best = state.best
    if config.threshold is not None and best is not None and not config.better(config.threshold, best):
        if state.iteration == 0:  # a threshold on the wrong side of the baseline: nothing to do
            side = "above" if config.direction == "max" else "below"
            return (f"threshold already reached by the baseline ({num(best)} vs {num(config.threshold)}); "
                    f"init again with a --threshold {side} {num(best)}, or none")
    # after the baseline only a re-measured HEAD stops the run (headline.py): the best's own mean won its
    # decision, so it is too high; keep/finish.py re-measures HEAD when that mean crosses the threshold
    confirmed = headline.confirmed_value(state)
    if config.threshold is not None and confirmed is not None and not config.better(config.threshold, confirmed):
        return (f"threshold reached ({num(confirmed)} vs {num(config.threshold)}, confirmed: HEAD re-measured "
                f"against the start)")
    if state.consecutive_crashes >= config.max_consecutive_crashes:
        return f"crash budget exhausted ({state.consecutive_crashes} crashes in a row)"
    if config.patience and state.since_keep >= config.patience:
        return f"patience exhausted ({state.since_keep} iterations without improvement)"
    if state.iteration >= config.iterations:
        return f"iteration cap reached ({config.iterations})"
    return None


def progress(state: dict, config) -> list:
    """One short phrase per stop condition, for `status`."""
    parts = [f"iteration {max(state.iteration, 0)}/{config.iterations}"]
    if config.patience:
        parts.append(f"patience {state.since_keep}/{config.patience}")
    parts.append(f"crashes in a row {state.consecutive_crashes}/{config.max_consecutive_crashes}")
    if config.threshold is not None:
        parts.append(f"threshold {num(config.threshold)}")
    return parts
