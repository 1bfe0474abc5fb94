"""The paired keep rule: a robust sequential test on pair effects (keep,
revert, or run another pair), its alpha split, and the smallest effect it
can detect. Pure (numbers in, numbers out, no I/O) so the decision rule that
``iterate`` applies is the very code ``bench/decision_quality.py`` measures.
Effects come from effects.py, the noise prior from noise.py.

The paired rule (``sprt_decide``) is a sequential probability ratio test of
H0 "mean effect = h0" (the practical margin) against H1 "mean effect >= h1"
(the target), checked after every pair, with a last word at the pair cap.
Its parts, and why (figures from ``bench/decision_quality.py``):

* Unknown variance is integrated out, not plugged in: the noise estimate from
  calibration is an inverse-gamma prior worth ``prior_df`` degrees of freedom,
  so each hypothesis's likelihood is a Student-t marginal. Two near-identical
  pairs cannot fake certainty (the prior's spread still counts).
* H1 is composite: a mixture of simple alternatives at 1, 2, 4, 8 and up to
  512 times the target distance (``H1_MIXTURE``, 0.7 of the weight on the target). A
  simple H1 judges a +10% change by how well it fits +2% and needs 3-4 pairs
  for it; a generalized likelihood ratio (H1 at the observed mean) keeps too
  many do-nothing changes at high noise.
* The cap's last word: at ``max_pairs`` an undecided test keeps the change if
  a one-sided t-test says effect > h0. Without it a 5%-noise benchmark, where
  +2% is out of reach of 10 pairs, keeps almost nothing (row "sprt-only").
* alpha is split between Wald's bounds and that cap test (``alpha_split``) in
  proportion to how often a test reaches the cap at the calibrated noise:
  at 1% noise the bounds keep 90% of alpha and decide in 2-3 pairs; at 5%
  and more the cap test gets 70% and the bounds get strict, which also
  curbs the sequential part's excess false keeps when a 5-run calibration
  happened to underestimate the noise.
* Outliers (``robust_effects``): from three pairs on, effects further than
  2.5 robust sigmas (MAD pooled with the prior) from their median are pulled
  back to 2.5, and gross ones (beyond 5: a 3x slow run, not noise) are left
  out of the statistics; they still count toward the cap. Pairs whose own
  spread (MAD) is 5 times the noise or more never decide: half of them or
  more are outliers (one of two, two of four) and no median can say which
  half to believe. So one slow run never decides alone. (Replacing a gross
  outlier by "one sigma on its side" was tried: anchored on the median, it
  echoes the current trend and doubled false keeps among tests that met one.)
  No decision rests on half the pairs or fewer (``outvoted``), and when the
  pairs kept claim an effect no noise explains (5 sigmas from zero), the
  left-out ones must be under a third: two 10x-off incumbent runs among three
  pairs put the median on the outliers, which would otherwise keep a no-op
  at +900%. When the two are the first two pairs they agree, and only the
  incumbent's record shows them: ``adrift`` (robust.incumbent_adrift, the
  caller's) holds such pairs too. Such pairs run on; at the cap they end
  ``noisy:`` (a revert that records no effect, estimate 0 and no interval).
* A clear loss (its whole interval below the margin, within 5 sigmas of
  zero so never one gross run) is reverted at once, even before
  ``min_pairs``: a revert changes nothing, and a keep still needs them.
* A metric with no measurable noise (identical effects, no noise prior) is
  decided by plain comparison once ``min_pairs`` are in.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from . import record
from .change import effect_text
from .robust import GROSS, all_same, check_effects, disagree, fmean, has_prior, outvoted, robust_location, t_interval
from .student_t import normal_quantile, t_quantile

# alpha is split between the sequential part (Wald's bounds) and the cap test.
# The cap test gets this share of alpha at least and at most (see alpha_split).
MIN_SHARE = 0.1
MAX_SHARE = 0.7


class SequentialVerdict(record.Record):
    """One decision (or "continue") with its evidence, ready for a results record.

    Estimate, interval (two-sided, ``confidence``), h0/h1 and sigma (the
    pooled sd of one pair's effect) are on the effect scale (see
    ``display``); ``statistic`` is the log-likelihood ratio and ``bounds`` the
    (revert, keep) thresholds on it, both None for a deterministic metric.
    ``pairs`` counts every pair run, outliers included.
    """

    rule: str
    outcome: str
    pairs: int
    estimate: float
    interval: tuple[float, float] | None
    statistic: float | None
    bounds: tuple[float, float] | None
    reason: str
    h0: float
    h1: float | None
    sigma: float | None
    log_scale: bool

    @property
    def keep(self) -> bool:
        return self.outcome == "accept"

    @property
    def decided(self) -> bool:
        return self.outcome != "continue"

    def to_json(self) -> dict:
        """JSON-able evidence for results.jsonl (tuples become lists)."""
        data = record.asdict(self)
        for key in ("interval", "bounds"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data


def _check_levels(alpha: float, beta: float) -> None:
    if not (0 < alpha < 1 and 0 < beta < 1 and alpha + beta < 1):
        raise ValueError(f"need 0 < alpha, beta and alpha + beta < 1, got alpha={alpha!r} beta={beta!r}")


# H1 is composite ("effect >= target"): the test mixes simple alternatives at
# these multiples of (h1 - h0) above h0, with these weights. Most weight on the
# target keeps the power there (misses at the target stay near beta); the rest
# lets a clearly large improvement win after the minimum pairs instead of
# being judged only by how well it fits "exactly the target". The far
# components (32x to 512x) matter because the variance is integrated out:
# with Student-t marginals an effect far beyond every component fits H1 barely
# better than H0, so without them a +65% or a 10x win ran to the pair cap.
H1_MIXTURE = ((1.0, 0.7), (2.0, 0.1), (4.0, 0.1), (8.0, 0.07), (32.0, 0.01), (128.0, 0.01), (512.0, 0.01))


def _log_marginal(v: float, n: int, mean: float, mu: float, a: float) -> float:
    """log of the Student-t marginal likelihood of the effects at mean effect mu (up to a constant)."""
    return -a * math.log(max(v + n * (mean - mu) ** 2, 1e-300))


def mixture_llr(mean: float, v: float, n: int, nu: float, h0: float, h1: float) -> float:
    """Log-likelihood ratio of H1 (the ``H1_MIXTURE``) against H0 (effect = h0).

    The variance is integrated out under the inverse-gamma prior (nu df, scale
    folded into v), so both likelihoods are Student-t marginals in the mean.
    """
    a = (nu + n) / 2.0
    terms = [math.log(w) + _log_marginal(v, n, mean, h0 + m * (h1 - h0), a) for m, w in H1_MIXTURE]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms)) - _log_marginal(v, n, mean, h0, a)


def _mixture_llr_known(s: float, n: int, theta: float) -> float:
    """The mixture log-likelihood ratio with known variance, in sigma units (h0 = 0, sum s of n effects)."""
    terms = [math.log(w) + m * theta * s - n * (m * theta) ** 2 / 2.0 for m, w in H1_MIXTURE]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


@functools.lru_cache(maxsize=2048)
def cap_probability(theta: float, mean: float, min_pairs: int, max_pairs: int, alpha: float,
                    beta: float) -> float:
    """P(the test reaches the cap undecided), for known noise and Wald's full-alpha bounds.

    Sigma units with h0 = 0: ``theta`` = (h1 - h0) / sigma_pair, ``mean`` the
    true effect (0 for H0, theta for H1). Carries the density of the sum of
    effects through the pairs on a grid, removing what crosses a bound; a few
    milliseconds, cached.
    """
    lo, hi = math.log(beta / (1 - alpha)), math.log((1 - beta) / alpha)
    step = 0.2
    half = int((6.0 * math.sqrt(max_pairs) + abs(mean) * max_pairs + 1.0) / step)
    grid = [i * step for i in range(-half, half + 1)]
    reach = int(5.0 / step)
    kernel = [math.exp(-(j * step - mean) ** 2 / 2.0) * step / math.sqrt(2 * math.pi)
              for j in range(-reach, reach + 1)]
    dens = [kernel[reach + i] if -reach <= i <= reach else 0.0 for i in range(-half, half + 1)]
    for n in range(1, max_pairs + 1):
        if n > 1:
            dens = [sum(dens[i - j] * kernel[reach + j] for j in range(-reach, reach + 1) if 0 <= i - j < len(dens))
                    for i in range(len(dens))]
        if n >= min_pairs:
            dens = [d if d and lo < _mixture_llr_known(x, n, theta) < hi else 0.0 for x, d in zip(grid, dens)]
    return min(1.0, sum(dens))


def alpha_split(alpha: float, beta: float, *, sigma_pair: float | None, h0: float, h1: float,
                min_pairs: int, max_pairs: int) -> tuple[float, float]:
    """(sequential alpha, cap alpha), summing to alpha.

    Spent where the decisions happen: the cap test's share is the chance that
    a test reaches the cap (``cap_probability`` at the calibrated noise,
    averaged over a do-nothing change and one exactly at the target), kept
    within [MIN_SHARE, MAX_SHARE]; the sequential bounds get the rest. With
    little noise nearly every test stops early and the bounds keep 90% of
    alpha; with much noise the bounds get strict and the cap test does the
    work. The split depends on the noise prior only, never on this
    iteration's pairs, so the two error rates add up to at most alpha (up to
    the usual slack of Wald's bounds and of a t-test on a few robust pairs,
    which is why the cap never gets more than 70%). Without a prior: half each.
    (h1 - h0) / sigma_pair is rounded to 2 significant digits so the cached
    ``cap_probability`` serves nearby noise levels.
    """
    _check_levels(alpha, beta)
    if sigma_pair is None or sigma_pair <= 0:
        share = 0.5
    else:
        # Capped: beyond ~20 sigmas every test decides at min_pairs (share = MIN_SHARE), and an
        # unbounded theta (a float-rounding sigma of 1e-17) would make cap_probability's grid explode.
        theta = min(float(f"{(h1 - h0) / sigma_pair:.2g}"), 20.0)
        share = 0.5 * (cap_probability(theta, 0.0, min_pairs, max_pairs, alpha, beta)
                       + cap_probability(theta, theta, min_pairs, max_pairs, alpha, beta))
    share = min(max(share, MIN_SHARE), MAX_SHARE)
    return (1.0 - share) * alpha, share * alpha


def wald_bounds(alpha: float, beta: float) -> tuple[float, float]:
    """(revert, keep) thresholds on the log-likelihood ratio: Wald's, at level ``alpha``."""
    _check_levels(alpha, beta)
    return math.log(beta / (1 - alpha)), math.log((1 - beta) / alpha)


