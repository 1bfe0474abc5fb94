"""Outliers never decide (issue 16, point 3), driven through the CLI with a
benchmark whose outputs are scripted per run: two of the incumbent's first
three runs of an iteration 10x off must not keep a no-op, nor revert a real
gain, and the figures that feed hints, the report and the bandit stay the
filtered estimate, never the 10x artefact."""

import json
import math
import os
import subprocess
import unittest

from ratchetlib.core.robust import incumbent_adrift, outvoted
from ratchetlib.core.sprt import sprt_decide
from tests.util import RepoTest, read, write

TENX = math.log(10.0)
SIGMA = 0.014  # a 1%-noise pair


def decide(effects, **kw):
    return sprt_decide(effects, h0=0.0, h1=math.log(1.02), sigma_prior=SIGMA, prior_df=4.0, **kw)


class OutvotedTest(unittest.TestCase):
    """The rule on pair effects alone (core/robust.outvoted, core/sprt)."""

    def test_never_half_or_fewer(self):
        self.assertTrue(outvoted(4, 2, 0.0, SIGMA))
        self.assertTrue(outvoted(2, 1, 0.0, SIGMA))
        self.assertFalse(outvoted(3, 2, 0.0, SIGMA))  # an ordinary mean: one odd pair of three is set aside
        self.assertFalse(outvoted(5, 5, TENX, SIGMA))

    def test_an_effect_no_noise_explains_needs_two_thirds(self):
        self.assertTrue(outvoted(3, 2, TENX, SIGMA))
        self.assertTrue(outvoted(6, 4, TENX, SIGMA))
        self.assertFalse(outvoted(7, 5, TENX, SIGMA))
        self.assertFalse(outvoted(3, 2, TENX, None))  # no noise prior: nothing is gross

    def test_two_off_incumbent_runs_among_three_pairs_wait(self):
        for fx in ([TENX, 0.003, TENX], [0.003, TENX, TENX], [-TENX, 0.1, -TENX], [0.1, -TENX, -TENX]):
            v = decide(fx)
            self.assertEqual(v.outcome, "continue", fx)
            self.assertIn("1 of 3 pairs are far off the rest", v.reason)
        # honest pairs that follow outvote the two: a no-op is reverted on them, a gain kept
        noop = decide([TENX, 0.003, TENX, 0.001, -0.002, 0.0, 0.004])
        self.assertEqual(noop.outcome, "reject", noop.reason)
        self.assertLess(abs(noop.estimate), 0.01)
        gain = decide([-TENX, 0.1, -TENX, 0.1, 0.098, 0.102, 0.1])
        self.assertEqual(gain.outcome, "accept", gain.reason)
        self.assertAlmostEqual(gain.estimate, 0.1, delta=0.01)

    def test_noisy_at_the_cap(self):
        v = decide([TENX, 0.0] * 3, max_pairs=6)
        self.assertEqual(v.outcome, "reject")
        self.assertTrue(v.reason.startswith("noisy: they disagree far beyond the noise after 6 pairs"), v.reason)
        self.assertEqual((v.estimate, v.interval), (0.0, None))

    def test_incumbent_adrift(self):
        # two slow incumbent runs in the first two pairs agree with each other: only its record shows them
        self.assertTrue(incumbent_adrift([1.0, 1.01], [10.0, 9.98], 10.0, SIGMA, True))
        self.assertTrue(incumbent_adrift([100.0, 99.0], [11.0, 11.1], 10.0, SIGMA, True))  # the mirror
        self.assertFalse(incumbent_adrift([11.0, 11.1], [12.0, 12.1], 10.0, SIGMA, True))  # drift: both sides moved
        self.assertFalse(incumbent_adrift([10.0, 10.1], [100.0, 99.0], 10.0, SIGMA, True))  # a real 10x change
        self.assertFalse(incumbent_adrift([1.0, 1.0], [10.0, 10.0], 10.0, None, True))  # no noise prior
        self.assertFalse(incumbent_adrift([-1.0], [3.0], 3.0, 0.1, True))  # not positive: not on the log scale
        self.assertTrue(incumbent_adrift([-1.0], [3.0], 3.0, 0.1, False))
        v = decide([TENX, TENX], adrift=True)
        self.assertEqual(v.outcome, "continue")
        self.assertIn("the incumbent's runs are far off its recorded score", v.reason)

    def test_a_clear_loss_stops_after_one_pair(self):
        v = decide([-0.05])
        self.assertEqual(v.outcome, "reject")
        self.assertIn("clearly worse after 1 pair", v.reason)
        self.assertEqual(decide([-0.02]).outcome, "continue")  # within reach of the noise: not clear
        self.assertEqual(decide([-math.log(3.0)]).outcome, "continue")  # one gross run never decides
        self.assertEqual(decide([0.05]).outcome, "continue")  # a keep still needs the minimum pairs

