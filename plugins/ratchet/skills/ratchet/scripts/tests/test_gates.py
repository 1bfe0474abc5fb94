"""Constraints, warnings, the guard, several metrics and the holdout, through the CLI."""

import json
import os

from tests.util import INIT, RepoTest, TRIAL_PY, git, make_repo, read, write

# Prints score (value.txt), and correctness / mem when their files hold a number.
BENCH = """
def val(name):
    try:
        return open(name).read().strip()
    except FileNotFoundError:
        return ''
print('score:', val('value.txt'))
for name, key in (('correct.txt', 'correctness'), ('mem.txt', 'mem')):
    if val(name) not in ('', 'none'):
        print(key + ':', val(name))
"""
# The guard: the "test suite" passes while value.txt < 50; reports how many tests passed.
CHECK = """
import sys
v = float(open('value.txt').read())
print('checking value', v)
print('passed:', 3 if v < 40 else 2)
sys.exit(0 if v < 50 else 1)
"""
FILES = {"bench.py": BENCH, "check.py": CHECK, "value.txt": "10\n", "correct.txt": "100\n", "mem.txt": "50\n"}
BASE = INIT[:-2]  # bench.py is auto-protected: the run command names it


class GateTest(RepoTest):
    files = FILES

    def iterate(self, expect, **files):
        for name, text in files.items():
            write(self.repo, name, f"{text}\n")
        out = self.run_ok("iterate", "--hypothesis", "h")
        self.assertIn(f": {expect.upper()}", out.splitlines()[0], out)
        return self.records()[-1], out


class ConstraintTest(GateTest):
    def test_a_violation_or_a_missing_metric_reverts(self):
        self.run_ok(*BASE, "--constraint", "correctness>=100", "--trials", "2", "--decision", "mean")
        self.run_ok("baseline")
        rec, out = self.iterate("constraint", **{"value.txt": 20, "correct.txt": 99})
        self.assertIn("constraint correctness>=100 violated: 99 in trial 1", out)
        self.assertEqual((read(self.repo, "value.txt"), read(self.repo, "correct.txt")), ("10\n", "100\n"))
        self.assertEqual(rec["metrics"], {"score": 20.0, "correctness": 99.0})
        self.assertEqual(rec["trials"][0]["metrics"], {"score": 20.0, "correctness": 99.0})
        rec, out = self.iterate("constraint", **{"value.txt": 20, "correct.txt": "none"})
        self.assertIn("metric correctness missing in trial 1", out)
        self.iterate("keep", **{"value.txt": 20, "correct.txt": 100})

    def test_each_operator_end_to_end(self):
        for limit, ok_value, bad_value in (("mem<=50", 50, 51), ("mem<50.5", 50, 50.5), ("mem>=50", 50, 49),
                                           ("mem>49", 50, 49)):
            with self.subTest(limit=limit):
                self.repo = make_repo(self, FILES)
                self.run_ok(*BASE, "--constraint", limit)
                self.run_ok("baseline")
                self.iterate("constraint", **{"value.txt": 20, "mem.txt": bad_value})
                self.iterate("keep", **{"value.txt": 20, "mem.txt": ok_value})

    def test_the_baseline_must_meet_the_constraints(self):
        self.run_ok(*BASE, "--constraint", "correctness>100")
        self.assertIn("the unmodified code fails constraint correctness>100 violated: 100", self.run_fail("baseline"))

    def test_warnings_are_recorded_and_shown_never_reverted(self):
        self.run_ok(*BASE, "--warn", "mem<=60", "--warn", "correctness>=100")
        self.run_ok("baseline")
        rec, out = self.iterate("keep", **{"value.txt": 20, "mem.txt": 70})
        self.assertEqual(rec["warnings"], ["mem<=60 (got 70)"])
        self.assertIn("warnings (soft limits, not a revert): mem<=60 (got 70)", out)
        self.assertIn("warnings at iter 1: mem<=60 (got 70)", self.run_ok("status"))
        self.assertEqual(read(self.repo, "mem.txt"), "70\n")


