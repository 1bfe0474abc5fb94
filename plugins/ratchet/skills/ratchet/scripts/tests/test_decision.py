"""Keep/revert rules and stop conditions (pure)."""

import unittest

from ratchetlib.core import record
from ratchetlib.core import config, decision, text
from ratchetlib.core.state import RunState

CFG = config.Config(run_command="x", direction="max", metric_name="m")


def ok(*scores):
    return [{"trial": i + 1, "status": "ok", "score": s} for i, s in enumerate(scores)]


class JudgeTest(unittest.TestCase):
    def test_keep_revert_tie(self):
        self.assertEqual(decision.judge(ok(11, 13), 10.0, CFG).decision, "keep")
        self.assertEqual(decision.judge(ok(11, 13), 10.0, CFG).avg, 12.0)
        self.assertEqual(decision.judge(ok(10), 10.0, CFG).decision, "revert")
        self.assertIn("ties", decision.judge(ok(10), 10.0, CFG).reason)
        self.assertEqual(decision.judge(ok(9), 10.0, CFG).decision, "revert")

    def test_min_direction(self):
        cfg = config.Config(run_command="x", direction="min", metric_name="m")
        self.assertEqual(decision.judge(ok(9), 10.0, cfg).decision, "keep")
        self.assertEqual(decision.judge(ok(11), 10.0, cfg).decision, "revert")

    def test_margins(self):
        rel = config.Config(run_command="x", direction="min", metric_name="m", min_improvement=config.Margin(5, True))
        self.assertEqual(decision.judge(ok(96), 100.0, rel).decision, "revert")
        self.assertEqual(decision.judge(ok(94.9), 100.0, rel).decision, "keep")
        ab = config.Config(run_command="x", direction="max", metric_name="m", min_improvement=config.Margin(0.5))
        self.assertEqual(decision.judge(ok(10.5), 10.0, ab).decision, "revert")
        self.assertEqual(decision.judge(ok(10.51), 10.0, ab).decision, "keep")

    def test_full_precision(self):
        self.assertEqual(decision.judge(ok(1.0000000001), 1.0, CFG).decision, "keep")

    def test_failures_win_over_good_trials(self):
        trials = ok(50) + [{"trial": 2, "status": "timeout", "score": None, "detail": "timed out"}]
        self.assertEqual(decision.judge(trials, 10.0, CFG).decision, "timeout")
        trials = ok(50) + [{"trial": 2, "status": "not-finite", "score": None, "detail": "nan"}]
        self.assertEqual(decision.judge(trials, 10.0, CFG).decision, "crash")


class StopTest(unittest.TestCase):
    def cfg(self, **kw):
        return config.Config(run_command="x", direction="max", metric_name="m", **kw)

    def test_each_condition(self):
        self.assertIsNone(decision.stop_reason(RunState(iteration=3, best=5), self.cfg()))
        self.assertIn("iteration cap", decision.stop_reason(RunState(iteration=20), self.cfg()))
        # the best's own mean crossing the threshold does not stop a run: only HEAD re-measured does (issue 16)
        self.assertIsNone(decision.stop_reason(RunState(iteration=1, best=7), self.cfg(threshold=7.0)))
        head = RunState(iteration=1, best=7, incumbent_sha="b" * 40)
        seen = {"sha": "b" * 40, "gain_pct": 40.0, "value": 7.0}
        self.assertIn("threshold reached (7 vs 7, confirmed",
                      decision.stop_reason(record.replace(head, verified=seen), self.cfg(threshold=7.0)))
        self.assertIsNone(decision.stop_reason(record.replace(head, verified={**seen, "value": 6.2}),
                                               self.cfg(threshold=7.0)))
        self.assertIsNone(decision.stop_reason(record.replace(head, verified={**seen, "sha": "a" * 40}),
                                               self.cfg(threshold=7.0)))  # an earlier best's
        self.assertIsNone(decision.stop_reason(RunState(iteration=1, best=6.9), self.cfg(threshold=7.0)))
        self.assertIn("patience", decision.stop_reason(RunState(iteration=4, since_keep=4), self.cfg(patience=4)))
        self.assertIsNone(decision.stop_reason(RunState(iteration=4, since_keep=4), self.cfg()))
        self.assertIn("crash budget", decision.stop_reason(RunState(iteration=2, consecutive_crashes=3), self.cfg()))

    def test_fmt(self):
        self.assertEqual(text.num(857571.0), "857571")
        self.assertEqual(text.num(0.123456789), "0.123457")
        self.assertEqual(text.num(None), "-")
        self.assertEqual(text.num(-3.0, sign=True), "-3")
        self.assertEqual(text.num(2.5, sign=True), "+2.5")


if __name__ == "__main__":
    unittest.main()
