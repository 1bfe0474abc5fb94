"""Graduated escalation: the longer nothing is kept, the bigger the change of tactics.

A pure state machine over consecutive non-keeps, folded into the run state
by `state.apply_record` (RunState.escalation in state.json) so a restart or a new session
continues at the same level instead of starting over at NORMAL.

    NORMAL --(refine non-keeps in a row)--> REFINE
    REFINE --(pivot non-keeps in a row)---> PIVOT
    PIVOT/SEARCH: every further non-keep is one failed pivot;
        search_pivots failed pivots -> SEARCH, halt_pivots -> HALT (the run stops)
    any keep -> NORMAL with every counter at 0

With the defaults (3, 5, 2, 3) that is REFINE after 3 non-keeps, PIVOT after 5,
SEARCH after 7 and HALT after 8. Every non-keep counts: revert, crash,
timeout, invalid and no-change all mean the current tactic did not pay.

State shape: {"level": "NORMAL", "streak": 0, "pivots": 0, "stop": null}
"""

from .errors import UsageError
from .steering import ESCALATION_DEFAULTS

LEVELS = ("NORMAL", "REFINE", "PIVOT", "SEARCH", "HALT")


def initial():
    """The state of a run that has not missed yet."""
    return {"level": "NORMAL", "streak": 0, "pivots": 0, "stop": None}


def settings(config):
    """The counts from `config["escalation"]` over the defaults; UsageError
    (one line) for an unknown key or a count that is not a whole number >= 1."""
    raw = config.get("escalation") or {}
    unknown = sorted(set(raw) - set(ESCALATION_DEFAULTS))
    if unknown:
        raise UsageError(f"unknown escalation setting {unknown[0]!r}; "
                         f"known: {', '.join(ESCALATION_DEFAULTS)}")
    out = {**ESCALATION_DEFAULTS, **raw}
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"escalation.{key} must be a whole number >= 1, got {value!r}")
    return out


def _coerce(esc):
    """A stored state over the initial one; UsageError for a level this
    version does not know (a hand-edited or newer state.json)."""
    current = {**initial(), **(esc or {})}
    if current["level"] not in LEVELS:
        raise UsageError(f"unknown escalation level {current['level']!r}; "
                         f"known: {', '.join(LEVELS)}")
    return current


def _level(streak, pivots, counts):
    if pivots >= counts["halt_pivots"]:
        return "HALT"
    if pivots >= counts["search_pivots"]:
        return "SEARCH"
    if streak >= counts["pivot"]:
        return "PIVOT"
    if streak >= counts["refine"]:
        return "REFINE"
    return "NORMAL"


def advance(esc, kept, config):
    """The state after one finished iteration (kept or not); a new dict.

    Call once per non-baseline decision, after the record is written. When the
    result is HALT, its "stop" holds the reason for state.stop.
    """
    counts = settings(config)
    if kept:
        return initial()
    current = _coerce(esc)
    pivoting = current["level"] in ("PIVOT", "SEARCH", "HALT")
    streak = current["streak"] + 1
    pivots = current["pivots"] + (1 if pivoting else 0)
    level = _level(streak, pivots, counts)
    stop = None
    if level == "HALT":
        stop = (f"escalation halt: {pivots} pivots without progress "
                f"({streak} iterations without a keep)")
    return {"level": level, "streak": streak, "pivots": pivots, "stop": stop}


_DIRECTIVES = {
    "NORMAL": "NORMAL: make one focused change with a clear hypothesis.",
    "REFINE": ("REFINE ({streak} without a keep): tune the last promising idea "
               "in smaller steps; change one parameter at a time."),
    "PIVOT": ("PIVOT ({streak} without a keep): abandon the current direction; "
              "try a different mechanism, not a variant of what was reverted."),
    "SEARCH": ("SEARCH ({pivots} pivots failed): read the code and profile broadly, "
               "list 3 untried directions, pick the most different one."),
    "HALT": "HALT ({pivots} pivots without progress): stop; the run is over.",
}


def directive(esc):
    """The short instruction for the agent at the state's level."""
    current = _coerce(esc)
    return _DIRECTIVES[current["level"]].format(**current)