def detectable_effect(sigma_pair: float, alpha: float = 0.05, beta: float = 0.2,
                      max_pairs: int = 10, *, h0: float = 0.0, h1: float = math.log1p(0.02),
                      min_pairs: int = 2) -> float:
    """Smallest true effect above h0 (effect scale) kept with probability 1-beta within ``max_pairs``.

    The cap test's floor: (z_{1-a} + z_{1-beta}) * sigma_pair / sqrt(max_pairs),
    where a is the cap test's part of alpha (``alpha_split`` for this noise and
    these hypotheses). The sequential part stops clear cases earlier and adds
    a little power; this is the honest figure to print. 0 when noiseless.
    """
    _check_levels(alpha, beta)
    if max_pairs < 1:
        raise ValueError(f"max pairs must be at least 1, got {max_pairs}")
    if sigma_pair < 0:
        raise ValueError(f"sigma must be non-negative, got {sigma_pair!r}")
    if sigma_pair == 0:
        return 0.0
    _, cap_alpha = alpha_split(alpha, beta, sigma_pair=sigma_pair, h0=h0, h1=h1,
                               min_pairs=min_pairs, max_pairs=max_pairs)
    return (normal_quantile(1 - cap_alpha) + normal_quantile(1 - beta)) * sigma_pair / math.sqrt(max_pairs)


