"""How the proposals are steered, as `init` sets it: the bandit's arms
(`--strategy bandit --arms`, learn/bandit.py plays them) and the escalation
counts (`--escalation`, learn/escalation.py applies them). Their defaults
live here, in core, so config validates the flags without importing the
learn layer; UsageError (exit 2) names the mistake."""

from __future__ import annotations

import re

from .errors import UsageError


DEFAULT_ARMS = ("algorithm", "data-structure", "micro-optimization",
                "parallelism", "memory-layout", "rewrite")
"""The bandit's arms when `--strategy bandit` names none (learn/bandit.py)."""
_ARM_NAME = re.compile(r"^[\w][\w.+-]*$")


def check_arms(arms) -> list:
    """The arm names as a list; UsageError for none, a bad name or a repeat."""
    arms = list(arms)
    if not arms:
        raise UsageError("the bandit needs at least one arm")
    for arm in arms:
        if not isinstance(arm, str) or not _ARM_NAME.match(arm):
            raise UsageError(f"bad arm name {arm!r}: use letters, digits, '-', '_', '.'")
    if len(set(arms)) != len(arms):
        raise UsageError(f"arm names repeat: {', '.join(arms)}")
    return arms


ESCALATION_DEFAULTS = {"refine": 3, "pivot": 5, "search_pivots": 2, "halt_pivots": 3}
"""The escalation counts `--escalation` overrides (learn/escalation.py reads them)."""
ESCALATION_KEYS = {"refine": "refine", "pivot": "pivot", "search": "search_pivots", "halt": "halt_pivots"}


def parse_escalation(text: str | None) -> dict:
    """'refine=3,pivot=5,search=2,halt=3' (any subset) -> the full escalation
    counts, defaults filled in. `search` and `halt` count failed pivots."""
    raw = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        key = ESCALATION_KEYS.get(key.strip(), key.strip())
        if not sep or key not in ESCALATION_DEFAULTS:
            raise UsageError(f"--escalation {part!r}: use NAME=COUNT with NAME one of {', '.join(ESCALATION_KEYS)}")
        try:
            raw[key] = int(value)
        except ValueError:
            raise UsageError(f"--escalation {part!r}: {value.strip()!r} is not a whole number") from None
        if raw[key] < 1:
            raise UsageError(f"escalation.{key} must be a whole number >= 1, got {raw[key]!r}")
    return {**ESCALATION_DEFAULTS, **raw}


def parse_arms(strategy: str | None, text: str | None) -> tuple:
    """The bandit's arms: `--arms a,b,c`, else the defaults; none without a bandit."""
    if strategy not in (None, "bandit"):
        raise UsageError(f"--strategy {strategy!r} is not known; use --strategy bandit")
    if strategy is None:
        if text:
            raise UsageError("--arms needs --strategy bandit")
        return ()
    if text is None:
        return DEFAULT_ARMS
    return tuple(check_arms([a.strip() for a in text.split(",") if a.strip()]))