# value.txt "10" is the incumbent, anything else the candidate. Every run
# counts itself per side in ../<side>.count; runs whose number is listed in
# OFF_INC / OFF_CAND are multiplied by OFF_FACTOR; the rest carry a fixed
# small noise (cv about 0.4%) so the calibration sees a real prior.
SCRIPTED = ("import os\n"
            "v = open('value.txt').read().strip()\n"
            "side = 'inc' if v == '10' else 'cand'\n"
            "path = os.path.join('..', side + '.count')\n"
            "k = int(open(path).read()) + 1 if os.path.exists(path) else 1\n"
            "open(path, 'w').write(str(k))\n"
            "off = os.environ.get('OFF_' + side.upper(), '').split(',')\n"
            "noise = [0.004, -0.006, 0.002, -0.003, 0.005, -0.001, 0.003, -0.004, 0.001, -0.002][k % 10]\n"
            "factor = float(os.environ.get('OFF_FACTOR', '0.1')) if str(k) in off else 1.0\n"
            "print('score:', float(v) * (1 + noise) * factor)\n")

# the calibration takes the incumbent's runs 1-5; the iteration's incumbent runs are 6, 7, 8, ...
FIRST_THREE = (6, 7, 8)


class ScriptedBenchTest(RepoTest):
    """A repository whose bench.py is SCRIPTED (no tests of its own; test_verdicts shares it)."""

    def setUp(self):
        super().setUp()
        write(self.repo, "bench.py", SCRIPTED)
        subprocess.run(["git", "commit", "-qam", "scripted bench"], cwd=self.repo, check=True)
        for key in ("OFF_INC", "OFF_CAND", "OFF_FACTOR"):
            self.addCleanup(os.environ.pop, key, None)

    def start(self, *extra):
        """Run positions are scripted: the calibration is runs 1-5 (FIRST_THREE follows it)."""
        return super().start("--calibration-runs", "5", *extra)


class OutlierTest(ScriptedBenchTest):

    def scripted(self, off_inc=(), factor=0.1):
        os.environ["OFF_INC"] = ",".join(str(k) for k in off_inc)
        os.environ["OFF_FACTOR"] = str(factor)

    def iterate(self, value):
        self.set_value(value)
        return self.run_ok("iterate", "--hypothesis", f"value {value}")

    def test_two_slow_incumbent_runs_do_not_keep_a_no_op(self):
        for off in ((6, 7), (6, 8), (7, 8)):
            with self.subTest(off=off):
                self.setUp()
                self.start()
                self.scripted(off)  # the incumbent's runs 10x low: the candidate looks 10x better
                out = self.iterate("10.0")  # a no-op: same value
                rec = self.records()[-1]
                self.assertNotEqual(rec["decision"], "keep", out)
                self.assertGreater(rec["pairs"], 3, out)  # the third pair did not decide
                self.assertLess(abs(rec["estimate"]), 0.05, rec["reason"])
                self.assertNotIn("+900", out)
                self.assertEqual(read(self.repo, "value.txt").strip(), "10")
                memory = self.state().get("memory") or {}
                self.assertIsNone(memory.get("best_win"), memory)

    def test_two_fast_incumbent_runs_do_not_revert_a_real_gain(self):
        for off in ((6, 7), (6, 8), (7, 8)):
            with self.subTest(off=off):
                self.setUp()
                self.start()
                self.scripted(off, factor=10)  # the incumbent's runs 10x high: the candidate looks 10x worse
                out = self.iterate("11")  # a real +10%
                rec = self.records()[-1]
                self.assertEqual(rec["decision"], "keep", out)
                self.assertTrue(0.07 < rec["estimate"] < 0.13, rec["reason"])
                self.assertEqual(read(self.repo, "value.txt").strip(), "11")
                # the figures that feed hints, the report's top wins and the bandit: the filtered +10%
                win = self.state()["memory"]["best_win"]
                self.assertTrue(0.07 < win["effect"] < 0.13, win)
                code_out = self.run_ok("report", "--json")
                wins = json.loads(code_out)["summary"]["top_wins"] if json.loads(code_out).get("summary") else None
                if wins is not None:
                    self.assertEqual(wins[0]["iter"], rec["iter"])

    def test_outliers_that_never_settle_end_noisy(self):
        self.start("--max-trials", "6")
        # every other incumbent run 10x low: half the pairs are far off, no median can tell which half
        self.scripted(range(6, 40, 2))
        out = self.iterate("10.0")
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["pairs"]), ("revert", 6), out)
        self.assertTrue(rec["reason"].startswith("noisy: "), rec["reason"])
        self.assertIn("pair cap reached", rec["reason"])
        self.assertEqual(rec["estimate"], 0.0)
        self.assertIsNone(rec["interval"])
        self.assertNotIn("+900", out)
        memory = self.state()["memory"]
        self.assertIsNone(memory.get("best_win"))


if __name__ == "__main__":
    import unittest
    unittest.main()