class GuardTest(GateTest):
    def start_guard(self, *extra):
        self.run_ok(*BASE, "--guard-command", f"{TRIAL_PY} check.py", *extra)
        self.run_ok("baseline")

    def test_guard_pass_and_fail(self):
        self.start_guard()
        rec, _ = self.iterate("keep", **{"value.txt": 20})
        self.assertEqual(rec["guard"]["status"], "ok")
        rec, out = self.iterate("guard-failed", **{"value.txt": 60})
        self.assertIn("guard exited with code 1", rec["reason"])
        self.assertIn("guard output: ratchet.py tail --guard --iter 2; fix and re-apply: git apply .ratchet/patches/iter-0002.patch", out)
        self.assertEqual(read(self.repo, "value.txt"), "20\n")
        git(self.repo, "apply", "--check", os.path.join(".ratchet", rec["patch"]))
        self.assertIn("checking value 60.0", self.run_ok("tail", "--guard"))
        self.assertIn("checking value 20.0", self.run_ok("tail", "--guard", "--iter", "1"))

    def test_guard_runs_only_on_would_be_keeps(self):
        self.start_guard()
        rec, _ = self.iterate("revert", **{"value.txt": 5})
        self.assertNotIn("guard", rec)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "reports", "iter-0001-guard.txt")))
        self.assertTrue(os.path.exists(os.path.join(self.repo, ".ratchet", "reports", "iter-0000-guard.txt")))

    def test_a_guard_that_hangs_is_killed_and_fails(self):
        write(self.repo, "check.py", "import time\nif open('value.txt').read().strip() == '20':\n    time.sleep(60)\n")
        git(self.repo, "commit", "-qam", "slow guard")
        self.start_guard("--guard-timeout-seconds", "0.5")
        rec, _ = self.iterate("guard-failed", **{"value.txt": 20})
        self.assertEqual(rec["guard"]["status"], "timeout")
        self.assertIn("guard timed out after 0.5s", rec["reason"])

    def test_guard_metric(self):
        self.start_guard("--guard-metric", "passed>=3")
        self.iterate("keep", **{"value.txt": 20})
        rec, _ = self.iterate("guard-failed", **{"value.txt": 45})
        self.assertIn("guard metric passed>=3 not met (2)", rec["reason"])

    def test_a_guard_that_fails_on_the_unmodified_code_is_refused_at_baseline(self):
        self.set_value(55)
        git(self.repo, "commit", "-qam", "too big")
        self.run_ok(*BASE, "--guard-command", f"{TRIAL_PY} check.py")
        self.assertIn("the guard fails on the unmodified code: guard exited with code 1", self.run_fail("baseline"))

    def test_a_guard_run_that_rewrites_the_harness_is_tampering(self):
        write(self.repo, "sol.py", "")
        git(self.repo, "add", "sol.py")
        git(self.repo, "commit", "-qm", "sol")
        self.run_ok(*BASE, "--guard-command", f"{TRIAL_PY} -c 'import sol'")
        self.run_ok("baseline")
        rec, _ = self.iterate("tampered", **{"value.txt": 20, "sol.py": "open('bench.py', 'a').write('#')"})
        self.assertIn("while the guard ran", rec["reason"])
        self.assertEqual(read(self.repo, "bench.py"), BENCH)


class SeveralMetricsTest(GateTest):
    def test_better_on_one_worse_on_none(self):
        self.run_ok(*BASE, "--metric", "mem:min:10%")
        self.run_ok("baseline")
        rec, out = self.iterate("keep", **{"value.txt": 20})                      # score better, mem same
        self.assertEqual(rec["compare"], {"score": "better", "mem": "same"})
        self.assertIn("metrics: score 20 better · mem 50 same", out)
        self.iterate("revert", **{"value.txt": 30, "mem.txt": 60})                 # mem worse beyond 10%
        self.iterate("keep", **{"mem.txt": 40})                                    # mem better only
        self.iterate("revert", **{"mem.txt": 39})                                  # within the margin
        self.iterate("keep", **{"value.txt": 25, "mem.txt": 43})                   # mem worse within margin
        st = json.loads(self.run_ok("status", "--json"))
        self.assertEqual([p["iter"] for p in st["pareto"]], [3, 5])
        self.assertEqual(st["pareto"][-1]["metrics"], {"score": 25.0, "mem": 43.0})
        self.assertIn("pareto frontier: 2 kept result(s)", self.run_ok("status"))

    def test_a_metric_missing_in_a_trial_is_a_crash(self):
        self.run_ok(*BASE, "--metric", "mem:min")
        self.run_ok("baseline")
        rec, out = self.iterate("crash", **{"value.txt": 20, "mem.txt": "none"})
        self.assertIn("metric mem: no 'mem: value' line", out)

    def test_metric_flag_alone(self):
        self.run_ok("init", "--run-command", f"{TRIAL_PY} bench.py", "--report-source", "stdout",
                    "--metric", "score:max", "--metric", "mem:min")
        self.assertIn("metrics: score 10 · mem 50", self.run_ok("baseline"))


HOLDOUT = "print('score:', 2 * float(open('value.txt').read()) + float(open('data/shift.txt').read()))\n"