def sprt_decide(effects: Sequence[float], *, h0: float, h1: float, alpha: float = 0.05,
                beta: float = 0.2, min_pairs: int = 2, max_pairs: int = 10,
                sigma_prior: float | None = None, prior_df: float = 4.0,
                final_test: bool = True, log_scale: bool = True,
                confidence: float = 0.95, direction: str = "max", adrift: bool = False) -> SequentialVerdict:
    """Keep ("accept"), revert ("reject") or run another pair ("continue").

    ``effects``: the pair effects so far (``pair_effect``), in run order.
    H0: mean effect = h0 (the margin), H1: mean effect >= h1 > h0 (the target).
    ``sigma_prior``/``prior_df``: the noise estimate (``Noise.sigma_pair``,
    ``Noise.df``); None or 0 means unknown (then identical effects count as a
    deterministic metric, and nothing counts as an outlier). Never decides
    before ``min_pairs``, nor while the pairs disagree far beyond the noise
    (``disagree``: half of them or more look like outliers).
    At ``max_pairs`` always decides: keep only if a one-sided t-test at the
    cap's part of alpha (``alpha_split``) says effect > h0. ``final_test=False``
    drops that last word (an undecided test then reverts, and Wald's bounds
    get all of alpha). ``interval`` is two-sided at ``confidence``.
    ``direction`` only words the reason (the metric's own change, change.py).
    ``adrift``: the incumbent's runs sit far from its recorded score while the
    candidate's match it (``robust.incumbent_adrift``); such pairs never decide.
    ValueError on inconsistent parameters or non-finite effects.
    """
    xs = check_effects(effects)
    _check_test(alpha, beta, h0=h0, h1=h1, min_pairs=min_pairs, max_pairs=max_pairs, confidence=confidence)
    n = len(xs)
    seq_alpha, cap_alpha = alpha, 0.0
    if final_test:
        seq_alpha, cap_alpha = alpha_split(alpha, beta, sigma_pair=sigma_prior if prior_df > 0 else None,
                                           h0=h0, h1=h1, min_pairs=min_pairs, max_pairs=max_pairs)
    bounds = wald_bounds(seq_alpha, beta)
    common = dict(rule="paired", pairs=n, h0=h0, h1=h1, log_scale=log_scale)
    if n == 0:
        return SequentialVerdict(outcome="continue", estimate=0.0, interval=None, statistic=0.0, bounds=bounds,
                       reason="no pairs yet", sigma=sigma_prior, **common)
    prior = has_prior(sigma_prior, prior_df)
    if not prior and all_same(xs):
        return _deterministic(xs, min_pairs, direction=direction, **common)

    m, mean, v, df = robust_location(xs, sigma_prior, prior_df)
    llr = mixture_llr(mean, v, m, prior_df if prior else 0.0, h0, h1)
    sigma = math.sqrt(v / df) if df > 0 else 0.0
    se = sigma / math.sqrt(m)
    interval = t_interval(mean, se, df, confidence)
    evidence = effect_text(mean, interval, direction, log_scale)

    unsure = _unsure(xs, m, mean, sigma_prior if prior else None, prior_df, adrift)
    # a clear loss: the whole interval below the margin, within the noise's reach (not one gross run)
    clear_loss = prior and interval is not None and interval[1] < h0 and abs(mean) <= GROSS * sigma_prior
    if unsure and n >= max_pairs:  # noisy: no effect can be read from these pairs, none is recorded
        mean, interval = 0.0, None
    outcome, reason = _outcome(  # the cap's last word: a one-sided t-test at the cap's part of alpha
        n, evidence, unsure=unsure, clear_loss=clear_loss, llr=llr, bounds=bounds, min_pairs=min_pairs, max_pairs=max_pairs,
        significant=lambda: cap_alpha > 0 and df > 0 and se > 0 and (mean - h0) / se > t_quantile(1.0 - cap_alpha, df),
        short=lambda at_cap: _short_of(interval, h0, mean, None if at_cap else h1, direction, log_scale))
    return SequentialVerdict(outcome=outcome, estimate=mean, interval=interval, statistic=llr, bounds=bounds,
                   reason=reason, sigma=sigma, **common)


