"""Unit tests of the statistics (core: effects, robust, noise, sprt, gain, student_t): effects, margins,
noise, the sequential test, gain, mean rule."""

import json
import math
import random
import statistics
import unittest

from ratchetlib.core.effects import (display, effect_hypotheses, incumbent_first, margin_effect, pair_effect,
                                     pair_seed, use_log_scale)
from ratchetlib.core.gain import gain_interval
from ratchetlib.core.noise import Noise, noise_estimate, update_noise
from ratchetlib.core.robust import fmean, robust_effects
from ratchetlib.core.sprt import (H1_MIXTURE, MAX_SHARE, MIN_SHARE, alpha_split, cap_probability, detectable_effect,
                                  mixture_llr, sprt_decide, wald_bounds)
from ratchetlib.core.student_t import normal_quantile, t_cdf, t_quantile

LOG_2PCT = math.log(1.02)
OUTLIER = math.log(3.0)  # one run 3x slow


def decide(effects, sigma=0.014, df=4.0, **kw):
    """The paired rule as iterate calls it for a +2% target and no margin, 1%-noise prior by default."""
    kw.setdefault("h0", 0.0)
    kw.setdefault("h1", LOG_2PCT)
    return sprt_decide(effects, sigma_prior=sigma, prior_df=df, **kw)


class PairEffectTest(unittest.TestCase):
    def test_log_ratio_signed_by_direction(self):
        self.assertAlmostEqual(pair_effect(100.0, 110.0, "max", True), math.log(1.1))
        self.assertAlmostEqual(pair_effect(100.0, 110.0, "min", True), -math.log(1.1))
        self.assertAlmostEqual(pair_effect(2.0, 1.0, "min", True), math.log(2.0))

    def test_difference_scale(self):
        self.assertAlmostEqual(pair_effect(-3.0, -1.0, "max", False), 2.0)
        self.assertAlmostEqual(pair_effect(-3.0, -1.0, "min", False), -2.0)

    def test_bad_input(self):
        with self.assertRaises(ValueError):
            pair_effect(0.0, 1.0, "max", True)
        with self.assertRaises(ValueError):
            pair_effect(1.0, float("nan"), "max", False)
        with self.assertRaises(ValueError):
            pair_effect(1.0, 2.0, "up", False)

    def test_use_log_scale_and_display(self):
        self.assertTrue(use_log_scale([1.0, 2.5]))
        self.assertFalse(use_log_scale([1.0, 0.0]))
        self.assertFalse(use_log_scale([]))
        self.assertAlmostEqual(display(math.log(1.031), True), 3.1)
        self.assertEqual(display(0.5, False), 0.5)


class MarginTest(unittest.TestCase):
    def test_relative(self):
        self.assertAlmostEqual(margin_effect(2.0, True, incumbent=50.0, direction="min", log_scale=True),
                               math.log(1.02))
        self.assertAlmostEqual(margin_effect(2.0, True, incumbent=-50.0, direction="max", log_scale=False),
                               1.0)

    def test_absolute_on_log_scale(self):
        # max: 100 must reach 101; min: 100 must drop to 99
        self.assertAlmostEqual(margin_effect(1.0, False, incumbent=100.0, direction="max", log_scale=True),
                               math.log(101 / 100))
        self.assertAlmostEqual(margin_effect(1.0, False, incumbent=100.0, direction="min", log_scale=True),
                               math.log(100 / 99))
        self.assertEqual(margin_effect(0.5, False, incumbent=3.0, direction="min", log_scale=False), 0.5)
        self.assertEqual(margin_effect(0.0, False, incumbent=3.0, direction="min", log_scale=True), 0.0)

    def test_impossible_or_negative_margin(self):
        with self.assertRaises(ValueError):
            margin_effect(100.0, False, incumbent=100.0, direction="min", log_scale=True)
        with self.assertRaises(ValueError):
            margin_effect(-1.0, True, incumbent=1.0, direction="max", log_scale=True)

    def test_hypotheses(self):
        h0, h1 = effect_hypotheses(margin=0.0, target_percent=2.0, incumbent=1.0, log_scale=True)
        self.assertEqual(h0, 0.0)
        self.assertAlmostEqual(h1, math.log(1.02))
        h0, h1 = effect_hypotheses(margin=math.log(1.05), target_percent=2.0, incumbent=1.0, log_scale=True)
        self.assertAlmostEqual(h1, math.log(1.05) + math.log(1.02))  # the target is read beyond the margin
        self.assertEqual(effect_hypotheses(margin=0.1, target_percent=2.0, incumbent=-20.0, log_scale=False),
                         (0.1, 0.4))
        with self.assertRaises(ValueError):
            effect_hypotheses(margin=0.0, target_percent=0.0, incumbent=1.0, log_scale=True)
        with self.assertRaises(ValueError):
            effect_hypotheses(margin=0.0, target_percent=2.0, incumbent=0.0, log_scale=False)


