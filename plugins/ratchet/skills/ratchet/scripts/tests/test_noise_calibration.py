"""The calibration's robust scale (core/noise.near_scale): from ROBUST_FROM runs
of the start commit on, a pair's sigma is the median distance of runs at most
NEAR apart (what a back-to-back pair sees), made consistent at the normal;
fewer runs keep the SD after the outlier set-aside (tests/test_stats)."""

import math
import random
import statistics
import unittest

from ratchetlib.core.noise import ROBUST_FROM, constants_from_squares, near_constants, near_raw, near_scale, noise_estimate


def simulated_constants(n: int, draws: int, seed: int) -> tuple:
    """(factor, df) of the near scale of n normal runs, re-derived as the table was."""
    rng = random.Random(seed)
    return constants_from_squares([near_raw([rng.gauss(0.0, 1.0) for _ in range(n)]) ** 2 / 2.0
                                   for _ in range(draws)])


class NearScaleTest(unittest.TestCase):
    def test_the_table_is_what_simulation_gives(self):
        for n in (ROBUST_FROM, 20):
            factor, df = simulated_constants(n, 20000, seed=n)
            table_factor, table_df = near_constants(n)
            self.assertAlmostEqual(factor, table_factor, delta=0.015 * table_factor)
            self.assertAlmostEqual(df, table_df, delta=0.1 * table_df)
        # beyond the table, the asymptotic forms continue it without a jump
        self.assertAlmostEqual(near_constants(31)[0], near_constants(30)[0], delta=0.005)
        self.assertAlmostEqual(near_constants(31)[1], near_constants(30)[1], delta=1.0)

    def test_consistent_at_normal_noise(self):
        rng = random.Random(7)
        sq = [near_scale([rng.gauss(0.0, 0.01) for _ in range(12)]) ** 2 for _ in range(4000)]
        self.assertAlmostEqual(statistics.fmean(sq), 2 * 0.01 ** 2, delta=0.06 * 2 * 0.01 ** 2)

    def test_a_state_switch_inflates_the_sd_not_the_pair_sigma(self):
        fast = [1.000, 1.010, 0.995, 1.005, 1.000]
        runs = fast + [1.1 * x for x in fast]  # the machine got 10% slower half way
        noise = noise_estimate(runs, log_scale=True)
        logs = [math.log(x) for x in runs]
        self.assertLess(noise.sigma_pair, 0.5 * math.sqrt(2) * statistics.stdev(logs))
        self.assertGreater(noise.sigma_pair, 0.0)
        self.assertEqual(noise.df, near_constants(10)[1])
        self.assertEqual(noise.samples, 10)

    def test_one_wild_run_barely_moves_it(self):
        rng = random.Random(3)
        runs = [math.exp(rng.gauss(0.0, 0.01)) for _ in range(10)]
        calm = noise_estimate(runs, log_scale=True)
        wild = noise_estimate(runs[:5] + [runs[5] * math.exp(0.08)] + runs[6:], log_scale=True)  # an 8-sigma run
        self.assertLess(wild.sigma_pair, 1.5 * calm.sigma_pair)

    def test_a_quantized_metric_is_not_called_deterministic(self):
        runs = [100.0] * 9 + [101.0]  # most near differences are 0
        noise = noise_estimate(runs, log_scale=False)
        self.assertGreater(noise.sigma_pair, 0.0)  # the SD's, so the test still sees noise
        self.assertEqual(noise.df, 9.0)
        self.assertTrue(noise_estimate([5.0] * 12, log_scale=False).deterministic)

    def test_fewer_runs_keep_the_sd(self):
        runs = [10.0, 11.0, 9.0, 10.0, 10.0, 10.5, 9.5, 10.0, 11.0][:ROBUST_FROM - 1]
        noise = noise_estimate(runs, log_scale=False)
        self.assertAlmostEqual(noise.sigma_pair, math.sqrt(2) * statistics.stdev(runs))


if __name__ == "__main__":
    unittest.main()
