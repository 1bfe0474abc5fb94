"""The statistics of keep decisions: paired effects, a robust sequential test, noise.

Everything here is pure (numbers in, numbers out, no I/O) so the decision rule
that ``iterate`` applies is the very code ``bench/decision_quality.py`` measures.

Scale. A *pair* is one run of the incumbent and one of the candidate, back to
back. Its *effect* is signed so that positive means better in the configured
direction: the log-ratio of the two scores when every score is positive (so a
+2% change is about 0.0198 whatever the metric's units), the plain difference
otherwise. ``display`` turns an effect back into percent or metric units.

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
* A metric with no measurable noise (identical effects, no noise prior) is
  decided by plain comparison once ``min_pairs`` are in.
"""

from __future__ import annotations

import functools
import hashlib
import math
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Optional, Sequence

from .change import effect_text

DIRECTIONS = ("max", "min")
OUTCOMES = ("accept", "reject", "continue")

# 1 / Phi^-1(3/4): turns a median absolute deviation into a normal sigma.
MAD_TO_SIGMA = 1.482602218505602
# Effects this many robust sigmas from their median are pulled back to it...
CLIP = 2.5
# ...and beyond this many they are gross outliers (a 3x slow run) and are left out.
GROSS = 5.0
# alpha is split between the sequential part (Wald's bounds) and the cap test.
# The cap test gets this share of alpha at least and at most (see alpha_split).
MIN_SHARE = 0.1
MAX_SHARE = 0.7
# Noise calibration sets aside a run this many leave-one-out sds away.
CALIBRATION_OUTLIER = 10.0
# Effects that differ by less than this (relative) count as identical.
_SAME = 1e-12


# --------------------------------------------------------------------------
# Effects, scales and margins
# --------------------------------------------------------------------------

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


