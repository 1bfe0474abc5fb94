#!/usr/bin/env python3
"""Why very heavy tails cost the paired rule more runs per decision (issue 16, point 6).

bench/decision_quality.py's `tails` machine (time * exp(CV * t(2)), clamped at
e^5) costs ratchet's default rule about 7.8 runs per decision at 1% noise (goal:
at most 7). This script measures the candidate remedies side by side on the
rates cells of that bench (a fresh machine per decision, the noise prior from
calibration runs of the start commit, then sprt_decide pair by pair, exactly
decision_quality.decide_paired), so each claim in the analysis below has a
figure behind it. Only the variants' calibration (or, for the `clip` rows, the
Huber clip of the robust location) differs from the product; everything else
is ratchet's real decision code.

Variants (the noise prior each decision starts from):
  current       the product at its default 5 runs: noise.noise_estimate, the
                SD of the log scores after one far outlier (10 leave-one-out
                sds) is set aside, df 4
  shamos        a robust scale of 5 runs: the median of all 10 pairwise
                distances |x_i - x_j| over Phi^-1(3/4), made consistent at the
                normal (E s^2 = 2 sigma^2, factor found by simulation) with
                its effective df (Var log s^2 matched to a chi-square's: ~3 of 4)
  shamos-df4    the same claiming df 4 (overstates what 5 runs know)
  sd-10, sd-20  the SD estimator above with 10 or 20 runs (the product before
                noise.ROBUST_FROM)
  calib-10/-20  the product with --calibration-runs 10 or 20: noise.near_scale,
                the median distance of runs at most noise.NEAR = 3 apart
  succ-10       the same scale over back-to-back runs only (lag 1)
  shamos-10     the same scale over all pairs of 10 runs (lag 9)
  true-scale    an oracle: the pair effects' true robust sigma (1.4826 MAD of
                many simulated pairs), df 4; no calibration can beat it by much
  clip-1.5      current calibration, robust location clipped at 1.5 robust
                sigmas instead of 2.5 (the sum of squares of clipped effects as now)
  clip-1.5-sw   the same with the Huber sandwich variance (the sum of squares
                divided by the share of unclipped effects squared), the honest
                variance of a clipped mean

Reading (`python3 bench/tails_runs.py --reps 600 --jobs 2`): 5 runs' SD is not
biased high in the median (about 1.35 x sqrt(2) CV while the pair effects' own
robust sigma is 1.42 x sqrt(2) CV: the difference of two t(2) runs has a
wider core than one run), but its spread is wide (a 5x-CV run lands among 5
runs about one time in five), and the runs a decision needs grow steeply
with the prior sigma; the oracle prior still costs ~6.9 runs. The SD of an
infinite-variance noise does not settle with more runs (sd-20 is worse than
sd-10), and on the bimodal machine more runs straddle a state switch, which
a pair (two back-to-back runs) rarely does (sd-10: 8.6 runs). A robust scale
of 5 runs trims the upper tail but loses efficiency on normal-core noise; a
tighter clip helps only while its variance is understated (clip-1.5 vs -sw).
What works is the scale of near-in-time differences over 10 runs (calib-10:
about 6.7 runs on tails, 5.6 on bimodal, no cell worse than 5 runs' SD) at
the price of 5 more one-off calibration runs.

Usage: python3 bench/tails_runs.py [--quick] [--reps N] [--jobs N] [--seed N]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from multiprocessing import Pool

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import decision_quality as dq  # noqa: E402  (puts the scripts folder on sys.path)

from ratchetlib.core import record  # noqa: E402
from ratchetlib.core import robust, sprt  # noqa: E402
from ratchetlib.core.noise import _set_aside_outlier, constants_from_squares, near_raw, noise_estimate  # noqa: E402

KINDS = ("tails", "normal", "heavy", "bimodal")
CV = 0.01
SIM = 40000  # draws behind the consistency factors and the oracle scales


# variant -> (calibration runs, lag of the robust scale: None for the product's noise_estimate, 0 for
# the SD after the outlier set-aside (the product below ROBUST_FROM runs), n - 1 for all pairs)
SCALES = {"current": (5, None), "shamos": (5, 4), "shamos-df4": (5, 4), "sd-10": (10, 0), "calib-10": (10, None),
          "succ-10": (10, 1), "shamos-10": (10, 9), "sd-20": (20, 0), "calib-20": (20, None), "true-scale": (5, None),
          "clip-1.5": (5, None), "clip-1.5-sw": (5, None)}
VARIANTS = tuple(SCALES)


def scale_constants(n: int, near: int, seed: int) -> tuple[float, float]:
    """(factor, df) making noise.near_raw (lag `near`; n - 1 is Shamos's all-pairs scale) of n
    normal runs consistent (E s^2 = 2 sigma^2), with its effective df (noise.constants_from_squares)."""
    rng = random.Random(seed)
    return constants_from_squares([near_raw([rng.gauss(0.0, 1.0) for _ in range(n)], near) ** 2 / 2.0
                                   for _ in range(SIM)])


def true_pair_scale(kind: str, seed: int) -> float:
    """1.4826 MAD of many zero-effect pair effects on this machine (the oracle prior)."""
    machine = dq.Machine(CV, kind, random.Random(seed))
    xs = [dq.one_pair(machine, 1.0, 1.0, p % 2 + 1) for p in range(SIM)]
    return robust.mad_sigma(xs)


def calibrate(variant: str, machine, consts: dict, oracle: float):
    """The noise prior a decision starts from under `variant`."""
    runs, near = SCALES[variant]
    scores = [machine.run(1.0) for _ in range(runs)]
    noise = noise_estimate(scores, True)
    logs = [math.log(s) for s in scores]
    if near == 0:
        kept = _set_aside_outlier(logs)
        noise = record.replace(noise, sigma_pair=math.sqrt(2.0) * robust.stdev(kept), df=len(kept) - 1.0)
    elif near:
        factor, df = consts[(runs, near)]
        noise = record.replace(noise, sigma_pair=factor * near_raw(logs, near),
                                    df=4.0 if variant == "shamos-df4" else df)
    elif variant == "true-scale":
        noise = record.replace(noise, sigma_pair=oracle, df=float(runs - 1))
    return noise


def clipped_location(clip: float, sandwich: bool):
    """robust.robust_location with another Huber clip (and, with `sandwich`,
    the clipped mean's honest variance: the sum of squares over p^2, p the
    share of kept effects within the clip, at least 1/2)."""
    def location(effects, sigma_prior, prior_df):
        scale = robust.robust_scale(effects, sigma_prior, prior_df)
        ws = robust.robust_effects(effects, scale, clip)
        mean = statistics.fmean(ws)
        ss = sum((w - mean) ** 2 for w in ws)
        if sandwich and len(effects) >= 3 and scale > 0:
            med = robust.median(effects)
            inside = sum(abs(x - med) <= clip * scale for x in effects)
            ss /= max(inside / len(ws), 0.5) ** 2
        prior = robust.has_prior(sigma_prior, prior_df)
        v = (prior_df * sigma_prior ** 2 if prior else 0.0) + ss
        return len(ws), mean, v, (prior_df if prior else 0.0) + len(ws) - 1
    return location


def cell_task(args):
    """(kind, variant, effect) -> (keep rate, mean runs) over `reps` fresh decisions."""
    kind, variant, effect, reps, seed, consts, oracle = args
    # this worker process only, and put back for the next task it runs
    sprt.robust_location = (clipped_location(1.5, variant.endswith("-sw")) if variant.startswith("clip")
                            else robust.robust_location)
    rng = random.Random(seed)
    cand = dq.time_of(math.log1p(effect / 100.0))
    keeps = runs = 0
    for _ in range(reps):
        machine = dq.Machine(CV, kind, rng)
        noise = calibrate(variant, machine, consts, oracle)
        machine.advance(dq.STALE_ITERATIONS * 4)
        verdict, used, _ = dq.decide_paired(machine, 1.0, cand, noise)
        keeps += verdict.keep
        runs += used
    return (kind, variant, effect), (keeps / reps, runs / reps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 decisions per cell")
    parser.add_argument("--reps", type=int, default=1000, help="decisions per (machine, variant, effect)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=20261207)
    args = parser.parse_args()
    reps = 150 if args.quick else args.reps
    began = time.time()
    consts = {(n, near): scale_constants(n, near, args.seed) for n, near in set(SCALES.values()) if near}
    oracle = {kind: true_pair_scale(kind, args.seed + 1) for kind in KINDS}
    jobs = [(kind, variant, effect, reps, args.seed + 101 * k + 7 * e, consts, oracle[kind])
            for k, kind in enumerate(KINDS) for variant in VARIANTS for e, effect in enumerate(dq.EFFECTS)]
    with Pool(max(1, args.jobs)) as pool:
        cells = dict(pool.map(cell_task, jobs, chunksize=1))
    print(f"runs per decision by noise prior, CV {CV:.0%}, {reps} decisions per cell (the same seeds for "
          f"every variant); shamos factor, effective df: "
          + ", ".join(f"{n} runs lag {k}: {f:.4f}, {df:.2f}" for (n, k), (f, df) in sorted(consts.items())))
    print("true pair scale (1.4826 MAD of pair effects, x sqrt(2) CV): "
          + ", ".join(f"{k} {oracle[k] / (math.sqrt(2) * CV):.2f}" for k in KINDS))
    for kind in KINDS:
        print(f"\n== {dq.describe(CV, kind)} ==")
        print(f"{'variant':<12} {'runs/dec':>8} {'keep@0':>7} {'miss@+2%':>8} {'miss@+5%':>8}   runs at "
              + " ".join(f"{e:+g}%" for e in dq.EFFECTS))
        for variant in VARIANTS:
            got = {e: cells[(kind, variant, e)] for e in dq.EFFECTS}
            mean_runs = statistics.fmean(r for _, r in got.values())
            print(f"{variant:<12} {mean_runs:>8.2f} {got[0.0][0]:>7.1%} {1 - got[2.0][0]:>8.1%} "
                  f"{1 - got[5.0][0]:>8.1%}   " + " ".join(f"{got[e][1]:.1f}" for e in dq.EFFECTS))
    se = math.sqrt(0.03 * 0.97 / reps)
    print(f"\nkeep@0 carries a binomial se of about {se:.1%} near 3%; {time.time() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
