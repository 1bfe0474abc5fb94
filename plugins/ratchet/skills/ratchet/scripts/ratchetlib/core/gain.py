"""The verified gain: the paired estimate of the best over the start commit
(``verify``), with its t-interval, as people read it. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import record
from .change import effect_text
from .effects import display
from .robust import all_same, check_effects, fmean, has_prior, robust_location, t_interval


class Gain(record.Record):
    """A paired estimate with its confidence interval, on the effect scale."""

    estimate: float
    interval: tuple[float, float] | None
    pairs: int
    log_scale: bool
    confidence: float

    def display(self, direction: str = "max") -> str:
        """Reads like "+12.3% [+8.1%, +16.6%]" on the log scale, in metric units
        otherwise: the change of the metric itself (change.py)."""
        return effect_text(self.estimate, self.interval, direction, self.log_scale)

    def to_json(self) -> dict:
        """JSON-able, including the human-scale figures (percent on the log scale)."""
        shown = None if self.interval is None else [display(v, self.log_scale) for v in self.interval]
        return {"estimate": self.estimate,
                "interval": None if self.interval is None else list(self.interval),
                "pairs": self.pairs, "log_scale": self.log_scale, "confidence": self.confidence,
                "shown": display(self.estimate, self.log_scale), "shown_interval": shown}


def gain_interval(effects: Sequence[float], confidence: float = 0.95, *, log_scale: bool = True,
                  sigma_prior: float | None = None, prior_df: float = 0.0) -> Gain:
    """Paired gain of the best over the start (``verify``): robust mean and t-interval.

    ``effects``: pair effects with the start commit as incumbent and the best
    as candidate. The noise estimate may be pooled in (``sigma_prior``,
    ``prior_df``); without it and with one pair the interval is None.
    ValueError when there are no effects or ``confidence`` is not in (0, 1).
    """
    xs = check_effects(effects)
    if not xs:
        raise ValueError("a gain needs at least one pair")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not has_prior(sigma_prior, prior_df) and all_same(xs):
        est = fmean(xs)
        interval = (est, est) if len(xs) > 1 else None
        return Gain(est, interval, len(xs), log_scale, confidence)
    m, mean, v, df = robust_location(xs, sigma_prior, prior_df)
    se = math.sqrt(v / df / m) if df > 0 else 0.0
    return Gain(mean, t_interval(mean, se, df, confidence), len(xs), log_scale, confidence)