def hypotheses(*, margin: float, target_percent: float, incumbent: float,
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
    digest = hashlib.sha256(f"ratchet-seed\0{run_id}\0{iteration}\0{pair}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def incumbent_first(pair: int) -> bool:
    """Run order within pair ``pair`` (1-based): AB, BA, AB... so drift cancels."""
    if pair < 1:
        raise ValueError(f"pairs are numbered from 1, got {pair}")
    return pair % 2 == 1


# --------------------------------------------------------------------------
# Student t (stdlib has only the normal distribution)
# --------------------------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 (non-integer allowed)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` > 0 degrees of freedom."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {p!r}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    if df > 1e7:
        return statistics.NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _z(p: float) -> float:
    return statistics.NormalDist().inv_cdf(p)


# --------------------------------------------------------------------------
# Robust summaries
# --------------------------------------------------------------------------

def _stdev(values: Sequence[float]) -> float:
    """Sample standard deviation in floats (``statistics.stdev`` is exact but slow)."""
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


def _mad_sigma(values: Sequence[float]) -> float:
    med = _median(values)
    return MAD_TO_SIGMA * _median([abs(v - med) for v in values])


def _robust_scale(xs: Sequence[float], sigma_prior: Optional[float], prior_df: float) -> float:
    """The sigma outliers are judged against: the MAD pooled with the noise prior by df.

    0 without a prior: with no idea of the noise, no effect can be called an
    outlier (a MAD of three effects alone could call anything one).
    """
    if not _has_prior(sigma_prior, prior_df):
        return 0.0
    return math.sqrt(_pooled_var(_mad_sigma(xs) ** 2, len(xs), sigma_prior, prior_df))


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
    med = _median(xs)
    out = []
    for x in xs:
        r = (x - med) / scale
        if abs(r) > gross:
            continue
        if abs(r) > clip:
            r = math.copysign(clip, r)
        out.append(med + r * scale)
    return out


def _disagree(xs: Sequence[float], sigma_prior: Optional[float], prior_df: float,
              gross: float = GROSS) -> bool:
    """True when the effects' own spread (MAD) is ``gross`` times the noise or more.

    Then half of them or more are outliers (one of two, two of four...) and
    no median can say which half to believe; or the candidate made the
    benchmark far noisier. Either way the pairs cannot decide.
    """
    return len(xs) >= 2 and _has_prior(sigma_prior, prior_df) and _mad_sigma(xs) > gross * sigma_prior


def _set_aside_outlier(xs: Sequence[float], k: float = CALIBRATION_OUTLIER) -> list[float]:
    """Calibration runs without their one far outlier, if there is one (leave-one-out test).

    The run farthest from the median is set aside when it lies more than k
    predictive sds from the mean of the others. k = 10 almost never touches
    normal noise (k = 4 set aside a genuine run in 14% of five-run samples,
    biasing the noise low) yet catches a 3x slow run at noise up to ~10%.
    Needs 4 runs; one run at most, since a second outlier would hide the first
    anyway. A MAD of five runs is too unstable for this job: three close runs
    would make every other run look like an outlier.
    """
    if len(xs) < 4:
        return list(xs)
    med = _median(xs)
    i = max(range(len(xs)), key=lambda j: abs(xs[j] - med))
    others = list(xs[:i]) + list(xs[i + 1:])
    sd = _stdev(others)
    if sd > 0 and abs(xs[i] - statistics.fmean(others)) > k * sd * math.sqrt(1.0 + 1.0 / len(others)):
        return others
    return list(xs)


def _all_same(values: Sequence[float]) -> bool:
    top = max(abs(v) for v in values)
    return max(values) - min(values) <= _SAME * max(1.0, top)


def _has_prior(sigma_prior: Optional[float], prior_df: float) -> bool:
    return sigma_prior is not None and sigma_prior > 0 and prior_df > 0


def _check_effects(effects: Sequence[float]) -> list[float]:
    out = [float(e) for e in effects]
    if not all(math.isfinite(e) for e in out):
        raise ValueError("effects must be finite numbers")
    return out


# --------------------------------------------------------------------------
# Noise calibration
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Noise:
    """What ratchet knows about the benchmark's noise.

    ``sigma_pair`` is the standard deviation of one pair's effect (on the
    effect scale: log units or metric units) and ``df`` the degrees of freedom
    behind it; the sequential test uses them as its variance prior. The rest
    describes the calibration runs for people: ``cv`` (sd / |mean| of the raw
    scores, None when the mean is 0), ``spread`` (max - min, metric units),
    ``robust_sigma`` (1.4826 * MAD of one run on the effect scale).
    """

    sigma_pair: float
    df: float
    log_scale: bool
    samples: int
    outliers: int
    cv: Optional[float]
    spread: float
    robust_sigma: float
    pairs_seen: int = 0

    def to_json(self) -> dict:
        """JSON-able numbers only (persist under a key of state.json)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Noise":
        """Inverse of ``to_json``; ValueError on a malformed object."""
        try:
            noise = cls(sigma_pair=float(data["sigma_pair"]), df=float(data["df"]),
                        log_scale=bool(data["log_scale"]), samples=int(data["samples"]),
                        outliers=int(data.get("outliers", 0)),
                        cv=None if data["cv"] is None else float(data["cv"]),
                        spread=float(data["spread"]), robust_sigma=float(data["robust_sigma"]),
                        pairs_seen=int(data.get("pairs_seen", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed noise estimate: {exc}") from None
        if not (math.isfinite(noise.sigma_pair) and noise.sigma_pair >= 0 and noise.df >= 0):
            raise ValueError("malformed noise estimate: sigma_pair and df must be non-negative")
        return noise

    @property
    def deterministic(self) -> bool:
        return self.sigma_pair == 0.0


def noise_estimate(samples: Sequence[float], log_scale: bool) -> Noise:
    """Noise of repeated runs of one commit (calibration, e.g. 5 runs of the start).

    One run's sigma is the standard deviation of the (log) scores, after one
    far outlier (``CALIBRATION_OUTLIER`` leave-one-out sds away) is set aside
    and counted in ``outliers``, so one slow run among five does not inflate
    it tenfold; ``df`` is the runs kept minus one. A pair's sigma is sqrt(2)
    times that (two independent runs). ``cv`` and ``spread`` describe all the
    runs. ValueError with fewer than 2 finite scores, or a non-positive score
    on the log scale.
    """
    raw = [float(s) for s in samples]
    if len(raw) < 2 or not all(math.isfinite(s) for s in raw):
        raise ValueError("noise calibration needs at least 2 finite scores")
    if log_scale and min(raw) <= 0:
        raise ValueError("log-scale noise needs positive scores")
    xs = [math.log(s) for s in raw] if log_scale else raw
    kept = _set_aside_outlier(xs)
    mean = statistics.fmean(raw)
    return Noise(sigma_pair=math.sqrt(2.0) * _stdev(kept), df=float(len(kept) - 1),
                 log_scale=log_scale, samples=len(xs), outliers=len(xs) - len(kept),
                 cv=_stdev(raw) / abs(mean) if mean else None,
                 spread=max(raw) - min(raw), robust_sigma=_mad_sigma(xs))


def update_noise(noise: Noise, effects: Sequence[float], *, max_df: float = 50.0) -> Noise:
    """The noise estimate after one more iteration's pair effects.

    Pools the spread of the effects around their own mean (the candidate's true
    effect cancels) with the old estimate, weighted by degrees of freedom;
    outliers are tamed exactly as in the test (``robust_effects``), and two
    effects that disagree far beyond the noise teach nothing (which one?). ``df`` saturates
    at ``max_df`` so the estimate keeps following a machine whose noise
    changes. Fewer than 2 effects: unchanged.
    """
    xs = _check_effects(effects)
    if len(xs) < 2 or (len(xs) == 2 and _disagree(xs, noise.sigma_pair, noise.df)):
        return noise
    ws = robust_effects(xs, _robust_scale(xs, noise.sigma_pair, noise.df))
    mean = statistics.fmean(ws)
    ss = sum((w - mean) ** 2 for w in ws)
    total_df = noise.df + len(ws) - 1
    var = (noise.df * noise.sigma_pair ** 2 + ss) / total_df
    return replace(noise, sigma_pair=math.sqrt(var), df=min(total_df, max_df),
                   pairs_seen=noise.pairs_seen + len(xs))


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
    return (_z(1 - cap_alpha) + _z(1 - beta)) * sigma_pair / math.sqrt(max_pairs)


# --------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class PairedDecision:
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
    interval: Optional[tuple[float, float]]
    statistic: Optional[float]
    bounds: Optional[tuple[float, float]]
    reason: str
    h0: float
    h1: Optional[float]
    sigma: Optional[float]
    log_scale: bool

    @property
    def keep(self) -> bool:
        return self.outcome == "accept"

    @property
    def decided(self) -> bool:
        return self.outcome != "continue"

    def to_json(self) -> dict:
        """JSON-able evidence for results.jsonl (tuples become lists)."""
        data = asdict(self)
        for key in ("interval", "bounds"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data


def _check_levels(alpha: float, beta: float) -> None:
    if not (0 < alpha < 1 and 0 < beta < 1 and alpha + beta < 1):
        raise ValueError(f"need 0 < alpha, beta and alpha + beta < 1, got alpha={alpha!r} beta={beta!r}")


def _pooled_var(sample_var: float, n: int, sigma_prior: Optional[float], prior_df: float) -> float:
    """Prior variance and a sample variance with n-1 df, pooled by degrees of freedom."""
    prior = _has_prior(sigma_prior, prior_df)
    num = (prior_df * sigma_prior ** 2 if prior else 0.0) + (n - 1) * sample_var
    den = (prior_df if prior else 0.0) + (n - 1)
    return num / den if den > 0 else 0.0


def _location(effects: list[float], sigma_prior: Optional[float],
              prior_df: float) -> tuple[int, float, float, float]:
    """How many robust effects, their mean, the prior-pooled sum of squares V, and its df.

    V = prior_df * sigma_prior^2 + sum((w - mean)^2) is the scale of the
    inverse-gamma posterior of the variance, shared by the test, the interval
    and the cap test.
    """
    ws = robust_effects(effects, _robust_scale(effects, sigma_prior, prior_df))
    mean = statistics.fmean(ws)
    prior = _has_prior(sigma_prior, prior_df)
    v = (prior_df * sigma_prior ** 2 if prior else 0.0) + sum((w - mean) ** 2 for w in ws)
    df = (prior_df if prior else 0.0) + len(ws) - 1
    return len(ws), mean, v, df


def _interval(mean: float, se: float, df: float, confidence: float) -> Optional[tuple[float, float]]:
    if df <= 0:
        return None
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    return mean - half, mean + half


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


def alpha_split(alpha: float, beta: float, *, sigma_pair: Optional[float], h0: float, h1: float,
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


def sprt_decide(effects: Sequence[float], *, h0: float, h1: float, alpha: float = 0.05,
                beta: float = 0.2, min_pairs: int = 2, max_pairs: int = 10,
                sigma_prior: Optional[float] = None, prior_df: float = 4.0,
                final_test: bool = True, log_scale: bool = True,
                confidence: float = 0.95, direction: str = "max") -> PairedDecision:
    """Keep ("accept"), revert ("reject") or run another pair ("continue").

    ``effects``: the pair effects so far (``pair_effect``), in run order.
    H0: mean effect = h0 (the margin), H1: mean effect >= h1 > h0 (the target).
    ``sigma_prior``/``prior_df``: the noise estimate (``Noise.sigma_pair``,
    ``Noise.df``); None or 0 means unknown (then identical effects count as a
    deterministic metric, and nothing counts as an outlier). Never decides
    before ``min_pairs``, nor while the pairs disagree far beyond the noise
    (``_disagree``: half of them or more look like outliers).
    At ``max_pairs`` always decides: keep only if a one-sided t-test at the
    cap's part of alpha (``alpha_split``) says effect > h0. ``final_test=False``
    drops that last word (an undecided test then reverts, and Wald's bounds
    get all of alpha). ``interval`` is two-sided at ``confidence``.
    ``direction`` only words the reason (the metric's own change, change.py).
    ValueError on inconsistent parameters or non-finite effects.
    """
    xs = _check_effects(effects)
    _check_levels(alpha, beta)
    if not h1 > h0:
        raise ValueError(f"the target h1={h1!r} must exceed the margin h0={h0!r}")
    if not 1 <= min_pairs <= max_pairs:
        raise ValueError(f"need 1 <= min pairs <= max pairs, got {min_pairs} and {max_pairs}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    n = len(xs)
    seq_alpha, cap_alpha = alpha, 0.0
    if final_test:
        seq_alpha, cap_alpha = alpha_split(alpha, beta, sigma_pair=sigma_prior if prior_df > 0 else None,
                                           h0=h0, h1=h1, min_pairs=min_pairs, max_pairs=max_pairs)
    bounds = wald_bounds(seq_alpha, beta)
    common = dict(rule="paired", pairs=n, h0=h0, h1=h1, log_scale=log_scale)
    if n == 0:
        return PairedDecision(outcome="continue", estimate=0.0, interval=None, statistic=0.0, bounds=bounds,
                       reason="no pairs yet", sigma=sigma_prior, **common)
    prior = _has_prior(sigma_prior, prior_df)
    if not prior and _all_same(xs):
        return _deterministic(xs, min_pairs, direction=direction, **common)

    m, mean, v, df = _location(xs, sigma_prior, prior_df)
    llr = mixture_llr(mean, v, m, prior_df if prior else 0.0, h0, h1)
    sigma = math.sqrt(v / df) if df > 0 else 0.0
    se = sigma / math.sqrt(m)
    interval = _interval(mean, se, df, confidence)
    evidence = effect_text(mean, interval, direction, log_scale)

    split = _disagree(xs, sigma_prior, prior_df)
    if split and n < max_pairs:
        outcome, reason = "continue", f"undecided after {n} pairs: they disagree far beyond the noise"
    elif split:
        outcome, reason = "reject", f"reverted: {evidence}, the {n} pairs disagree far beyond the noise"
    elif n >= min_pairs and llr >= bounds[1]:
        outcome, reason = "accept", f"kept: {evidence}, sequential test accepted after {n} pairs"
    elif n >= min_pairs and llr <= bounds[0]:
        outcome, reason = "reject", f"reverted: {evidence}, sequential test rejected after {n} pairs"
    elif n >= max_pairs:
        significant = (cap_alpha > 0 and df > 0 and se > 0
                       and (mean - h0) / se > t_quantile(1.0 - cap_alpha, df))
        if significant:
            outcome, reason = "accept", f"kept: {evidence}, significant at the {n}-pair cap"
        else:
            outcome, reason = "reject", f"reverted: {evidence}, undecided after {n} pairs"
    else:
        outcome, reason = "continue", f"undecided after {n} pairs: {evidence}"
    return PairedDecision(outcome=outcome, estimate=mean, interval=interval, statistic=llr, bounds=bounds,
                   reason=reason, sigma=sigma, **common)


def _deterministic(xs: list[float], min_pairs: int, *, rule: str, pairs: int, h0: float,
                   h1: float, log_scale: bool, direction: str = "max") -> PairedDecision:
    """Identical effects and no noise prior: no statistics needed, compare with the margin."""
    est = statistics.fmean(xs)
    shown = effect_text(est, None, direction, log_scale)
    if pairs < min_pairs:
        outcome, reason = "continue", f"undecided after {pairs} pairs: {shown} (identical so far)"
    elif est > h0:
        outcome, reason = "accept", f"kept: {shown}, deterministic metric (identical pairs), above the margin"
    else:
        outcome, reason = "reject", f"reverted: {shown}, deterministic metric (identical pairs), not above the margin"
    return PairedDecision(rule=rule, outcome=outcome, pairs=pairs, estimate=est, interval=(est, est),
                   statistic=None, bounds=None, reason=reason, h0=h0, h1=h1, sigma=0.0,
                   log_scale=log_scale)


@dataclass(frozen=True)
class Gain:
    """A paired estimate with its confidence interval, on the effect scale."""

    estimate: float
    interval: Optional[tuple[float, float]]
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
                  sigma_prior: Optional[float] = None, prior_df: float = 0.0) -> Gain:
    """Paired gain of the best over the start (``verify``): robust mean and t-interval.

    ``effects``: pair effects with the start commit as incumbent and the best
    as candidate. The noise estimate may be pooled in (``sigma_prior``,
    ``prior_df``); without it and with one pair the interval is None.
    ValueError when there are no effects or ``confidence`` is not in (0, 1).
    """
    xs = _check_effects(effects)
    if not xs:
        raise ValueError("a gain needs at least one pair")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not _has_prior(sigma_prior, prior_df) and _all_same(xs):
        est = statistics.fmean(xs)
        interval = (est, est) if len(xs) > 1 else None
        return Gain(est, interval, len(xs), log_scale, confidence)
    m, mean, v, df = _location(xs, sigma_prior, prior_df)
    se = math.sqrt(v / df / m) if df > 0 else 0.0
    return Gain(mean, _interval(mean, se, df, confidence), len(xs), log_scale, confidence)
