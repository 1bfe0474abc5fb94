"""What the paired test can detect, from the run's margin and target: the
hypotheses (h0, h1) on the effect scale, the smallest improvement detectable
within the pair cap at a given noise, and effects read as relative
improvements. Pure; shared by the decision (keep/paired), the verify
(keep/recheck) and the run state's noise fold (core/state)."""

from __future__ import annotations

import math

from .effects import effect_hypotheses, margin_effect
from .errors import UsageError
from .noise import Noise
from .sprt import detectable_effect


def noise_of(data: dict | None) -> Noise | None:
    """The run state's `noise` as a Noise; None when absent or unreadable."""
    try:
        return Noise.from_json(data) if data else None
    except ValueError:
        return None


def hypotheses(cfg, incumbent: float, log_scale: bool) -> tuple:
    """(h0, h1) on the stats scale; UsageError when the margin cannot apply."""
    mi = cfg.min_improvement
    try:
        h0 = margin_effect(mi.value, mi.relative, incumbent=incumbent, direction=cfg.direction,
                                 log_scale=log_scale)
        return effect_hypotheses(margin=h0, target_percent=cfg.target, incumbent=incumbent, log_scale=log_scale)
    except ValueError as e:
        raise UsageError(f"the paired test cannot use this run's margin/target: {e}; "
                         f"adjust --min-improvement/--target or use --decision mean") from None


def relative(effect: float, log_scale: bool, base: float | None) -> float | None:
    """An effect as a relative improvement (0.02 = 2% better)."""
    if log_scale:
        return math.expm1(effect)
    return effect / abs(base) if base else None


def detectable(cfg, noise: Noise, base: float | None) -> float | None:
    """The smallest improvement (relative) the test detects within the pair cap."""
    try:
        h0, h1 = hypotheses(cfg, base, noise.log_scale)
        d = detectable_effect(noise.sigma_pair, cfg.alpha, cfg.beta, cfg.max_trials, h0=h0, h1=h1,
                                    min_pairs=cfg.min_pairs)
    except (UsageError, ValueError):
        return None
    return relative(h0 + d if d else 0.0, noise.log_scale, base)