class SeedTest(unittest.TestCase):
    def test_deterministic_distinct_and_in_range(self):
        seeds = {pair_seed("run-a", i, p) for i in range(1, 20) for p in range(1, 11)}
        self.assertEqual(len(seeds), 190)
        self.assertTrue(all(0 <= s < 2 ** 31 for s in seeds))
        self.assertEqual(pair_seed("run-a", 3, 2), pair_seed("run-a", 3, 2))
        self.assertNotEqual(pair_seed("run-a", 3, 2), pair_seed("run-b", 3, 2))

    def test_order_alternates(self):
        self.assertEqual([incumbent_first(p) for p in range(1, 5)], [True, False, True, False])
        with self.assertRaises(ValueError):
            incumbent_first(0)


class StudentTTest(unittest.TestCase):
    def test_table_values(self):
        for p, df, want in ((0.975, 1, 12.7062047), (0.975, 4, 2.7764451), (0.95, 30, 1.6972609),
                            (0.975, 13, 2.1603687), (0.995, 9, 3.2498355)):
            self.assertAlmostEqual(t_quantile(p, df), want, places=5)
        self.assertAlmostEqual(t_quantile(0.025, 4), -2.7764451, places=5)
        self.assertAlmostEqual(t_cdf(0.0, 3.5), 0.5)
        self.assertAlmostEqual(t_cdf(2.7764451, 4), 0.975, places=6)
        self.assertAlmostEqual(t_quantile(0.95, 1e8), 1.6448536, places=5)

    def test_the_statistics_module_stand_ins_give_its_exact_floats(self):
        # normal_quantile and fmean spare every command the import of statistics (fractions, decimal)
        rng = random.Random(7)
        for p in [1e-300, 1e-12, 0.001, 0.025, 0.3, 0.5, 0.7, 0.975, 0.999999, 1 - 1e-16] + [rng.random() for _ in range(500)]:
            self.assertEqual(normal_quantile(p), statistics.NormalDist().inv_cdf(p), p)
        for bad in (0.0, 1.0, -0.1, 1.5, math.nan):
            with self.assertRaises(ValueError):
                normal_quantile(bad)
        for n in (1, 2, 7, 1000):
            xs = [rng.gauss(0, 1) * 10 ** rng.randint(-8, 8) for _ in range(n)]
            self.assertEqual(fmean(xs), statistics.fmean(xs))


