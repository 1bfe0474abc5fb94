"""How a measured effect reads to people: the change of the metric itself.

The decision's numbers are relative *improvements*, positive = better in the
run's direction (stats effects, and the stored `estimate`, `interval`,
`gain_pct`, `detectable_effect`, memory `effect`): they rank and compare
well whatever the direction. On the ratio scale they read wrong for a
lower-is-better metric, though: a latency cut 136x is "better by +13500%".

So every figure shown to people (verdict reasons, the verified gain, hints,
near-miss ideas, program.md, the report) is the relative change of the metric
itself, signed as the metric moved, like the verdict's headline
(`latency 0.5 vs 68 (-99.27%)`): `-99.3% (137x lower)`, `+2.1%`. From a
factor of 2 on, the factor is added. Stored fields keep their meaning.

Pure functions, no I/O.
"""

from __future__ import annotations

import math

from .text import pct

# From this factor on, a change is also shown as "Nx higher/lower".
FACTOR_FROM = 2.0


def _finite(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


def metric_change(improvement, direction: str, log_scale: bool = True) -> float | None:
    """A relative improvement (0.02 = 2% better) as the metric's own relative
    change (a fraction; -0.0196 = 1.96% lower), or None.

    On the log scale the improvement is a ratio, 1 + r = candidate/incumbent
    (max) or incumbent/candidate (min); on the difference scale (and for an
    oriented delta over |incumbent|) r = +-(candidate - incumbent)/|incumbent|.
    Higher-is-better metrics need no conversion."""
    if not _finite(improvement):
        return None
    if direction != "min":
        return float(improvement)
    if log_scale:
        return None if improvement <= -1 else -improvement / (1.0 + improvement)
    return -float(improvement)


def from_effect(effect: float, direction: str, log_scale: bool) -> float:
    """A stats-scale effect (log-ratio or metric units, positive = better) as
    the metric's change: a fraction on the log scale, metric units otherwise."""
    e = -effect if direction == "min" else effect
    return math.expm1(e) if log_scale else e


def factor(change) -> str:
    """'137x lower' / '3.5x higher' for a change of a factor of 2 or more, else ''."""
    if not _finite(change):
        return ""
    ratio = 1.0 + change
    if ratio >= FACTOR_FROM:
        return f"{ratio:.3g}x higher"
    if 0 < ratio <= 1.0 / FACTOR_FROM:
        return f"{1.0 / ratio:.3g}x lower"
    return ""


def percent(change, with_factor: bool = True, signed: bool = True) -> str:
    """A relative change (fraction) as '-99.3% (137x lower)', '+2.1%', '?' when unknown."""
    if not _finite(change):
        return "?"
    text = pct(change * 100.0, signed)
    f = factor(change) if with_factor else ""
    return f"{text} ({f})" if f else text


def bracket(lo, hi) -> str:
    """An interval of relative changes as '[-99.4%, -99.2%]' (low end first), '' when unknown."""
    if not (_finite(lo) and _finite(hi)):
        return ""
    lo, hi = sorted((lo, hi))
    return f"[{pct(lo * 100.0)}, {pct(hi * 100.0)}]"


def _units(x: float) -> str:
    return f"{x:+.4g}"


def effect_text(estimate: float, interval, direction: str, log_scale: bool) -> str:
    """A stats-scale estimate and interval as people read them: '-99.3% (137x
    lower) [-99.4%, -99.2%]' on the log scale, '-2.1 [-3, -1.2]' (metric
    units) on the difference scale."""
    shown = from_effect(estimate, direction, log_scale)
    ends = None if interval is None else sorted(from_effect(x, direction, log_scale) for x in interval)
    if log_scale:
        text = percent(shown)
        return text + (f" {bracket(*ends)}" if ends else "")
    text = _units(shown)
    return text + (f" [{_units(ends[0])}, {_units(ends[1])}]" if ends else "")


def improvement_text(estimate, interval, direction: str, log_scale: bool = True) -> str:
    """A stored relative improvement and its interval (a record's `estimate`,
    `interval`) as the metric's change: '-99.3% (137x lower) [-99.4%, -99.2%]'."""
    text = percent(metric_change(estimate, direction, log_scale))
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        ends = [metric_change(x, direction, log_scale) for x in interval]
        b = bracket(*ends)
        text += f" {b}" if b else ""
    return text


def record_change(record: dict, direction: str) -> float | None:
    """The metric's relative change a record measured (fraction), or None: its
    paired `estimate` when it has one, else delta over |incumbent|."""
    est = record.get("estimate")
    if _finite(est):
        return metric_change(est, direction, record.get("log_scale") is not False)
    delta, inc = record.get("delta"), record.get("incumbent")
    if _finite(delta) and _finite(inc) and inc:
        return delta / abs(inc)
    return None


def verified_change(verified: dict, direction: str, log_scale: bool = True) -> tuple:
    """(change_pct, [lo, hi] | None) of a `verify` result, in percent of the
    metric itself: its `change_pct`/`change_interval` when present, else
    converted from `gain_pct`/`interval` (state written before they existed)."""
    if _finite(verified.get("change_pct")):
        iv = verified.get("change_interval")
        ok = isinstance(iv, (list, tuple)) and len(iv) == 2 and all(_finite(x) for x in iv)
        return verified["change_pct"], (sorted(iv) if ok else None)
    scale = verified.get("log_scale", log_scale) is not False

    def conv(p):
        c = metric_change(p / 100.0, direction, scale) if _finite(p) else None
        return None if c is None else c * 100.0
    iv = verified.get("interval")
    ends = [conv(x) for x in iv] if isinstance(iv, (list, tuple)) and len(iv) == 2 else None
    return conv(verified.get("gain_pct")), (sorted(ends) if ends and None not in ends else None)
