"""Robust summaries of pair effects, shared by the sequential test (sprt.py),
the noise model (noise.py) and the verified gain (gain.py): outliers judged
against the MAD pooled with the noise prior, pulled back (Huber) or left out,
and the prior-pooled location and scale every decision is computed from.
Pure; why these constants: see sprt.py's docstring ("Outliers")."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .student_t import t_quantile

# 1 / Phi^-1(3/4): turns a median absolute deviation into a normal sigma.
MAD_TO_SIGMA = 1.482602218505602
# Effects this many robust sigmas from their median are pulled back to it...
CLIP = 2.5
# ...and beyond this many they are gross outliers (a 3x slow run) and are left out.
GROSS = 5.0
# Effects that differ by less than this (relative) count as identical.
_SAME = 1e-12


def fmean(values: Sequence[float]) -> float:
    """``statistics.fmean`` (fsum over n, the same float), without importing
    statistics, which loads fractions and decimal (~2 ms of every iterate)."""
    return math.fsum(values) / len(values)


def stdev(values: Sequence[float]) -> float:
    """Sample standard deviation in floats (``statistics.stdev`` is exact but slow)."""
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


def mad_sigma(values: Sequence[float]) -> float:
    med = median(values)
    return MAD_TO_SIGMA * median([abs(v - med) for v in values])


def robust_scale(xs: Sequence[float], sigma_prior: float | None, prior_df: float) -> float:
    """The sigma outliers are judged against: the MAD pooled with the noise prior by df.

    0 without a prior: with no idea of the noise, no effect can be called an
    outlier (a MAD of three effects alone could call anything one).
    """
    if not has_prior(sigma_prior, prior_df):
        return 0.0
    return math.sqrt(pooled_var(mad_sigma(xs) ** 2, len(xs), sigma_prior, prior_df))


def robust_effects(xs: Sequence[float], scale: float, clip: float = CLIP,
                   gross: float = GROSS) -> list[float]:
    """Effects with outliers tamed, judged in ``scale`` sigmas from their median.

    Within ``clip``: unchanged. Between ``clip`` and ``gross``: pulled back to
    ``clip`` (Huber). Beyond ``gross`` (a 3x slow run, not noise): left out,
    so the result may be shorter. Only from 3 effects on (with two, the
    median cannot tell which one is odd) and only with a scale > 0.
    """
    if len(xs) < 3 or scale <= 0:
        return list(xs)
    med = median(xs)
    out = []
    for x in xs:
        r = (x - med) / scale
        if abs(r) > gross:
            continue
        if abs(r) > clip:
            r = math.copysign(clip, r)
        out.append(med + r * scale)
    return out


def disagree(xs: Sequence[float], sigma_prior: float | None, prior_df: float,
              gross: float = GROSS) -> bool:
    """True when the effects' own spread (MAD) is ``gross`` times the noise or more.

    Then half of them or more are outliers (one of two, two of four...) and
    no median can say which half to believe; or the candidate made the
    benchmark far noisier. Either way the pairs cannot decide.
    """
    return len(xs) >= 2 and has_prior(sigma_prior, prior_df) and mad_sigma(xs) > gross * sigma_prior


def outvoted(n: int, kept: int, mean: float, sigma_prior: float | None, gross: float = GROSS) -> bool:
    """True when too few of ``n`` pairs stand behind the robust mean of the ``kept`` ones.

    Gross outliers are left out around the median, so when they are common
    the median may sit on them and the honest pairs are what is left out
    (two slow incumbent runs among three pairs). Hence: never a decision on
    half the pairs or fewer; and when the kept pairs claim an effect no noise
    explains (``gross`` sigmas from zero: what off runs produce), the left-out
    ones must be under a third of the pairs. An ordinary mean with one
    outlier among three is still plainly the odd one out.
    """
    left = n - kept
    if left <= 0:
        return False
    if 2 * left >= n:
        return True
    return sigma_prior is not None and sigma_prior > 0 and abs(mean) > gross * sigma_prior and 3 * left >= n


def incumbent_adrift(inc: Sequence[float], cand: Sequence[float], record: float | None,
                     sigma_pair: float | None, log_scale: bool, gross: float = GROSS) -> bool:
    """True when the incumbent's runs of this iteration sit far (``gross`` pair
    sigmas) from the incumbent's recorded score while the candidate's runs sit
    nearer it than half that: the incumbent's runs are off (two slow runs in
    the first two pairs agree with each other, so no robust filter on the
    effects can see them). Drift moves both sides alike and a real change
    moves the candidate only, so neither trips it. On medians, scores as the
    effects' scale has them (logs when ``log_scale``)."""
    if not sigma_pair or sigma_pair <= 0 or record is None or not inc or not cand:
        return False
    if log_scale and min(min(inc), min(cand), record) <= 0:
        return False
    f = math.log if log_scale else float
    off_inc = abs(median([f(x) for x in inc]) - f(record))
    return off_inc > gross * sigma_pair and abs(median([f(x) for x in cand]) - f(record)) < off_inc / 2


def all_same(values: Sequence[float]) -> bool:
    top = max(abs(v) for v in values)
    return max(values) - min(values) <= _SAME * max(1.0, top)


def has_prior(sigma_prior: float | None, prior_df: float) -> bool:
    return sigma_prior is not None and sigma_prior > 0 and prior_df > 0


def check_effects(effects: Sequence[float]) -> list[float]:
    out = [float(e) for e in effects]
    if not all(math.isfinite(e) for e in out):
        raise ValueError("effects must be finite numbers")
    return out


def pooled_var(sample_var: float, n: int, sigma_prior: float | None, prior_df: float) -> float:
    """Prior variance and a sample variance with n-1 df, pooled by degrees of freedom."""
    prior = has_prior(sigma_prior, prior_df)
    num = (prior_df * sigma_prior ** 2 if prior else 0.0) + (n - 1) * sample_var
    den = (prior_df if prior else 0.0) + (n - 1)
    return num / den if den > 0 else 0.0


def robust_location(effects: list[float], sigma_prior: float | None,
              prior_df: float) -> tuple[int, float, float, float]:
    """How many robust effects, their mean, the prior-pooled sum of squares V, and its df.

    V = prior_df * sigma_prior^2 + sum((w - mean)^2) is the scale of the
    inverse-gamma posterior of the variance, shared by the test, the interval
    and the cap test.
    """
    ws = robust_effects(effects, robust_scale(effects, sigma_prior, prior_df))
    mean = fmean(ws)
    prior = has_prior(sigma_prior, prior_df)
    v = (prior_df * sigma_prior ** 2 if prior else 0.0) + sum((w - mean) ** 2 for w in ws)
    df = (prior_df if prior else 0.0) + len(ws) - 1
    return len(ws), mean, v, df


def t_interval(mean: float, se: float, df: float, confidence: float) -> tuple[float, float] | None:
    if df <= 0:
        return None
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    return mean - half, mean + half