class HoldoutTest(GateTest):
    files = {**FILES, "holdout.py": HOLDOUT, ".gitignore": "data/\n"}

    def setUp(self):
        super().setUp()
        write(self.repo, "data/shift.txt", "1\n")  # git-ignored: must reach the temporary worktree

    def test_runs_at_stop_on_start_and_final_commits_and_stays_hidden_until_then(self):
        self.run_ok(*BASE, "--holdout-command", f"{TRIAL_PY} holdout.py")
        self.run_ok("baseline")
        _, out = self.iterate("keep", **{"value.txt": 12})
        self.assertNotIn("holdout", out)
        self.assertIn("holdout.py", json.loads(read(self.repo, ".ratchet/config.json"))["protect"])
        self.assertIn("holdout: score start 21 -> final 25", self.run_ok("holdout"))  # the user asked for it
        status = self.run_ok("status")
        self.assertIn("holdout: hidden until the run stops", status)
        self.assertNotIn("25", status.replace(self.state()["run_id"], ""))  # (a run id may hold "25")
        self.assertEqual(json.loads(self.run_ok("status", "--json"))["holdout"], {"measured": True, "summary": "hidden until the run stops"})
        self.iterate("keep", **{"value.txt": 13})
        out = self.run_ok("stop")
        self.assertIn("holdout: score start 21 -> final 27 (+28.57%) vs +30.00% re-measured on the benchmark: the gain held", out)
        doc = json.loads(read(self.repo, ".ratchet/holdout.json"))
        self.assertEqual((doc["start"]["avg"], doc["best"]["avg"], doc["held"]), (21.0, 27.0, True))
        self.assertEqual(doc["start"]["sha"], json.loads(read(self.repo, ".ratchet/config.json"))["start_commit"])
        self.assertIn("the gain held", self.run_ok("status"))
        self.assertEqual(len(git(self.repo, "worktree", "list").splitlines()), 1)
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")

    def test_a_stop_condition_runs_it_and_the_verdict_only_says_so(self):
        write(self.repo, "holdout.py", "print('score: 7')\n")
        git(self.repo, "commit", "-qam", "flat holdout")
        self.run_ok(*BASE, "--holdout-command", f"{TRIAL_PY} holdout.py", "--iterations", "1")
        self.run_ok("baseline")
        _, out = self.iterate("keep", **{"value.txt": 12})
        self.assertIn("holdout: evaluated on the start and final commits", out)
        self.assertNotIn("7", out.split("holdout:")[1])
        doc = json.loads(read(self.repo, ".ratchet/holdout.json"))
        self.assertIs(doc["held"], False)
        self.assertIn("did NOT hold", self.run_ok("status"))

    def test_nothing_kept_means_nothing_to_run(self):
        write(self.repo, "holdout.py", "raise SystemExit('the holdout must not run')\n")
        git(self.repo, "commit", "-qam", "failing holdout")
        self.run_ok(*BASE, "--holdout-command", f"{TRIAL_PY} holdout.py")
        self.run_ok("baseline")
        self.iterate("revert", **{"value.txt": 5})
        self.assertIn("holdout: no change was kept", self.run_ok("stop"))
        self.assertIsNone(json.loads(read(self.repo, ".ratchet/holdout.json"))["held"])

    def test_a_failing_holdout_is_reported_not_fatal(self):
        write(self.repo, "holdout.py", "raise SystemExit(3)\n")
        git(self.repo, "commit", "-qam", "failing holdout")
        self.run_ok(*BASE, "--holdout-command", f"{TRIAL_PY} holdout.py")
        self.run_ok("baseline")
        self.iterate("keep", **{"value.txt": 12})
        out = self.run_ok("stop")
        self.assertIn("holdout: holdout failed on the start commit: exit code 3", out)
        self.assertEqual(git(self.repo, "branch", "--show-current").strip(), "main")

    def test_a_flooding_holdout_keeps_only_head_and_tail(self):
        from ratchetlib.io import clip
        write(self.repo, "holdout.py", "import sys\nsys.stdout.write(''.join('noise %07d\\n' % i for i in range(500000)))\n"
                                       "sys.stderr.write('e' * 80 + '\\n')\nprint('score: 7')\n")
        git(self.repo, "commit", "-qam", "flooding holdout")
        self.run_ok(*BASE, "--holdout-command", f"{TRIAL_PY} holdout.py")
        self.run_ok("baseline")
        self.iterate("keep", **{"value.txt": 12})
        self.assertIn("holdout: score start 7 -> final 7", self.run_ok("holdout"))  # read before the clip
        doc = json.loads(read(self.repo, ".ratchet/holdout.json"))
        for side in ("start", "best"):
            t = doc[side]["trials"][0]
            self.assertEqual(list(t["clipped"]), ["out"])  # stderr is small: untouched
            self.assertGreater(t["clipped"]["out"], 0)
            out = read(self.repo, f".ratchet/holdout/{side}-trial-01.out")
            self.assertLessEqual(len(out), clip.HEAD + clip.TAIL + clip._SLACK)
            self.assertTrue(out.startswith("noise 0000000\n") and out.endswith("score: 7\n"))
            self.assertIn("bytes cut here", out)

    def test_holdout_verb_needs_a_holdout_command(self):
        self.run_ok(*BASE)
        self.run_ok("baseline")
        self.assertIn("no holdout", self.run_fail("holdout"))
