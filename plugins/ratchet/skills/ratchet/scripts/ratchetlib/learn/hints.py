"""Hints for the agent, from a small summary of the history rather than the history.

`status` and the verdict must cost the same at record 10 and at record 10,000,
so nothing here reads results.jsonl: the hints read only the bounded memory
that `core/memory.update_memory` folds into the run state (its shape is
documented there).
"""

import difflib
import re

from ..core import change as changes
from ..core.errors import UsageError
from ..core.memory import new_memory, finite_or_none, shown_change
from ..core.text import clip

DEFAULT_PLATEAU_AFTER = 5
DEFAULT_FAILURE_STREAK = 2
MAX_HINTS = 4


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
    detectable = finite_or_none(state.detectable_effect) if state else None
    direction = config.get("direction", "max")
    found = [_failure_hint(mem, limits),
             _plateau_hint(mem, limits, detectable, direction, state.log_scale if state else True),
             _avoid_hint(mem), _win_hint(mem, direction)]
    return [h for h in found if h][:MAX_HINTS]


def text_key(text):
    """Case, punctuation and spacing do not make two hypotheses different."""
    return " ".join(re.sub(r"[^\w\s]", " ", str(text or "").lower()).split())


def similar_reverted(hypothesis, memory, threshold=0.75):
    """The remembered reverted hypothesis most similar to `hypothesis` as
    (text, ratio) when the difflib ratio reaches `threshold`, else None.
    quick_ratio (an upper bound of ratio) skips hopeless pairs cheaply."""
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
