"""The bounded summaries of the history that the run state carries: the hints
memory (what was tried, the biggest win, the reverted hypotheses) and the
critic's counters. Pure folds of one finished record, applied by
`state.apply_record` inside the decision's one atomic state write, so a
replayed record cannot count twice; learn/hints and learn/critic render them.
Every list is capped and every text clipped, so the size is bounded whatever
the history length.

Memory shape (JSON-able; the caller keeps it as state.json's "memory" key):

    {"records": 12,                       # non-baseline records folded in
     "since_keep": 3,                     # finished iterations since the last keep
     "failure_streak": 0,                 # consecutive crash/timeout records
     "last_failure": null,                # decision of the last crash/timeout
     "best_win": {"iter": 7, "hypothesis": "...", "effect": 0.041,
                  "delta": 4.1, "change": 0.041} | null,   # the keep with the largest effect
     "reverted": [{"iter": 9, "hypothesis": "..."}, ...],  # last 20, oldest first
     "recent": [{"iter": 10, "decision": "revert", "hypothesis": "...",
                 "effect": -0.01, "delta": -1.0, "arm": null, "change": -0.01}, ...]}  # last 10

Effects are relative improvements, positive = better (0.02 means 2% better
than the incumbent); see `effect`. `state.detectable_effect`, when the
noise calibration provides it, is read in the same unit. `change` is what the
hints show: the metric's own relative change (change.py; -0.5 = halved),
absent in memories written before it (then converted from `effect`).
"""

from __future__ import annotations

import math

from . import change as changes
from .text import clip

RECENT = 10            # window for "keeps in window" and the resume document
REVERTED_CAP = 20      # reverted hypotheses remembered for the similarity check
HYPOTHESIS_CAP = 120   # characters of a hypothesis kept in memory
FAILURES = ("crash", "timeout", "agent-error")  # agent-error: the headless loop's agent failed its step


def new_memory():
    """The memory of a run with no finished iteration."""
    return {"records": 0, "since_keep": 0, "failure_streak": 0,
            "last_failure": None, "best_win": None, "reverted": [], "recent": []}


def finite_or_none(value):
    """A finite float, or None: records carry null for missing figures."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def improvement(record, direction):
    """The record's raw improvement over the incumbent in metric units (positive
    = better), or None. `delta` in a record is `avg - incumbent`, so a min
    metric improves when it is negative."""
    delta = finite_or_none(record.get("delta"))
    if delta is None:
        return None
    return -delta if direction == "min" else delta


def effect(record, direction):
    """The record's relative improvement (0.02 = 2% better), or None.

    A paired-test `estimate` (issue 3) is already a relative improvement,
    oriented so positive is better, and is preferred because it is the better
    measurement; otherwise the oriented delta is divided by |incumbent|.
    """
    estimate = finite_or_none(record.get("estimate"))
    if estimate is not None:
        return estimate
    gain = improvement(record, direction)
    incumbent = finite_or_none(record.get("incumbent"))
    if gain is None or not incumbent:
        return None
    return gain / abs(incumbent)


def looks_better(record, direction):
    """True when the record's best estimate points to an improvement; used to
    spot reverted near misses. Unknown counts as not better."""
    estimate = finite_or_none(record.get("estimate"))
    if estimate is not None:
        return estimate > 0
    gain = improvement(record, direction)
    return gain is not None and gain > 0


def _is_better_win(candidate, current):
    """Whether a keep's effect beats the remembered biggest win; a keep whose
    effect is unknown only fills an empty slot."""
    if current is None:
        return True
    if candidate["effect"] is None:
        return False
    return current["effect"] is None or candidate["effect"] > current["effect"]


def update_memory(memory, record, config):
    """Fold one finished record into the memory and return a new memory.

    Call once per record, in iteration order, right after the record is
    written. A baseline record resets nothing and is not counted. The input
    dict is not modified; a missing memory (None or {}) starts fresh.
    """
    base = new_memory()
    base.update(memory or {})
    mem = {**base, "reverted": list(base["reverted"]), "recent": list(base["recent"])}
    decision = record.get("decision")
    if decision == "baseline":
        return mem
    direction = config.get("direction", "max")
    hypothesis = clip(record.get("hypothesis"), HYPOTHESIS_CAP)
    eff = effect(record, direction)
    chg = changes.record_change(record, direction)
    mem["records"] += 1
    if decision in FAILURES:
        mem["failure_streak"] += 1
        mem["last_failure"] = decision
    else:
        mem["failure_streak"] = 0
    if decision == "keep":
        mem["since_keep"] = 0
        win = {"iter": record.get("iter"), "hypothesis": hypothesis,
               "effect": eff, "delta": finite_or_none(record.get("delta")), "change": chg}
        if _is_better_win(win, mem["best_win"]):
            mem["best_win"] = win
    else:
        mem["since_keep"] += 1
    if decision == "revert" and hypothesis:
        mem["reverted"] = (mem["reverted"] + [{"iter": record.get("iter"),
                                               "hypothesis": hypothesis}])[-REVERTED_CAP:]
    mem["recent"] = (mem["recent"] + [{
        "iter": record.get("iter"), "decision": decision,
        "hypothesis": clip(hypothesis, 100), "effect": eff,
        "delta": finite_or_none(record.get("delta")), "arm": record.get("arm"), "change": chg}])[-RECENT:]
    return mem


def shown_change(entry, direction):
    """A memory entry's figure as people read it: the metric's own change."""
    if "change" in entry:
        return changes.percent(entry["change"])
    return changes.percent(changes.metric_change(entry.get("effect"), direction))


# --- the critic's counters ---------------------------------------------------

def _critic_key(critic) -> str | None:
    if not isinstance(critic, dict):
        return None
    pick = str(critic.get("pick") or "none").strip().lower()
    return pick if pick in ("a", "b", "none") else "other"


def fold_critic(stats: dict | None, rec: dict) -> dict | None:
    """Critic counters after `rec`: per pick, iterations and keeps."""
    key = _critic_key(rec.get("critic"))
    if key is None:
        return stats
    out = {k: dict(v) for k, v in (stats or {}).items()}
    slot = out.setdefault(key, {"n": 0, "kept": 0})
    slot["n"] += 1
    slot["kept"] += 1 if rec.get("decision") == "keep" else 0
    return out
