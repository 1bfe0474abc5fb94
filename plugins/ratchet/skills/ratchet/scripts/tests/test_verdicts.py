"""Verdicts read true (issue 16, point 5), through the CLI with a benchmark
scripted per run (tests/test_outliers.SCRIPTED): one effect figure per
paired verdict, the decision's own; an undecided revert says why; the trend
line names what its numbers are."""

import os
import re

from ratchetlib.present import figures
from tests.test_outliers import ScriptedBenchTest


class VerdictTextTest(ScriptedBenchTest):

    def iterate(self, value):
        self.set_value(value)
        return self.run_ok("iterate", "--hypothesis", f"value {value}")

    def verdict(self, value, *init):
        self.start(*init)
        out = self.iterate(value)
        head, reason = out.splitlines()[:2]
        return head, reason, self.records()[-1]

    def test_one_figure_whose_sign_is_the_tests(self):
        os.environ.update(OFF_CAND="2", OFF_FACTOR="0.5")  # one slow candidate run drags its mean below the incumbent's
        head, reason, rec = self.verdict("10.12", "--max-trials", "4")
        self.assertLess(rec["delta"], 0)  # the means say worse...
        self.assertGreater(rec["estimate"], 0)  # ...the test, which decided, says +0.5%: only its figure is shown
        self.assertRegex(head, r"^iter 1: REVERT  score, 3 pairs incumbent\|candidate: [0-9.| ]+$")
        self.assertNotIn("%", head)
        self.assertRegex(reason, r"^reverted: \+0\.5% \[-\d\.\d%, \+\d\.\d%\], sequential test rejected after 3 pairs: "
                                 r"not distinguishable from noise$")
        self.assertEqual(len(re.findall(r"[+-]\d+(?:\.\d+)?%", reason)), 3)  # one estimate and its interval
        line = self.run_ok("history", "--last", "1").splitlines()[0]
        self.assertRegex(line, r"^\s+1 revert\s+[0-9.]+ \+0\.5%\s+value 10\.12$")  # the agent's history: the same figure
        # the HTML report's row (and ship's messages): the test's figure, not the contradicting mean difference
        self.assertRegex(figures.effect_summary(rec, "max"), r"^\(0\.5% better, \[-\d\.\d%, \+\d\.\d%\]\)$")

    def test_an_undecided_revert_says_why(self):
        cases = (("10.1", (), "not distinguishable from noise"),
                 ("10.15", ("--min-improvement", "0.5%"), "within the margin (+0.5%)"),
                 ("10.2", ("--min-improvement", "0.5%"), "not significant at the cap test's level"))
        for value, extra, why in cases:
            with self.subTest(value=value, why=why):
                self.setUp()
                head, reason, rec = self.verdict(value, "--max-trials", "2", *extra)
                self.assertEqual(rec["decision"], "revert", reason)
                self.assertGreater(rec["estimate"], 0)
                self.assertTrue(reason.startswith("reverted: +"), reason)
                self.assertTrue(reason.endswith(f", undecided after 2 pairs (pair cap reached): {why}"), reason)

    def test_trend_names_its_numbers(self):
        self.start("--decision", "mean")
        for value in ("12", "11", "13"):
            self.iterate(value)
        line = next(l for l in self.run_ok("status").splitlines() if l.startswith("trend: "))
        self.assertIn("scores, oldest first; lowest ", line)
        self.assertNotRegex(line, r"\d to \d")