class NoiseTest(unittest.TestCase):
    def test_calibration_figures(self):
        noise = noise_estimate([10.0, 11.0, 9.0, 10.0, 10.0], log_scale=False)
        self.assertAlmostEqual(noise.sigma_pair, math.sqrt(2) * math.sqrt(0.5))
        self.assertEqual((noise.df, noise.samples, noise.outliers), (4.0, 5, 0))
        self.assertAlmostEqual(noise.cv, math.sqrt(0.5) / 10.0)
        self.assertEqual(noise.spread, 2.0)

    def test_one_slow_run_is_set_aside(self):
        runs = [1.00, 1.01, 0.99, 1.005, 3.0]
        noise = noise_estimate(runs, log_scale=True)
        quiet = noise_estimate(runs[:4], log_scale=True)
        self.assertEqual(noise.outliers, 1)
        self.assertEqual(noise.df, 3.0)
        self.assertAlmostEqual(noise.sigma_pair, quiet.sigma_pair)
        self.assertGreater(noise.cv, 0.5)  # cv and spread still describe every run

    def test_bad_calibration(self):
        with self.assertRaises(ValueError):
            noise_estimate([1.0], log_scale=False)
        with self.assertRaises(ValueError):
            noise_estimate([1.0, -1.0], log_scale=True)

    def test_update_pools_by_degrees_of_freedom(self):
        noise = Noise(sigma_pair=0.02, df=4.0, log_scale=True, samples=5, outliers=0, cv=0.014,
                            spread=0.03, robust_sigma=0.01)
        new = update_noise(noise, [0.01, 0.03, 0.02])
        self.assertAlmostEqual(new.sigma_pair, math.sqrt((4 * 0.02 ** 2 + 0.0002) / 6))
        self.assertEqual((new.df, new.pairs_seen), (6.0, 3))

    def test_update_ignores_outliers_and_saturates(self):
        noise = Noise(0.02, 50.0, True, 5, 0, 0.014, 0.03, 0.01)
        self.assertEqual(update_noise(noise, [0.0, OUTLIER]), noise)  # which of two? neither teaches
        with_outlier = update_noise(noise, [0.0, 0.01, -0.01, 0.02, OUTLIER])
        without = update_noise(noise, [0.0, 0.01, -0.01, 0.02])
        self.assertAlmostEqual(with_outlier.sigma_pair, without.sigma_pair)
        self.assertEqual(with_outlier.df, 50.0)
        self.assertEqual(update_noise(noise, [0.1]), noise)

    def test_json_round_trip(self):
        noise = noise_estimate([1.0, 1.02, 0.99, 1.01, 1.0], log_scale=True)
        data = json.loads(json.dumps(noise.to_json()))
        self.assertEqual(Noise.from_json(data), noise)
        self.assertEqual(set(data), {"sigma_pair", "df", "log_scale", "samples", "outliers", "cv", "spread",
                                     "robust_sigma", "pairs_seen"})
        with self.assertRaises(ValueError):
            Noise.from_json({"sigma_pair": 1.0})
        with self.assertRaises(ValueError):
            Noise.from_json(dict(data, sigma_pair=-1.0))


class DetectableAndSplitTest(unittest.TestCase):
    def test_detectable_effect_formula(self):
        sigma = 0.07
        _, cap_alpha = alpha_split(0.05, 0.2, sigma_pair=sigma, h0=0.0, h1=LOG_2PCT,
                                         min_pairs=2, max_pairs=10)
        z = statistics.NormalDist().inv_cdf
        want = (z(1 - cap_alpha) + z(0.8)) * sigma / math.sqrt(10)
        self.assertAlmostEqual(detectable_effect(sigma, 0.05, 0.2, 10), want)
        self.assertEqual(detectable_effect(0.0), 0.0)
        self.assertLess(detectable_effect(sigma, max_pairs=20), detectable_effect(sigma, max_pairs=10))

    def test_alpha_goes_where_the_decisions_are(self):
        quiet = alpha_split(0.05, 0.2, sigma_pair=0.001, h0=0.0, h1=LOG_2PCT, min_pairs=2, max_pairs=10)
        noisy = alpha_split(0.05, 0.2, sigma_pair=0.2, h0=0.0, h1=LOG_2PCT, min_pairs=2, max_pairs=10)
        unknown = alpha_split(0.05, 0.2, sigma_pair=None, h0=0.0, h1=LOG_2PCT, min_pairs=2, max_pairs=10)
        for split in (quiet, noisy, unknown):
            self.assertAlmostEqual(sum(split), 0.05)
        self.assertAlmostEqual(quiet[1], MIN_SHARE * 0.05)
        self.assertAlmostEqual(noisy[1], MAX_SHARE * 0.05)
        self.assertAlmostEqual(unknown[1], 0.025)

    def test_cap_probability_matches_simulation(self):
        theta, n_max = 0.5, 10
        lo, hi = wald_bounds(0.05, 0.2)
        rng = random.Random(7)
        reached = 0
        for _ in range(3000):
            s = 0.0
            for n in range(1, n_max + 1):
                s += rng.gauss(0.0, 1.0)
                llr = math.log(sum(w * math.exp(m * theta * s - n * (m * theta) ** 2 / 2)
                                   for m, w in H1_MIXTURE))
                if n >= 2 and not lo < llr < hi:
                    break
            else:
                reached += 1
        self.assertAlmostEqual(cap_probability(theta, 0.0, 2, n_max, 0.05, 0.2), reached / 3000, delta=0.03)
        self.assertLess(cap_probability(3.0, 0.0, 2, n_max, 0.05, 0.2), 0.01)
        self.assertGreater(cap_probability(0.05, 0.0, 2, n_max, 0.05, 0.2), 0.95)


