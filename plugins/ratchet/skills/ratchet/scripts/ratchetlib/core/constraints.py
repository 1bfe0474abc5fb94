"""Hard constraints (`--constraint`) and soft limits (`--warn`) on metrics.

A limit is `NAME OP NUMBER` with OP one of `>=`, `<=`, `>`, `<`, for example
`correctness>=100` or `'p95_ms <= 50'`. NAME is read from the same report as
the primary metric, by the same rules (`metrics.extract`, without
`--metric-pattern`); the primary metric itself may be named too.

Rules, pure and unit-tested:
- a constraint must hold in EVERY trial of an iteration; a trial whose report
  lacks the metric (or holds nan/inf) fails it: a missing number never passes.
  Any failure makes the iteration `constraint` (reverted);
- a warning is checked on the mean over the trials that have the metric, is
  recorded and shown by `status`, and never reverts anything;
- `--guard-metric` limits use the same syntax and are checked on the guard's
  output (see guard.py).
"""

from __future__ import annotations

import math
import operator
import re

from .text import num
from .errors import UsageError

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_LIMIT = re.compile(r"^\s*([^\s<>=!]+)\s*(>=|<=|>|<)\s*(\S+)\s*$")


def parse(text: str, flag: str = "--constraint") -> dict:
    """'correctness>=100' -> {"name": "correctness", "op": ">=", "value": 100.0}."""
    m = _LIMIT.match(str(text))
    if not m:
        raise UsageError(f"{flag} {text!r} is not NAME>=X, NAME<=X, NAME>X or NAME<X (e.g. correctness>=100)")
    try:
        value = float(m.group(3))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: {m.group(3)!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{flag} {text!r}: the limit must be a finite number")
    return {"name": m.group(1), "op": m.group(2), "value": value}


def show(limit: dict) -> str:
    return f"{limit['name']}{limit['op']}{num(limit['value'])}"


def holds(limit: dict, value: float | None) -> bool:
    """True when `value` satisfies `limit`; a missing value never does."""
    return value is not None and _OPS[limit["op"]](value, limit["value"])


def trial_value(trial: dict, name: str, primary: str) -> float | None:
    """The value of `name` in one trial (the primary metric is its score)."""
    if name in (trial.get("metrics") or {}):
        return trial["metrics"][name]
    return trial.get("score") if name == primary else None


def violation(trials: list, limits, primary: str) -> str | None:
    """The first constraint a trial breaks, as a reason; None when all hold."""
    for limit in limits:
        for t in trials:
            value = trial_value(t, limit["name"], primary)
            if value is None:
                return f"constraint {show(limit)}: metric {limit['name']} missing in trial {t['trial']}"
            if not holds(limit, value):
                return f"constraint {show(limit)} violated: {num(value)} in trial {t['trial']}"
    return None


def warnings(averages: dict, limits) -> list:
    """Soft limits not met by the means in `averages` ({name: mean or None})."""
    out = []
    for limit in limits:
        value = averages.get(limit["name"])
        if not holds(limit, value):
            out.append(f"{show(limit)} (got {num(value)})")
    return out
