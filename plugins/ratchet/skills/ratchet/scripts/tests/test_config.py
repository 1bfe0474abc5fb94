"""Config validation: every mistake is a one-line UsageError; round-trip."""

import os
import tempfile
import unittest

from ratchetlib.core import config
from ratchetlib.core.errors import UsageError

GOOD = {"run_command": "python3 bench.py", "direction": "max", "metric_name": "score",
        "report_source": "stdout", "trials": 1, "iterations": 20, "patience": 0,
        "max_consecutive_crashes": 3, "min_improvement": "0"}


class BuildTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, self.root)

    def build(self, **over):
        return config.build({**GOOD, **over}, self.root)

    def bad(self, fragment, **over):
        with self.assertRaises(UsageError) as cm:
            self.build(**over)
        self.assertIn(fragment, str(cm.exception))
        self.assertNotIn("\n", str(cm.exception))

    def test_defaults_and_always_protected(self):
        c = self.build()
        self.assertEqual((c.trials, c.iterations, c.patience, c.max_consecutive_crashes), (1, 20, 0, 3))
        self.assertEqual(c.protect, (".ratchet",))
        self.assertTrue(c.better(2, 1))
        self.assertFalse(self.build(direction="min").better(2, 1))

    def test_each_mistake(self):
        self.bad("--run-command", run_command="  ")
        self.bad("--direction", direction="up")
        self.bad("--metric-name", metric_name="two words")
        self.bad("--trials", trials=0)
        self.bad("--trials", trials=-3)
        self.bad("--iterations", iterations=0)
        self.bad("--patience", patience=-1)
        self.bad("--max-consecutive-crashes", max_consecutive_crashes=0)
        self.bad("--trial-timeout-seconds", trial_timeout_seconds=0.0)
        self.bad("--trial-timeout-seconds", trial_timeout_seconds=-5.0)
        self.bad("--threshold", threshold=float("nan"))
        self.bad("--min-improvement", min_improvement="abc")
        self.bad("--min-improvement", min_improvement="-1%")
        self.bad("leaves the repository", report_source="../r.txt")
        self.bad("outside the repository", report_source="/etc/passwd")
        self.bad("capture group", metric_pattern="[0-9]+")
        self.bad("not a valid regular expression", metric_pattern="(")
        self.bad("cannot be read", instructions_file="missing.md")
        self.bad("also protected", editable=["bench.py"], protect=["bench.py"])
        self.bad("also protected", editable=["src/a.py"], protect=["src"])

    def test_report_path_and_instructions_file_are_protected(self):
        with open(os.path.join(self.root, "rules.md"), "w") as f:
            f.write("Be honest.\n")
        c = self.build(report_source="./out/r.json", instructions="Rule one.", instructions_file="rules.md")
        self.assertEqual(c.report_path, "out/r.json")
        self.assertIn("out/r.json", c.protect)
        self.assertIn("rules.md", c.protect)
        self.assertEqual(c.instructions, "Rule one.\nBe honest.")

    def test_margin(self):
        self.assertEqual(config.parse_margin("2%"), config.Margin(2.0, True))
        self.assertEqual(config.parse_margin("0.5"), config.Margin(0.5, False))
        self.assertAlmostEqual(config.parse_margin("2%").over(-50.0), 1.0)
        self.assertEqual(config.parse_margin("0.5").over(1000.0), 0.5)

    def test_round_trip(self):
        c = self.build(editable=["src"], protect=["tests"], min_improvement="1.5%", threshold=3.0)
        self.assertEqual(config.from_dict(c.to_dict()), c)

    def test_newer_format_refused(self):
        d = self.build().to_dict()
        d["format"] = 99
        with self.assertRaises(UsageError):
            config.from_dict(d)


if __name__ == "__main__":
    unittest.main()