class SequentialTest(unittest.TestCase):
    def test_wald_bounds(self):
        lo, hi = wald_bounds(0.05, 0.2)
        self.assertAlmostEqual(lo, math.log(0.2 / 0.95))
        self.assertAlmostEqual(hi, math.log(0.8 / 0.05))
        with self.assertRaises(ValueError):
            wald_bounds(0.5, 0.6)

    def test_clear_gain_accepted_after_minimum_pairs(self):
        verdict = decide([0.05, 0.048])
        self.assertEqual(verdict.outcome, "accept")
        self.assertTrue(verdict.keep and verdict.decided)
        self.assertAlmostEqual(verdict.estimate, 0.049)
        self.assertGreater(verdict.statistic, verdict.bounds[1])
        self.assertRegex(verdict.reason, r"^kept: \+5\.0% \[\+\d+\.\d%, \+\d+\.\d%\], sequential test accepted after 2 pairs$")

    def test_huge_gains_are_accepted_early_too(self):
        # +65%, 2x, 10x and 136x with 1% noise: decided well before the 10-pair cap, not by it
        for ratio, pairs in ((1.65, 2), (2.0, 2), (10.0, 2), (136.0, 7)):
            xs = [math.log(ratio) + d for d in (0.01, -0.012, 0.008, -0.004, 0.011, -0.009, 0.003, -0.002)]
            verdict = next(v for n in range(1, 9) for v in [decide(xs[:n])] if v.decided)
            self.assertEqual((verdict.outcome, verdict.pairs <= pairs), ("accept", True), (ratio, verdict.reason))
            self.assertIn("sequential test accepted", verdict.reason)

    def test_clear_loss_and_nothing_rejected(self):
        self.assertEqual(decide([-0.03, -0.025]).outcome, "reject")
        verdict = decide([0.001, -0.002, 0.0])
        self.assertEqual(verdict.outcome, "reject")
        self.assertLess(verdict.statistic, verdict.bounds[0])
        self.assertIn("sequential test rejected after 3 pairs", verdict.reason)

    def test_never_before_minimum_pairs(self):
        self.assertEqual(decide([0.2]).outcome, "continue")
        self.assertEqual(decide([0.2, 0.2], min_pairs=3).outcome, "continue")
        self.assertEqual(decide([]).outcome, "continue")

    def test_ambiguous_continues(self):
        verdict = decide([0.012, 0.006])
        self.assertEqual(verdict.outcome, "continue")
        self.assertTrue(verdict.bounds[0] < verdict.statistic < verdict.bounds[1])
        self.assertTrue(verdict.reason.startswith("undecided after 2 pairs: +0.9% ["))

    def test_two_lucky_pairs_do_not_fake_certainty(self):
        # at 5% noise two near-identical +2% pairs prove nothing
        self.assertEqual(decide([0.0199, 0.0201], sigma=0.07).outcome, "continue")

    def test_cap_reverts_when_undecided(self):
        effects = [0.03, -0.05, 0.08, -0.02, 0.01, 0.06, -0.07, 0.04, -0.01, 0.02]
        verdict = decide(effects, sigma=0.07)
        self.assertEqual(verdict.outcome, "reject")
        self.assertIn("undecided after 10 pairs", verdict.reason)

    def test_cap_test_keeps_a_significant_gain(self):
        effects = [0.06, 0.01, 0.08, 0.02, 0.07, 0.03, 0.05, 0.09, 0.00, 0.04]  # mean +4.6% at 7% noise
        seq_only = decide(effects[:9], sigma=0.07, df=50.0)
        self.assertEqual(seq_only.outcome, "continue")
        verdict = decide(effects, sigma=0.07, df=50.0)
        self.assertEqual(verdict.outcome, "accept")
        self.assertIn("significant at the 10-pair cap", verdict.reason)
        plain = decide(effects, sigma=0.07, df=50.0, final_test=False)
        self.assertEqual(plain.outcome, "reject")
        self.assertIn("undecided after 10 pairs", plain.reason)

    def test_one_slow_run_does_not_flip_a_revert(self):
        neutral = [0.002, -0.004, 0.001, -0.002, 0.003]
        self.assertEqual(decide(neutral).outcome, "reject")
        for at in range(len(neutral) + 1):
            effects = neutral[:at] + [OUTLIER] + neutral[at:]  # the incumbent's run was 3x slow
            for n in range(1, len(effects) + 1):
                self.assertNotEqual(decide(effects[:n]).outcome, "accept", effects[:n])

    def test_one_slow_run_does_not_flip_a_keep(self):
        gain = [0.05, 0.045, 0.055, 0.05]
        self.assertEqual(decide(gain[:2]).outcome, "accept")
        for at in range(len(gain)):
            effects = gain[:at] + [-OUTLIER] + gain[at:]  # the candidate's run was 3x slow
            outcomes = [decide(effects[:n]).outcome for n in range(1, len(effects) + 1)]
            self.assertNotIn("reject", outcomes, effects)
            self.assertEqual(outcomes[-1], "accept", effects)

    def test_pairs_that_disagree_wildly_wait(self):
        verdict = decide([0.0, OUTLIER])
        self.assertEqual(verdict.outcome, "continue")
        self.assertIn("disagree far beyond the noise", verdict.reason)
        self.assertEqual(decide([0.0, OUTLIER], max_pairs=2).outcome, "reject")
        # two slow incumbent runs among four pairs: no median can tell which half is right
        self.assertEqual(decide([OUTLIER, 0.001, -0.002, OUTLIER]).outcome, "continue")
        # one among three is plainly the odd one and is left out
        self.assertEqual(decide([0.001, -0.002, OUTLIER]).outcome, "reject")

    def test_deterministic_metric_plain_comparison(self):
        keep = sprt_decide([0.01, 0.01], h0=0.0, h1=LOG_2PCT)
        self.assertEqual(keep.outcome, "accept")
        self.assertIsNone(keep.statistic)
        self.assertIn("deterministic", keep.reason)
        tie = sprt_decide([0.0, 0.0], h0=0.0, h1=LOG_2PCT)
        self.assertEqual(tie.outcome, "reject")
        below_margin = sprt_decide([0.01] * 3, h0=0.01, h1=0.03, log_scale=False)
        self.assertEqual(below_margin.outcome, "reject")
        self.assertEqual(sprt_decide([0.5], h0=0.0, h1=LOG_2PCT).outcome, "continue")

    def test_min_and_max_directions_agree(self):
        faster = [pair_effect(10.0, 9.5, "min", True), pair_effect(10.1, 9.6, "min", True)]
        slower = [pair_effect(10.0, 9.5, "max", True), pair_effect(10.1, 9.6, "max", True)]
        self.assertEqual(decide(faster).outcome, "accept")
        self.assertEqual(decide(slower).outcome, "reject")

    def test_difference_scale_reason(self):
        verdict = sprt_decide([2.0, 2.2], h0=0.0, h1=1.0, sigma_prior=0.3, prior_df=10, log_scale=False)
        self.assertEqual(verdict.outcome, "accept")
        self.assertTrue(verdict.reason.startswith("kept: +2.1 ["))
        self.assertIn("%", decide([0.05, 0.048]).reason)
        self.assertNotIn("%", verdict.reason)

    def test_margin_raises_the_bar(self):
        effects = [0.03, 0.028, 0.032]
        self.assertEqual(decide(effects).outcome, "accept")
        self.assertEqual(decide(effects, h0=math.log(1.04), h1=math.log(1.06)).outcome, "reject")

    def test_llr_grows_with_the_mean(self):
        values = [mixture_llr(m, 0.001, 4, 4.0, 0.0, LOG_2PCT) for m in (-0.02, 0.0, 0.01, 0.02, 0.05)]
        self.assertEqual(values, sorted(values))
        self.assertLess(values[1], 0.0)

    def test_verdict_is_json_ready(self):
        data = json.loads(json.dumps(decide([0.05, 0.048]).to_json()))
        self.assertEqual(data["outcome"], "accept")
        self.assertEqual(len(data["interval"]), 2)
        self.assertEqual(len(data["bounds"]), 2)

    def test_bad_parameters(self):
        with self.assertRaises(ValueError):
            decide([0.1], h0=0.02, h1=0.02)
        with self.assertRaises(ValueError):
            decide([0.1], min_pairs=5, max_pairs=3)
        with self.assertRaises(ValueError):
            decide([float("inf")])
        with self.assertRaises(ValueError):
            decide([0.1], alpha=0.5, beta=0.5)


