"""Hints for the agent, from a small summary of the history rather than the history.

`status` and the verdict must cost the same at record 10 and at record 10,000,
so nothing here reads results.jsonl. Instead the caller folds each finished
record into a `memory` dict with `update_memory` and persists that dict inside
state.json; `hints` and `similar_reverted` read only the memory. Every list in
it is capped and every text in it truncated, so its size is bounded whatever
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
than the incumbent); see `effect`. `state["detectable_effect"]`, when the
noise calibration provides it, is read in the same unit. `change` is what the
hints show: the metric's own relative change (change.py; -0.5 = halved),
absent in memories written before it (then converted from `effect`).
"""

import math
import re

from ..core import change as changes
from ..core.errors import UsageError
from ..core.text import clip

RECENT = 10            # window for "keeps in window" and the resume document
REVERTED_CAP = 20      # reverted hypotheses remembered for the similarity check
HYPOTHESIS_CAP = 120   # characters of a hypothesis kept in memory
FAILURES = ("crash", "timeout", "agent-error")  # agent-error: the headless loop's agent failed its step
DEFAULT_PLATEAU_AFTER = 5
DEFAULT_FAILURE_STREAK = 2
MAX_HINTS = 4


def new_memory():
    """The memory of a run with no finished iteration."""
    return {"records": 0, "since_keep": 0, "failure_streak": 0,
            "last_failure": None, "best_win": None, "reverted": [], "recent": []}


def _number(value):
    """A finite float, or None: records carry null for missing figures."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def improvement(record, direction):
    """The record's raw improvement over the incumbent in metric units (positive
    = better), or None. `delta` in a record is `avg - incumbent`, so a min
    metric improves when it is negative."""
    delta = _number(record.get("delta"))
    if delta is None:
        return None
    return -delta if direction == "min" else delta


def effect(record, direction):
    """The record's relative improvement (0.02 = 2% better), or None.

    A paired-test `estimate` (issue 3) is already a relative improvement,
    oriented so positive is better, and is preferred because it is the better
    measurement; otherwise the oriented delta is divided by |incumbent|.
    """
    estimate = _number(record.get("estimate"))
    if estimate is not None:
        return estimate
    gain = improvement(record, direction)
    incumbent = _number(record.get("incumbent"))
    if gain is None or not incumbent:
        return None
    return gain / abs(incumbent)


def looks_better(record, direction):
    """True when the record's best estimate points to an improvement; used to
    spot reverted near misses. Unknown counts as not better."""
    estimate = _number(record.get("estimate"))
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
               "effect": eff, "delta": _number(record.get("delta")), "change": chg}
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
        "delta": _number(record.get("delta")), "arm": record.get("arm"), "change": chg}])[-RECENT:]
    return mem


def shown_change(entry, direction):
    """A memory entry's figure as people read it: the metric's own change."""
    if "change" in entry:
        return changes.percent(entry["change"])
    return changes.percent(changes.metric_change(entry.get("effect"), direction))


def _plateau_hint(memory, settings, detectable, direction="max", log_scale=True):
    since = memory["since_keep"]
    if since >= settings["plateau_after"]:
        return (f"plateau: no keep in the last {since} iterations; "
                "stop tuning this direction and try a different mechanism.")
    if detectable is None or detectable <= 0:
        return None
    keeps = [r for r in memory["recent"] if r["decision"] == "keep"]
    effects = [r["effect"] for r in keeps if r["effect"] is not None]
    if len(effects) >= 2 and len(effects) == len(keeps) and max(effects) < detectable:
        return (f"plateau: the last {len(keeps)} keeps were each below the "
                f"detectable effect ({_magnitude(detectable, direction, log_scale)}); aim for a bigger change.")
    return None


def _failure_hint(memory, settings):
    streak = memory["failure_streak"]
    if streak < settings["failure_streak"]:
        return None
    kind = memory.get("last_failure") or "crash"
    if kind == "agent-error":
        return (f"failure streak: {streak} failures in a row (last: agent-error, the agent itself failed); "
                "check the agent's log in .ratchet/agents/ and its command, timeout and budget.")
    return (f"failure streak: {streak} crashes/timeouts in a row (last: {kind}); "
            "make the code run again before trying new ideas.")


def _magnitude(improvement, direction, log_scale):
    shown = changes.metric_change(improvement, direction, log_scale)
    return changes.percent(abs(shown if shown is not None else improvement), signed=False)


def _win_hint(memory, direction="max"):
    win = memory["best_win"]
    if not win or not win.get("hypothesis"):
        return None
    return (f"biggest win so far: iter {win['iter']} ({shown_change(win, direction)}): "
            f"\"{clip(win['hypothesis'], 80)}\"; build on that mechanism.")


def _avoid_hint(memory):
    """The last three distinct reverted hypotheses, newest first (a retried
    idea is named once)."""
    recent = list(dict.fromkeys(clip(r["hypothesis"], 40) for r in memory["reverted"][::-1]))[:3]
    if not recent:
        return None
    quoted = "; ".join(f"\"{h}\"" for h in recent)
    return f"recently reverted, do not repeat: {quoted}"


def settings(config):
    """The hint thresholds: `config["hints"]` may set `plateau_after` (no keep
    for K iterations, default 5) and `failure_streak` (default 2)."""
    raw = config.get("hints") or {}
    out = {"plateau_after": raw.get("plateau_after", DEFAULT_PLATEAU_AFTER),
           "failure_streak": raw.get("failure_streak", DEFAULT_FAILURE_STREAK)}
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"hints.{key} must be a whole number >= 1, got {value!r}")
    return out


def hints(memory, config, state):
    """At most four one-line hints, most urgent first: failure streak,
    plateau, hypotheses to avoid, biggest win. O(1) in the history length."""
    mem = {**new_memory(), **(memory or {})}
    limits = settings(config)
    detectable = _number((state or {}).get("detectable_effect"))
    direction = config.get("direction", "max")
    found = [_failure_hint(mem, limits),
             _plateau_hint(mem, limits, detectable, direction, (state or {}).get("log_scale", True) is not False),
             _avoid_hint(mem), _win_hint(mem, direction)]
    return [h for h in found if h][:MAX_HINTS]


def text_key(text):
    """Case, punctuation and spacing do not make two hypotheses different."""
    return " ".join(re.sub(r"[^\w\s]", " ", str(text or "").lower()).split())


def similar_reverted(hypothesis, memory, threshold=0.75):
    """The remembered reverted hypothesis most similar to `hypothesis` as
    (text, ratio) when the difflib ratio reaches `threshold`, else None.
    quick_ratio (an upper bound of ratio) skips hopeless pairs cheaply."""
    import difflib  # here, not at the top: `status` imports hints and never matches (issue 18)
    wanted = text_key(hypothesis)
    if not wanted:
        return None
    matcher = difflib.SequenceMatcher(None, b=wanted, autojunk=False)
    best = None
    for entry in (memory or {}).get("reverted", []):
        matcher.set_seq1(text_key(entry["hypothesis"]))
        if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
            continue
        ratio = matcher.ratio()
        if ratio >= threshold and (best is None or ratio > best[1]):
            best = (entry["hypothesis"], ratio)
    return best


def similarity_warning(hypothesis, memory, threshold=0.75):
    """The one-line warning `iterate` prints for a hypothesis that resembles a
    reverted one, or None."""
    match = similar_reverted(hypothesis, memory, threshold)
    if match is None:
        return None
    text, ratio = match
    return (f"warning: this hypothesis is {ratio:.0%} similar to one already reverted: "
            f"\"{clip(text, 80)}\"")
