"""`doctor`'s noise advice for the rule that will decide, when that is the
paired test (`--decision paired`, the default).

The paired test holds false keeps at `--alpha` whatever the noise, so no
`--min-improvement` is suggested to buy that (a margin the size of the noise
turns real wins into reverts). What the noise does cost is power: doctor
reports the smallest improvement the test detects (power 1 - `--beta`)
within `--max-trials` pairs at the measured noise, `core/power.detectable`
(the same figure `baseline` prints after its calibration), and, when that
misses the `--target`, the pair cap that would reach it. The mean rule keeps
its own advice (doctor_runs._noise_checks)."""

from __future__ import annotations

import math

from ..core import power, record
from ..core.effects import use_log_scale
from ..core.errors import UsageError
from ..core.noise import noise_estimate
from ..core.sprt import MAX_SHARE
from ..core.student_t import normal_quantile
from .doctor_figures import OK, WARN, Check

MAX_SUGGESTED_PAIRS = 100


def _detectable_at(cfg, noise, base: float, pairs: int) -> float | None:
    return power.detectable(record.replace(cfg, max_trials=pairs), noise, base)


def pairs_for_target(cfg, noise, base: float) -> int | None:
    """The smallest pair cap (at most MAX_SUGGESTED_PAIRS) at which the test
    detects the target, or None. Starts from the cap test's closed form with
    its largest share of alpha (a lower bound) and steps up by ~10%."""
    goal = cfg.target / 100.0
    try:
        h0, h1 = power.hypotheses(cfg, base, noise.log_scale)
    except UsageError:  # a margin the test cannot use: paired_noise_checks says so
        return None
    z = normal_quantile(1 - MAX_SHARE * cfg.alpha) + normal_quantile(1 - cfg.beta)
    n = max(cfg.min_pairs, math.ceil((z * noise.sigma_pair / (h1 - h0)) ** 2))
    while n <= MAX_SUGGESTED_PAIRS:
        d = _detectable_at(cfg, noise, base, n)
        if d is not None and d <= goal:
            return n
        n = max(n + 1, math.ceil(n * 1.1))
    return None


def paired_noise_checks(cfg, fig: dict, checks: list) -> None:
    """`detectable effect` and `false keeps` for the paired test, figures into `fig`."""
    scores, mean = fig["scores"], fig["mean"]
    noise = noise_estimate(scores, use_log_scale(scores))
    d = power.detectable(cfg, noise, mean)
    target = cfg.target
    if d is None:
        checks.append(Check("detectable effect", WARN, "the paired test cannot use this run's margin and target",
                            "adjust --min-improvement/--target, or use --decision mean"))
        return
    fig["paired_detectable_pct"] = d * 100
    within = f"within --max-trials {cfg.max_trials} pairs ({2 * cfg.max_trials} runs) at this noise"
    if d * 100 <= target:
        checks.append(Check("detectable effect", OK, f"the paired test detects improvements of {d * 100:.2g}% "
                            f"{within} (target {target:g}%)"))
    else:
        need = pairs_for_target(cfg, noise, mean)
        fig["suggested_max_trials"] = need
        fix = (f"--max-trials {need} (up to {2 * need} runs per iteration) to detect {target:g}%, or a quieter benchmark"
               if need else f"reduce the noise first: detecting {target:g}% would take over {MAX_SUGGESTED_PAIRS} "
               f"pairs; or a larger --target")
        checks.append(Check("detectable effect", WARN, f"the paired test detects only improvements of "
                            f"{d * 100:.2g}% or more {within} (target {target:g}%)", fix))
    margin = f"; --min-improvement {cfg.min_improvement} also reverts real gains under it" \
        if cfg.min_improvement.value > 0 else ""
    checks.append(Check("false keeps", OK, f"held at --alpha {cfg.alpha:g} by the paired test at any noise: "
                        f"no --min-improvement needed{margin}"))
