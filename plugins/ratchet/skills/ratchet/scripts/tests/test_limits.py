"""Pure rules of issue 4: constraint/warn limits, several metrics (Pareto), their flags."""

import tempfile
import unittest

from ratchetlib.core import config, constraints, pareto
from ratchetlib.core.config import Margin
from ratchetlib.core.errors import UsageError


def trials(*rows):
    """Trials from dicts of metric values; 'score' is the primary metric."""
    return [{"trial": i + 1, "status": "ok", "score": r.get("score"), "metrics": r} for i, r in enumerate(rows)]


class LimitTest(unittest.TestCase):
    def test_parse_each_operator_and_spacing(self):
        for text, op in (("correctness>=100", ">="), ("p95 <= 50", "<="), ("acc>0.9", ">"), ("loss < 1e-3", "<")):
            c = constraints.parse(text)
            self.assertEqual(c["op"], op, text)
        self.assertEqual(constraints.parse("loss < 1e-3")["value"], 0.001)
        self.assertEqual(constraints.show(constraints.parse(" correctness >= 100 ")), "correctness>=100")

    def test_parse_errors_are_one_line_and_name_the_flag(self):
        for bad in ("correctness", "a==1", "a>=x", "a>=nan", ">=3", "a b>=1"):
            with self.assertRaises(UsageError) as cm:
                constraints.parse(bad, "--warn")
            self.assertIn("--warn", str(cm.exception))
            self.assertNotIn("\n", str(cm.exception))

    def test_each_operator_at_and_around_the_boundary(self):
        cases = {">=": (True, True, False), "<=": (False, True, True), ">": (True, False, False), "<": (False, False, True)}
        for op, expect in cases.items():
            limit = constraints.parse(f"m{op}10")
            self.assertEqual(tuple(constraints.holds(limit, v) for v in (11, 10, 9)), expect, op)
            self.assertFalse(constraints.holds(limit, None), op)

    def test_violation_checks_every_trial_and_a_missing_metric_fails(self):
        limit = [constraints.parse("correctness>=100")]
        self.assertIsNone(constraints.violation(trials({"score": 1, "correctness": 100}, {"score": 1, "correctness": 101}),
                                                limit, "score"))
        why = constraints.violation(trials({"score": 1, "correctness": 100}, {"score": 1, "correctness": 99}), limit, "score")
        self.assertIn("violated: 99 in trial 2", why)
        why = constraints.violation(trials({"score": 1, "correctness": 100}, {"score": 1}), limit, "score")
        self.assertIn("missing in trial 2", why)
        self.assertIsNone(constraints.violation(trials({"score": 5}), [constraints.parse("score>3")], "score"))

    def test_warnings_use_the_mean_and_report_missing(self):
        w = [constraints.parse("p95<=50"), constraints.parse("mem<100")]
        self.assertEqual(constraints.warnings({"p95": 50.0, "mem": 99.0}, w), [])
        self.assertEqual(constraints.warnings({"p95": 61.0, "mem": None}, w), ["p95<=50 (got 61)", "mem<100 (got -)"])


SPEED = ("speed", "max", Margin(0.0, False))
MEM = ("mem", "min", Margin(5.0, True))


