"""A real, short ratchet loop on examples/train_logreg: the tracker-file source,
a keep of a genuinely better config, a revert of a worse one, the checkpoint
of the best run in .ratchet/best/, all through the CLI."""

import json
import os
import shutil
import unittest

from tests.test_sources import EXAMPLE
from tests.util import RepoTest, TRIAL_PY, git, read

BETTER = {"LEARNING_RATE = 0.0001": "LEARNING_RATE = 0.1", "STANDARDIZE = False": "STANDARDIZE = True"}


@unittest.skipUnless(EXAMPLE.is_dir(), "examples/ is not shipped with an installed plugin")
class ExampleLoopTest(RepoTest):
    files = {"placeholder": ""}

    def setUp(self):
        super().setUp()
        shutil.copytree(EXAMPLE, self.repo, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("metrics.json*", "checkpoint.json*", "__pycache__"))
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "the example trainer")

    def edit_config(self, replacements):
        text = read(self.repo, "config.py")
        for old, new in replacements.items():
            self.assertIn(old, text)
            text = text.replace(old, new)
        with open(os.path.join(self.repo, "config.py"), "w") as f:
            f.write(text)

    def test_keep_a_better_config_revert_a_worse_one(self):
        out = self.run_ok("init", "--run-command", f"{TRIAL_PY} train.py", "--report-source", "jsonl:metrics.jsonl#val_loss",
                          "--direction", "min", "--metric-name", "val_loss", "--editable", "config.py",
                          "--protect", "train.py", "--trials", "2", "--artifact-glob", "checkpoint.json")
        self.assertIn("metrics.jsonl", out)
        out = self.run_ok("baseline")
        baseline = self.records()[0]["avg"]
        self.assertAlmostEqual(baseline, 0.5696, places=3)
        self.edit_config(BETTER)
        out = self.run_ok("iterate", "--hypothesis", "standardized features take a larger learning rate",
                          "--description", "STANDARDIZE=True, LEARNING_RATE=0.1")
        self.assertIn("iter 1: KEEP  val_loss", out)
        rec = self.records()[-1]
        self.assertLess(rec["avg"], baseline - 0.1)
        self.assertEqual([t["source_status"] for t in rec["trials"]], ["ok", "ok"])
        self.assertEqual(git(self.repo, "show", "--name-only", "--format=", "HEAD").split(), ["config.py"])
        with open(os.path.join(self.repo, ".ratchet", "best", "files", "checkpoint.json")) as f:
            best = json.load(f)
        self.assertEqual((best["config"]["LEARNING_RATE"], best["config"]["STANDARDIZE"]), (0.1, True))
        self.assertEqual(best["val_loss"], rec["avg"])
        self.edit_config({"LEARNING_RATE = 0.1": "LEARNING_RATE = 0.000001"})
        out = self.run_ok("iterate", "--hypothesis", "a tiny step cannot overshoot")
        self.assertIn("iter 2: REVERT", out)
        self.assertIn("LEARNING_RATE = 0.1 ", read(self.repo, "config.py"))
        with open(os.path.join(self.repo, ".ratchet", "best", "best.json")) as f:
            self.assertEqual(json.load(f)["iter"], 1)
        self.assertEqual(self.state()["best"], rec["avg"])


if __name__ == "__main__":
    unittest.main()
