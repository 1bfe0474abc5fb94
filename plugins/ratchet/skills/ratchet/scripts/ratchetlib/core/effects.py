"""One pair's effect: the scale it is measured on, its seed and run order, and
the margin and target (h0, h1) the sequential test (sprt.py) compares it with.

Pure (numbers in, numbers out). Scale: a *pair* is one run of the incumbent
and one of the candidate, back to back. Its *effect* is signed so that
positive means better in the configured direction: the log-ratio of the two
scores when every score is positive (so a +2% change is about 0.0198 whatever
the metric's units), the plain difference otherwise. ``display`` turns an
effect back into percent or metric units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import sha256

DIRECTIONS = ("max", "min")


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")


def use_log_scale(scores: Sequence[float]) -> bool:
    """True when every score is finite and positive, i.e. effects can be log-ratios.

    Decide this once per run from the baseline scores and keep it: mixing scales
    would make the persisted noise estimate meaningless.
    """
    return bool(scores) and all(math.isfinite(s) and s > 0 for s in scores)


def pair_effect(incumbent: float, candidate: float, direction: str, log_scale: bool) -> float:
    """Effect of one pair, positive = candidate better in ``direction``.

    log(candidate/incumbent) on the log scale (ValueError if a score is not
    positive), candidate - incumbent otherwise; negated for ``min``.
    """
    _check_direction(direction)
    if not (math.isfinite(incumbent) and math.isfinite(candidate)):
        raise ValueError(f"scores must be finite, got {incumbent!r} and {candidate!r}")
    if log_scale:
        if incumbent <= 0 or candidate <= 0:
            raise ValueError(f"log-scale effects need positive scores, got {incumbent!r} and {candidate!r}")
        raw = math.log(candidate) - math.log(incumbent)
    else:
        raw = candidate - incumbent
    return raw if direction == "max" else -raw


def display(effect: float, log_scale: bool) -> float:
    """An effect as people read it: percent change on the log scale, metric units otherwise."""
    return math.expm1(effect) * 100.0 if log_scale else effect


def margin_effect(value: float, relative: bool, *, incumbent: float, direction: str,
                  log_scale: bool) -> float:
    """The ``--min-improvement`` margin on the effect scale (the H0 boundary h0).

    ``relative``: ``value`` percent; log(1 + value/100) on the log scale, or
    value/100 * |incumbent| on the difference scale. Absolute: ``value`` metric
    units; on the log scale the log-ratio that beats ``incumbent`` by exactly
    ``value`` in ``direction``. ValueError on a negative margin, or an absolute
    margin a ``min`` metric cannot beat while staying positive.
    """
    _check_direction(direction)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"min-improvement must be a non-negative number, got {value!r}")
    if value == 0:
        return 0.0
    if relative:
        return math.log1p(value / 100.0) if log_scale else value / 100.0 * abs(incumbent)
    if not log_scale:
        return float(value)
    if not incumbent > 0:
        raise ValueError(f"log-scale margins need a positive incumbent, got {incumbent!r}")
    if direction == "max":
        return math.log1p(value / incumbent)
    if value >= incumbent:
        raise ValueError(f"min-improvement {value:g} is not below the incumbent score {incumbent:g}; "
                         "no positive score can beat it")
    return -math.log1p(-value / incumbent)


def effect_hypotheses(*, margin: float, target_percent: float, incumbent: float,
               log_scale: bool) -> tuple[float, float]:
    """(h0, h1) for the sequential test from the margin and the target (``--target``, percent).

    h1 is the target on the effect scale (log(1 + t/100), or t% of |incumbent|
    on the difference scale); if the margin already reaches it, the target is
    read as "beyond the margin" and h1 = h0 + target, so always h1 > h0.
    ValueError on a non-positive target or a zero incumbent on the difference scale.
    """
    if not math.isfinite(target_percent) or target_percent <= 0:
        raise ValueError(f"target must be a positive percentage, got {target_percent!r}")
    if log_scale:
        target = math.log1p(target_percent / 100.0)
    else:
        if incumbent == 0 or not math.isfinite(incumbent):
            raise ValueError("a relative target needs a non-zero incumbent score on the difference scale")
        target = target_percent / 100.0 * abs(incumbent)
    h1 = target if target > margin else margin + target
    return margin, h1


def pair_seed(run_id: str, iteration: int, pair: int) -> int:
    """Seed shared by both runs of one pair (common random numbers), in [0, 2**31).

    Deterministic in (run_id, iteration, pair) so a resumed or re-run pair gets
    the same seed; 31 bits so every usual seed API accepts it.
    """
    digest = sha256.builtin(f"ratchet-seed\0{run_id}\0{iteration}\0{pair}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def incumbent_first(pair: int) -> bool:
    """Run order within pair ``pair`` (1-based): AB, BA, AB... so drift cancels."""
    if pair < 1:
        raise ValueError(f"pairs are numbered from 1, got {pair}")
    return pair % 2 == 1