class RobustEffectsTest(unittest.TestCase):
    def test_clip_and_drop(self):
        xs = [0.0, 0.01, -0.01, 0.045, 0.2]  # median 0.01: 0.045 is 3.5 sigmas out, 0.2 is 19
        for got, want in zip(robust_effects(xs, 0.01), [0.0, 0.01, -0.01, 0.035], strict=True):
            self.assertAlmostEqual(got, want)
        self.assertEqual(robust_effects(xs[:2], 0.01), xs[:2])
        self.assertEqual(robust_effects(xs, 0.0), xs)


class GainTest(unittest.TestCase):
    def test_t_interval_without_prior(self):
        gain = gain_interval([0.10, 0.12, 0.08])
        half = 4.302653 * 0.02 / math.sqrt(3)
        self.assertAlmostEqual(gain.estimate, 0.10)
        self.assertAlmostEqual(gain.interval[0], 0.10 - half, places=6)
        self.assertAlmostEqual(gain.interval[1], 0.10 + half, places=6)
        self.assertEqual(gain.display(), "+10.5% [+5.2%, +16.1%]")
        self.assertEqual(json.loads(json.dumps(gain.to_json()))["pairs"], 3)

    def test_prior_narrows_and_single_pair(self):
        wide = gain_interval([0.10, 0.12])
        narrow = gain_interval([0.10, 0.12], sigma_prior=0.014, prior_df=20)
        self.assertLess(narrow.interval[1] - narrow.interval[0], wide.interval[1] - wide.interval[0])
        self.assertIsNone(gain_interval([0.1]).interval)
        self.assertEqual(gain_interval([0.1, 0.1]).interval, (0.1, 0.1))
        with self.assertRaises(ValueError):
            gain_interval([])

    def test_difference_scale_display(self):
        self.assertEqual(gain_interval([1.0, 2.0, 3.0], log_scale=False).display(), "+2 [-0.4841, +4.484]")


if __name__ == "__main__":
    unittest.main()
