"""`chain`: a follow-up run from a stopped run's best, and `history --all` across the chain."""

import json
import os
import stat
import unittest

from ratchetlib.io import store as storemod
from ratchetlib.core.state import from_json as state_from_json
from tests.util import INIT, RepoTest, git, read


class ChainTest(RepoTest):
    def parent_json(self):
        with open(os.path.join(self.repo, ".ratchet", "parent.json")) as f:
            return json.load(f)

    def test_a_chain_of_two_then_three_runs(self):
        self.start("--decision", "mean")  # no automatic verify: the test plants its own verified result
        run_a = self.state()["run_id"]
        self.set_value(12)
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "a better value"))
        best_sha = git(self.repo, "rev-parse", "HEAD").strip()
        self.set_value(5)
        self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "a worse value"))
        self.assertIn("still going", self.run_fail("chain", "--rationale", "too early"))
        # The verified result of issue 3's `verify`, when the parent has one, is carried over.
        st = self.state()
        st["verified"] = {"score": 11.9, "trials": 5}
        storemod.Store(self.repo).write_state(state_from_json(st))  # through the writer that seals it
        self.run_ok("stop")
        self.assertEqual(git(self.repo, "branch", "--show-current").strip(), "main")

        out = self.run_ok("chain", "--rationale", "confirm with more trials", "--trials", "2")
        self.assertIn(f"chained from run {run_a}: starts at its best 12.0 (iter 1", out)
        self.assertIn("changed flags: --trials", out)
        self.assertIn(f"archived the previous run to .ratchet/runs/{run_a}", out)
        self.assertEqual(git(self.repo, "rev-parse", "HEAD").strip(), best_sha)
        self.assertTrue(git(self.repo, "branch", "--show-current").strip().startswith("ratchet/"))
        self.assertEqual(read(self.repo, "value.txt"), "12\n")
        parent = self.parent_json()
        path = os.path.join(self.repo, ".ratchet", "parent.json")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o444)
        self.assertEqual((parent["parent_run_id"], parent["best"], parent["best_iter"], parent["baseline"]),
                         (run_a, 12.0, 1, 10.0))
        self.assertEqual((parent["start_commit"], parent["chain"], parent["changed_flags"]),
                         (best_sha, [run_a], ["trials"]))
        self.assertEqual(parent["verified"], {"score": 11.9, "trials": 5})
        self.assertEqual(parent["rationale"], "confirm with more trials")
        with open(os.path.join(self.repo, ".ratchet", "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual((cfg["trials"], cfg["metric_name"], cfg["original_branch"]), (2, "score", "main"))
        self.assertEqual(cfg["start_commit"], best_sha)
        self.assertIn("bench.py", cfg["protect"])
        run_b = cfg["run_id"]

        self.assertIn("baseline: score 12", self.run_ok("baseline"))
        self.assertIn("chained from run", self.run_ok("status"))
        self.set_value(15)
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "better still"))
        out = self.run_ok("history", "--all")
        lines = out.splitlines()
        self.assertEqual(lines[0], f"== run {run_a} ==")
        head_b = next(i for i, l in enumerate(lines) if l.startswith(f"== run {run_b}"))
        self.assertIn(f"(chained from {run_a} at its best 12.0: confirm with more trials)", lines[head_b])
        self.assertEqual([l.split()[1] for l in lines[1:head_b]], ["baseline", "keep", "revert"])
        self.assertEqual([l.split()[1] for l in lines[head_b + 1:]], ["baseline", "keep"])
        data = json.loads(self.run_ok("history", "--all", "--json"))
        self.assertEqual([r["run_id"] for r in data], [run_a, run_b])
        self.assertEqual([len(r["records"]) for r in data], [3, 2])

        # A third run continues the chain; its parent.json names both ancestors.
        self.run_ok("stop")
        self.run_ok("chain", "--rationale", "a looser margin", "--min-improvement", "1%")
        self.assertEqual(self.parent_json()["chain"], [run_a, run_b])
        self.assertEqual(read(self.repo, "value.txt"), "15\n")
        data = json.loads(self.run_ok("history", "--all", "--json"))
        self.assertEqual([len(r["records"]) for r in data], [3, 2, 0])
        # A plain init afterwards is not part of the chain.
        self.run_ok("stop")
        self.run_ok(*INIT)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "parent.json")))
        self.assertEqual(len(json.loads(self.run_ok("history", "--all", "--json"))), 1)

    def test_integrity_flags_carry_over(self):
        self.run_ok(*INIT, "--metric", "score2:min:2.5%", "--constraint", "score>=1", "--warn", "score<=1e9",
                    "--guard-command", "true", "--guard-metric", "ok>=0.125", "--guard-timeout-seconds", "7",
                    "--holdout-command", "true")
        self.run_ok("stop")
        from ratchetlib.verbs import chain
        from ratchetlib.core import config
        from ratchetlib.io import workspace
        cfg = workspace.open_run(self.repo).config
        flags = chain.parent_flags(cfg)
        self.assertEqual(flags["metric"], ["score2:min:2.5%"])
        self.assertEqual(flags["constraint"], ["score>=1.0"])
        self.assertEqual(flags["guard_metric"], ["ok>=0.125"])
        rebuilt = config.build({**flags, "run_command": cfg.run_command}, self.repo)
        for field in ("metrics", "constraints", "warnings", "guard_command", "guard_metrics",
                      "guard_timeout_seconds", "holdout_command", "min_improvement"):
            self.assertEqual(getattr(rebuilt, field), getattr(cfg, field), field)

    def test_mistakes(self):
        self.run_ok(*INIT)
        self.assertIn("--rationale", self.run_fail("chain"))
        self.run_ok("stop")
        self.assertIn("no baseline", self.run_fail("chain", "--rationale", "r"))
        self.assertIn("invalid choice", self.run_fail("chain", "--rationale", "r", "--direction", "up"))


if __name__ == "__main__":
    unittest.main()