def _unsure(xs: list[float], kept: int, mean: float, sigma_prior: float | None, prior_df: float,
            adrift: bool) -> str:
    """Why these pairs cannot decide ('' when they can): the incumbent's runs
    are off its record (``adrift``), they disagree far beyond the noise
    (``disagree``), or too few stand behind the robust mean (``outvoted``:
    the left-out outliers are too many to set aside)."""
    if adrift:
        return "the incumbent's runs are far off its recorded score while the candidate's match it"
    if disagree(xs, sigma_prior, prior_df):
        return "they disagree far beyond the noise"
    if outvoted(len(xs), kept, mean, sigma_prior):
        return f"{len(xs) - kept} of {len(xs)} pairs are far off the rest, too many to set aside"
    return ""


def _check_test(alpha: float, beta: float, *, h0: float, h1: float, min_pairs: int, max_pairs: int,
                confidence: float) -> None:
    """ValueError on parameters no sequential test can run with."""
    _check_levels(alpha, beta)
    if not h1 > h0:
        raise ValueError(f"the target h1={h1!r} must exceed the margin h0={h0!r}")
    if not 1 <= min_pairs <= max_pairs:
        raise ValueError(f"need 1 <= min pairs <= max pairs, got {min_pairs} and {max_pairs}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _outcome(n: int, evidence: str, *, unsure: str, clear_loss: bool, llr: float, bounds: tuple[float, float],
             min_pairs: int, max_pairs: int, significant, short) -> tuple[str, str]:
    """(outcome, reason) after n pairs: pairs that cannot decide (``unsure``)
    run on and end `noisy` at the cap (a revert); otherwise Wald's bounds from
    ``min_pairs`` on, and at ``max_pairs`` the cap test (``significant()``).
    A revert of an estimate that points the right way says why
    (``short(at_cap)``)."""
    if unsure and n < max_pairs:
        return "continue", f"undecided after {n} pairs: {unsure}"
    if unsure:
        return "reject", (f"noisy: {unsure} after {n} pairs (pair cap reached); no effect can be read "
                          f"from them, reverted")
    if n >= min_pairs and llr >= bounds[1]:
        return "accept", f"kept: {evidence}, sequential test accepted after {n} pairs"
    if clear_loss and (n < min_pairs or llr > bounds[0]):
        return "reject", f"reverted: {evidence}, clearly worse after {n} pair{'s' if n > 1 else ''}"
    if n >= min_pairs and llr <= bounds[0]:
        why = short(False)
        return "reject", f"reverted: {evidence}, sequential test rejected after {n} pairs" + (f": {why}" if why else "")
    if n >= max_pairs:
        if significant():
            return "accept", f"kept: {evidence}, significant at the {n}-pair cap"
        why = short(True)
        return "reject", f"reverted: {evidence}, undecided after {n} pairs (pair cap reached)" + (f": {why}" if why else "")
    return "continue", f"undecided after {n} pairs: {evidence}"


