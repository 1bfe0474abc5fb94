"""The benchmark's noise model: what calibration (repeated runs of the start
commit) says about one pair's spread, and how each iteration's pairs refine
it. The sequential test (sprt.py) takes it as its variance prior; its
on-disk form is `Noise.to_json` under state.json's "noise" (FORMATS.md). Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import record
from .robust import check_effects, disagree, fmean, mad_sigma, median, robust_effects, robust_scale, stdev

# Noise calibration sets aside a run this many leave-one-out sds away.
CALIBRATION_OUTLIER = 10.0
# From this many calibration runs on, a pair's sigma is the robust scale of
# near-in-time differences (``near_scale``), not the SD of the runs.
ROBUST_FROM = 10
# ...of runs at most this many apart (a pair is two back-to-back runs).
NEAR = 3
# Phi^-1(3/4): the median of |N(0, 1)|.
_MEDIAN_ABS_NORMAL = 0.6744897501960817
# n -> (consistency factor, effective df) of near_scale for n normal runs: the
# factor makes E[sigma_pair^2] = 2 sigma^2, the df is a chi-square's with the
# same Var log sigma_pair^2 (60,000 simulated samples each;
# tests/test_noise_calibration re-derives two). Beyond the table: 1/sqrt(1 + 1.92/n) and 0.56 (n - 1).
_NEAR_CONSTANTS = {10: (0.9087, 5.77), 11: (0.9154, 6.20), 12: (0.9235, 6.82), 13: (0.9303, 7.26),
                   14: (0.9342, 7.87), 15: (0.9378, 8.28), 16: (0.9428, 8.92), 17: (0.9463, 9.43),
                   18: (0.9501, 10.03), 19: (0.9520, 10.44), 20: (0.9553, 11.19), 21: (0.9555, 11.54),
                   22: (0.9593, 12.14), 23: (0.9601, 12.46), 24: (0.9636, 13.14), 25: (0.9630, 13.67),
                   26: (0.9650, 14.29), 27: (0.9656, 14.78), 28: (0.9663, 15.06), 29: (0.9686, 15.79),
                   30: (0.9694, 16.32)}


class Noise(record.Record):
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
    cv: float | None
    spread: float
    robust_sigma: float
    pairs_seen: int = 0

    def to_json(self) -> dict:
        """JSON-able numbers only (persist under a key of state.json)."""
        return record.asdict(self)

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
    med = median(xs)
    i = max(range(len(xs)), key=lambda j: abs(xs[j] - med))
    others = list(xs[:i]) + list(xs[i + 1:])
    sd = stdev(others)
    if sd > 0 and abs(xs[i] - fmean(others)) > k * sd * math.sqrt(1.0 + 1.0 / len(others)):
        return others
    return list(xs)


def near_differences(xs: Sequence[float], near: int = NEAR) -> list[float]:
    """|x_j - x_i| for every two runs at most ``near`` apart in run order."""
    return [abs(xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, min(len(xs), i + near + 1))]


def near_constants(n: int) -> tuple[float, float]:
    """(consistency factor, effective df) of ``near_scale`` over n runs (n >= ROBUST_FROM)."""
    if n in _NEAR_CONSTANTS:
        return _NEAR_CONSTANTS[n]
    return 1.0 / math.sqrt(1.0 + 1.92 / n), 0.56 * (n - 1)


def near_raw(xs: Sequence[float], near: int = NEAR) -> float:
    """The median distance of runs at most ``near`` apart, over Phi^-1(3/4):
    ``near_scale`` before its consistency factor."""
    return median(near_differences(xs, near)) / _MEDIAN_ABS_NORMAL


def constants_from_squares(squares: Sequence[float]) -> tuple[float, float]:
    """(consistency factor, effective df) from simulated squared scales of
    normal runs with sigma_pair^2 = 1 (a scale^2 / 2 each): the factor makes
    their mean 1, the df is a chi-square's whose log has the same variance
    (trigamma(df / 2) = Var log). How ``_NEAR_CONSTANTS`` was made; the test
    that re-derives it and bench/tails_runs use this too."""
    mean = fmean(squares)
    import statistics  # the table's derivation only (tests, bench): its import loads fractions and decimal
    var_log = statistics.pvariance([math.log(s / mean) for s in squares if s > 0])
    lo, hi = 0.1, 400.0
    for _ in range(80):  # trigamma is decreasing
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if _trigamma(mid / 2.0) > var_log else (lo, mid)
    return 1.0 / math.sqrt(mean), (lo + hi) / 2.0


def _trigamma(z: float) -> float:
    out = 0.0
    while z < 6.0:
        out, z = out + 1.0 / (z * z), z + 1.0
    return out + 1.0 / z + 1.0 / (2 * z * z) + 1.0 / (6 * z ** 3) - 1.0 / (30 * z ** 5)


def near_scale(xs: Sequence[float]) -> float:
    """A pair's sigma from repeated runs of one commit: the median distance of
    runs at most ``NEAR`` apart, over Phi^-1(3/4), times the consistency factor.

    Why not the SD of the runs, once there are enough of them: a pair is the
    difference of two back-to-back runs, so this measures exactly what a pair
    at zero effect sees. A machine that switches state (turbo, a noisy
    neighbour) or drifts between distant runs inflates the SD of the runs but
    barely a pair; and with very heavy tails (one run in 25 at 5x the usual
    spread) the SD grows with the number of runs while a median does not.
    The price is efficiency at normal noise (about 0.6 of the SD's df), which
    is why fewer than ``ROBUST_FROM`` runs keep the SD.
    """
    factor, _ = near_constants(len(xs))
    return factor * near_raw(xs)


def noise_estimate(samples: Sequence[float], log_scale: bool) -> Noise:
    """Noise of repeated runs of one commit (calibration, e.g. 10 runs of the start).

    One run's sigma is the standard deviation of the (log) scores, after one
    far outlier (``CALIBRATION_OUTLIER`` leave-one-out sds away) is set aside
    and counted in ``outliers``, so one slow run among five does not inflate
    it tenfold; ``df`` is the runs kept minus one. A pair's sigma is sqrt(2)
    times that (two independent runs). ``cv`` and ``spread`` describe all the
    runs. From ``ROBUST_FROM`` runs on, the pair's sigma is ``near_scale``
    instead, with its effective df (unless half the near differences or
    more are 0, as with a quantized metric: then the SD as above);
    ``outliers`` still counts the far run the SD would set aside.
    ValueError with fewer than 2 finite scores, or a non-positive score on
    the log scale.
    """
    raw = [float(s) for s in samples]
    if len(raw) < 2 or not all(math.isfinite(s) for s in raw):
        raise ValueError("noise calibration needs at least 2 finite scores")
    if log_scale and min(raw) <= 0:
        raise ValueError("log-scale noise needs positive scores")
    xs = [math.log(s) for s in raw] if log_scale else raw
    kept = _set_aside_outlier(xs)
    mean = fmean(raw)
    sigma_pair, df = math.sqrt(2.0) * stdev(kept), float(len(kept) - 1)
    near = near_scale(xs) if len(xs) >= ROBUST_FROM else 0.0
    if near > 0:
        sigma_pair, df = near, near_constants(len(xs))[1]
    return Noise(sigma_pair=sigma_pair, df=df,
                 log_scale=log_scale, samples=len(xs), outliers=len(xs) - len(kept),
                 cv=stdev(raw) / abs(mean) if mean else None,
                 spread=max(raw) - min(raw), robust_sigma=mad_sigma(xs))


def update_noise(noise: Noise, effects: Sequence[float], *, max_df: float = 50.0) -> Noise:
    """The noise estimate after one more iteration's pair effects.

    Pools the spread of the effects around their own mean (the candidate's true
    effect cancels) with the old estimate, weighted by degrees of freedom;
    outliers are tamed exactly as in the test (``robust_effects``), and two
    effects that disagree far beyond the noise teach nothing (which one?). ``df`` saturates
    at ``max_df`` so the estimate keeps following a machine whose noise
    changes. Fewer than 2 effects: unchanged.
    """
    xs = check_effects(effects)
    if len(xs) < 2 or (len(xs) == 2 and disagree(xs, noise.sigma_pair, noise.df)):
        return noise
    ws = robust_effects(xs, robust_scale(xs, noise.sigma_pair, noise.df))
    mean = fmean(ws)
    ss = sum((w - mean) ** 2 for w in ws)
    total_df = noise.df + len(ws) - 1
    var = (noise.df * noise.sigma_pair ** 2 + ss) / total_df
    return record.replace(noise, sigma_pair=math.sqrt(var), df=min(total_df, max_df),
                          pairs_seen=noise.pairs_seen + len(xs))