class ParetoTest(unittest.TestCase):
    def test_compare_one_margin_and_ties(self):
        m = Margin(1.0, False)
        self.assertEqual(pareto.compare_one(11.5, 10.0, "max", m), pareto.BETTER)
        self.assertEqual(pareto.compare_one(11.0, 10.0, "max", m), pareto.SAME)   # exactly the margin: not beyond
        self.assertEqual(pareto.compare_one(10.0, 10.0, "max", m), pareto.SAME)   # a tie
        self.assertEqual(pareto.compare_one(8.5, 10.0, "max", m), pareto.WORSE)
        self.assertEqual(pareto.compare_one(8.5, 10.0, "min", m), pareto.BETTER)
        self.assertEqual(pareto.compare_one(11.5, 10.0, "min", m), pareto.WORSE)
        self.assertEqual(pareto.compare_one(1.0, None, "min", m), pareto.SAME)    # incumbent never had it
        self.assertEqual(pareto.compare_one(None, 1.0, "min", m), pareto.WORSE)   # a missing value never wins

    def test_keep_only_when_better_on_one_and_worse_on_none(self):
        inc = {"speed": 100.0, "mem": 100.0}
        cases = [({"speed": 110.0, "mem": 100.0}, "keep"),     # better, same
                 ({"speed": 100.0, "mem": 90.0}, "keep"),      # same, better (beyond 5%)
                 ({"speed": 100.0, "mem": 97.0}, "revert"),    # same, within margin: nothing beyond noise
                 ({"speed": 100.0, "mem": 100.0}, "revert"),   # an exact tie on all
                 ({"speed": 150.0, "mem": 106.0}, "revert"),   # a big win does not buy a regression
                 ({"speed": 150.0, "mem": 104.0}, "keep")]     # a regression within the margin is no regression
        for avgs, want in cases:
            v, verdicts = pareto.judge(avgs, inc, [SPEED, MEM])
            self.assertEqual(v.decision, want, (avgs, v.reason))
            self.assertEqual(set(verdicts), {"speed", "mem"})
        v, _ = pareto.judge({"speed": 150.0, "mem": 106.0}, inc, [SPEED, MEM])
        self.assertIn("worse on mem", v.reason)
        self.assertEqual((v.avg, v.delta), (150.0, 50.0))

    def test_averages_use_score_for_the_primary(self):
        t = trials({"score": 1.0, "mem": 10.0}, {"score": 3.0, "mem": 20.0})
        self.assertEqual(pareto.averages(t, ["score", "mem"]), {"score": 2.0, "mem": 15.0})

    def test_frontier_keeps_only_undominated_points(self):
        objs = [SPEED, MEM]
        f = pareto.update_frontier([], {"iter": 0, "metrics": {"speed": 10, "mem": 10}}, objs)
        f = pareto.update_frontier(f, {"iter": 1, "metrics": {"speed": 12, "mem": 11}}, objs)   # trade-off
        self.assertEqual([p["iter"] for p in f], [0, 1])
        f = pareto.update_frontier(f, {"iter": 2, "metrics": {"speed": 12, "mem": 9}}, objs)    # dominates both
        self.assertEqual([p["iter"] for p in f], [2])
        f = pareto.update_frontier(f, {"iter": 3, "metrics": {"speed": 11, "mem": 9}}, objs)    # dominated
        self.assertEqual([p["iter"] for p in f], [2])
        f = pareto.update_frontier(f, {"iter": 4, "metrics": {"speed": 12, "mem": 9}}, objs)    # equal: both stay
        self.assertEqual([p["iter"] for p in f], [2, 4])


GOOD = {"run_command": "python3 bench.py", "direction": "max", "metric_name": "score", "report_source": "stdout"}


class FlagsTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, self.root)

    def build(self, **over):
        return config.build({**GOOD, **over}, self.root)

    def test_metrics_margins_and_objectives(self):
        c = self.build(metric=["mem:min:2%", "lat:min"], min_improvement="0.5")
        self.assertEqual([(n, d, str(m)) for n, d, m in c.objectives],
                         [("score", "max", "0.5"), ("mem", "min", "2%"), ("lat", "min", "0.5")])
        back = config.from_dict(c.to_dict())
        self.assertEqual(back.objectives, c.objectives)
        self.assertEqual(back.metrics, c.metrics)

    def test_metric_alone_defines_the_primary(self):
        c = config.build({"run_command": "x", "report_source": "stdout", "metric": ["acc:max:1%", "mem:min"]}, self.root)
        self.assertEqual((c.metric_name, c.direction, str(c.min_improvement)), ("acc", "max", "1%"))
        self.assertEqual([(n, str(m)) for n, _, m in c.objectives], [("acc", "1%"), ("mem", "0")])

    def test_limits_guard_holdout_round_trip(self):
        c = self.build(constraint=["correctness>=100"], warn=["p95<=50"], guard_command="make test",
                       guard_metric=["passed>=10"], guard_timeout_seconds=60.0, holdout_command="python3 holdout.py")
        back = config.from_dict(c.to_dict())
        self.assertEqual(back, c)
        self.assertEqual(c.extra_names, ["correctness", "p95"])

    def test_flag_mistakes(self):
        for over, fragment in (({"metric": ["mem"]}, "--metric"), ({"metric": ["mem:up"]}, "--metric"),
                               ({"metric": ["mem:min:x"]}, "margin"), ({"metric": ["score:min"]}, "repeat"),
                               ({"constraint": ["c=1"]}, "--constraint"), ({"guard_metric": ["a>1"]}, "--guard-command"),
                               ({"guard_command": "t", "guard_timeout_seconds": 0.0}, "--guard-timeout-seconds")):
            with self.assertRaises(UsageError) as cm:
                self.build(**over)
            self.assertIn(fragment, str(cm.exception), over)

    def test_old_config_without_integrity_fields_loads(self):
        d = self.build().to_dict()
        for key in ("metrics", "constraints", "warnings", "guard_command", "guard_metrics", "holdout_command",
                    "auto_protected", "guard_timeout_seconds"):
            d.pop(key)
        c = config.from_dict(d)
        self.assertEqual((c.metrics, c.constraints, c.guard_command, len(c.objectives)), ((), (), None, 1))


if __name__ == "__main__":
    unittest.main()