def _short_of(interval, h0: float, mean: float, h1: float | None, direction: str, log_scale: bool) -> str:
    """Why an estimate that points the right way was still reverted ('' when
    it points the wrong way, or nothing more specific holds): the interval
    reaches zero (not distinguishable from noise), or it clears zero but not
    the margin h0, or (a sequential verdict, h1 given) the effect is under
    the target h1."""
    if mean <= 0:
        return ""
    if interval is None or interval[0] <= 0:
        return "not distinguishable from noise"
    if interval[0] <= h0:
        return f"within the margin ({effect_text(h0, None, direction, log_scale)})"
    if h1 is None:
        return "not significant at the cap test's level"
    if mean < h1:
        return f"smaller than the target ({effect_text(h1, None, direction, log_scale)})"
    return ""


def _deterministic(xs: list[float], min_pairs: int, *, rule: str, pairs: int, h0: float,
                   h1: float, log_scale: bool, direction: str = "max") -> SequentialVerdict:
    """Identical effects and no noise prior: no statistics needed, compare with the margin."""
    est = fmean(xs)
    shown = effect_text(est, None, direction, log_scale)
    if pairs < min_pairs:
        outcome, reason = "continue", f"undecided after {pairs} pairs: {shown} (identical so far)"
    elif est > h0:
        outcome, reason = "accept", f"kept: {shown}, deterministic metric (identical pairs), above the margin"
    else:
        outcome, reason = "reject", f"reverted: {shown}, deterministic metric (identical pairs), not above the margin"
    return SequentialVerdict(rule=rule, outcome=outcome, pairs=pairs, estimate=est, interval=(est, est),
                   statistic=None, bounds=None, reason=reason, h0=h0, h1=h1, sigma=0.0,
                   log_scale=log_scale)
