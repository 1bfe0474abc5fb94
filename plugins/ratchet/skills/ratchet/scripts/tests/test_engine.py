"""The loop end to end against real temporary git repositories."""

import json
import os
import unittest

from tests.util import BENCH, INIT, RepoTest, cli, git, make_repo, read, write


class InitTest(RepoTest):
    def test_init_creates_branch_excludes_state_and_records_start(self):
        start = git(self.repo, "rev-parse", "HEAD").strip()
        out = self.run_ok(*INIT)
        branch = git(self.repo, "branch", "--show-current").strip()
        self.assertTrue(branch.startswith("ratchet/"), branch)
        cfg = json.loads(read(self.repo, ".ratchet/config.json"))
        self.assertEqual(cfg["start_commit"], start)
        self.assertEqual(cfg["original_branch"], "main")
        self.assertIn("bench.py", cfg["protect"])
        self.assertIn("/.ratchet/", read(self.repo, ".git/info/exclude"))
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".gitignore")))
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        self.assertIn("next: run `ratchet.py baseline`", out)

    def test_refuses_uncommitted_tracked_changes_and_changes_nothing(self):
        self.set_value(11)
        err = self.run_fail(*INIT)
        self.assertIn("uncommitted changes", err)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet")))
        self.assertEqual(git(self.repo, "branch", "--show-current").strip(), "main")

    def test_untracked_files_do_not_block_init(self):
        write(self.repo, "notes.txt", "mine")
        self.run_ok(*INIT)

    def test_no_branch_stays(self):
        self.run_ok(*INIT, "--no-branch")
        self.assertEqual(git(self.repo, "branch", "--show-current").strip(), "main")

    def test_named_branch_and_existing_branch_refused(self):
        self.run_ok(*INIT, "--branch", "exp/one")
        self.assertEqual(git(self.repo, "branch", "--show-current").strip(), "exp/one")
        git(self.repo, "checkout", "-q", "main")
        err = self.run_fail(*INIT, "--branch", "exp/one")
        self.assertIn("already exists", err)

    def test_second_init_archives_previous_run(self):
        self.start()
        old = json.loads(read(self.repo, ".ratchet/config.json"))["run_id"]
        git(self.repo, "checkout", "-q", "main")
        out = self.run_ok(*INIT)
        self.assertIn(f"archived the previous run to .ratchet/runs/{old}", out)
        self.assertTrue(os.path.exists(os.path.join(self.repo, ".ratchet", "runs", old, "results.jsonl")))
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "results.jsonl")))

    def test_environment_mistakes(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            code, _, err = cli(*INIT, cwd=d)
            self.assertEqual(code, 2)
            self.assertIn("not inside a git repository", err)
        empty = make_repo(self, {}, commit=False)
        code, _, err = cli(*INIT, cwd=empty)
        self.assertEqual((code, "no commits" in err), (2, True), err)
        git(self.repo, "checkout", "-q", "--detach")
        self.assertIn("detached", self.run_fail(*INIT))


class LoopTest(RepoTest):
    def test_baseline_then_keep_commits_only_the_change(self):
        out = self.start("--decision", "mean")
        self.assertIn("baseline: score 10", out)
        self.set_value(12)
        out = self.run_ok("iterate", "--hypothesis", "bigger is better", "--description", "value 12")
        self.assertIn("iter 1: KEEP", out)
        self.assertTrue(out.rstrip().endswith("next: continue"))
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["kept"], rec["avg"], rec["trial_scores"]), ("keep", True, 12.0, [12.0]))
        self.assertEqual(rec["sha"], git(self.repo, "rev-parse", "HEAD").strip())
        self.assertIn("Ratchet-Iteration: 1", git(self.repo, "log", "-1", "--format=%B"))
        self.assertEqual(git(self.repo, "show", "--name-only", "--format=", "HEAD").split(), ["value.txt"])
        self.assertEqual(self.state()["best"], 12.0)

    def test_revert_restores_and_keeps_user_untracked_files(self):
        write(self.repo, "notes.txt", "user notes")
        self.start()
        self.set_value(5)
        write(self.repo, "helper.py", "x = 1\n")
        out = self.run_ok("iterate", "--hypothesis", "smaller")
        self.assertIn("REVERT", out)
        self.assertEqual(read(self.repo, "value.txt"), "10\n")
        self.assertFalse(os.path.exists(os.path.join(self.repo, "helper.py")))
        self.assertEqual(read(self.repo, "notes.txt"), "user notes")
        rec = self.records()[-1]
        patch = read(self.repo, os.path.join(".ratchet", rec["patch"]))
        self.assertIn("helper.py", patch)
        self.assertIn("+5", patch)
        git(self.repo, "apply", "--check", os.path.join(".ratchet", rec["patch"]))

    def test_new_editable_file_is_committed_on_keep(self):
        self.files = None
        self.start()
        self.set_value(20)
        write(self.repo, "src/new.py", "y = 2\n")
        self.run_ok("iterate", "--hypothesis", "h")
        self.assertEqual(sorted(git(self.repo, "show", "--name-only", "--format=", "HEAD").split()),
                         ["src/new.py", "value.txt"])

    def test_tie_is_a_revert_and_margin_applies(self):
        self.start("--min-improvement", "10%")
        self.set_value(10)
        write(self.repo, "other.txt", "x")
        self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "same"))
        self.set_value(10.9)
        self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "under margin"))
        self.set_value(11.1)
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "over margin"))

    def test_protected_edit_is_tampered_and_out_of_scope_edit_is_out_of_scope(self):
        self.start("--editable", "value.txt")
        write(self.repo, "bench.py", BENCH + "print('score: 999')\n")
        out = self.run_ok("iterate", "--hypothesis", "cheat")
        self.assertIn("TAMPERED", out)
        self.assertIn("bench.py (edited)", out)
        self.assertEqual(read(self.repo, "bench.py"), BENCH)
        write(self.repo, "README", "x")
        git(self.repo, "add", "README")
        write(self.repo, "stray.txt", "y")
        out = self.run_ok("iterate", "--hypothesis", "stray")
        self.assertIn("outside the editable scope", out)
        self.assertFalse(os.path.exists(os.path.join(self.repo, "stray.txt")))
        self.assertFalse(os.path.exists(os.path.join(self.repo, "README")))
        self.assertEqual([r["decision"] for r in self.records()], ["baseline", "tampered", "out-of-scope"])
        self.assertEqual(self.records()[-1]["out_of_scope"], ["README", "stray.txt"])

    def test_no_change(self):
        self.start()
        out = self.run_ok("iterate", "--hypothesis", "nothing")
        self.assertIn("NO-CHANGE", out)
        self.assertEqual(self.records()[-1]["decision"], "no-change")

    def test_agent_self_commit_is_measured_not_left_on_branch(self):
        self.start()
        base = git(self.repo, "rev-parse", "HEAD").strip()
        self.set_value(3)
        git(self.repo, "commit", "-qam", "agent did this")
        out = self.run_ok("iterate", "--hypothesis", "self commit")
        self.assertIn("REVERT", out)
        self.assertIn("committed", self.records()[-1]["reason"])
        self.assertEqual(git(self.repo, "rev-parse", "HEAD").strip(), base)
        self.assertEqual(read(self.repo, "value.txt"), "10\n")
        self.set_value(30)
        git(self.repo, "commit", "-qam", "agent again")
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "self commit 2"))
        self.assertEqual(git(self.repo, "rev-list", "--count", f"{base}..HEAD").strip(), "1")
        self.assertIn("Ratchet-Iteration: 2", git(self.repo, "log", "-1", "--format=%B"))

    def test_crash_nan_and_missing_metric_are_failures_not_zero(self):
        self.start("--max-consecutive-crashes", "5")
        for value, word in (("nan", "not-finite"), ("inf", "not-finite"), ("oops", "no")):
            self.set_value(value)
            out = self.run_ok("iterate", "--hypothesis", value)
            self.assertIn("CRASH", out)
        self.assertEqual(read(self.repo, "value.txt"), "10\n")
        self.assertTrue(all(r["avg"] is None for r in self.records()[1:]))
        write(self.repo, "value.txt", "")
        os.remove(os.path.join(self.repo, "value.txt"))
        out = self.run_ok("iterate", "--hypothesis", "deleted")
        self.assertIn("exit code 1", out)
        self.assertTrue(os.path.exists(os.path.join(self.repo, "value.txt")))

    def test_trials_are_averaged_and_stop_at_first_failure(self):
        self.files = None
        write(self.repo, "bench.py", "import os, random\nprint('score:', float(open('value.txt').read()) + (1 if os.path.exists('flip') else 0))\n")
        git(self.repo, "commit", "-qam", "bench")
        self.start("--trials", "3", "--decision", "mean")
        self.assertEqual(self.records()[0]["trial_scores"], [10.0, 10.0, 10.0])

    def test_timeout_kills_the_tree_and_records_timeout(self):
        write(self.repo, "bench.py", "import subprocess, time\nif open('value.txt').read().strip() == 'hang':\n"
                                     "    subprocess.Popen(['sleep', '300'])\n    time.sleep(300)\n"
                                     "print('score:', open('value.txt').read().strip())\n")
        git(self.repo, "commit", "-qam", "hang bench")
        self.start("--trial-timeout-seconds", "1")
        self.set_value("hang")
        out = self.run_ok("iterate", "--hypothesis", "hangs")
        self.assertIn("TIMEOUT", out)
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "timeout")
        self.assertNotIn("survivors", rec["trials"][0])


class StopConditionTest(RepoTest):
    def test_iteration_cap(self):
        self.start("--iterations", "2")
        self.set_value(11)
        self.assertTrue(self.run_ok("iterate", "--hypothesis", "a").rstrip().endswith("next: continue"))
        self.set_value(12)
        out = self.run_ok("iterate", "--hypothesis", "b")
        self.assertIn("next: stop (iteration cap reached (2))", out)
        self.assertIn("stopped", self.run_fail("iterate", "--hypothesis", "c"))

    def test_threshold(self):
        self.start("--threshold", "15")
        self.set_value(16)
        self.assertIn("next: stop (threshold reached", self.run_ok("iterate", "--hypothesis", "a"))

    def test_threshold_min_direction(self):
        self.run_ok(*[a if a != "max" else "min" for a in INIT], "--threshold", "5")
        self.run_ok("baseline")
        self.set_value(6)
        self.assertIn("next: continue", self.run_ok("iterate", "--hypothesis", "a"))
        self.set_value(5)
        self.assertIn("next: stop (threshold reached", self.run_ok("iterate", "--hypothesis", "b"))

    def test_patience(self):
        self.start("--patience", "2")
        self.set_value(1)
        self.assertIn("next: continue", self.run_ok("iterate", "--hypothesis", "a"))
        self.set_value(2)
        self.assertIn("next: stop (patience exhausted", self.run_ok("iterate", "--hypothesis", "b"))

    def test_crash_budget(self):
        self.start("--max-consecutive-crashes", "2")
        self.set_value("x")
        self.assertIn("next: continue", self.run_ok("iterate", "--hypothesis", "a"))
        self.set_value("y")
        self.assertIn("next: stop (crash budget exhausted", self.run_ok("iterate", "--hypothesis", "b"))

    def test_stop_returns_to_original_branch_and_saves_unfinished_work(self):
        self.start()
        self.set_value(50)
        self.run_ok("iterate", "--hypothesis", "keep")
        branch = git(self.repo, "branch", "--show-current").strip()
        self.set_value(7)
        out = self.run_ok("stop")
        self.assertIn("unfinished change was saved", out)
        self.assertEqual(git(self.repo, "branch", "--show-current").strip(), "main")
        self.assertEqual(read(self.repo, "value.txt"), "10\n")
        self.assertEqual(git(self.repo, "show", f"{branch}:value.txt"), "50\n")
        self.assertEqual(self.state()["stop"], "stopped by user")


class GranularTest(RepoTest):
    files = {"bench.py": "print('the result is', open('value.txt').read().strip(), 'units')\n", "value.txt": "10\n"}

    def test_run_trial_score_decide(self):
        self.run_ok(*INIT, "--trials", "2", "--metric-pattern", "result is ([0-9.]+)")
        self.run_ok("baseline")
        self.set_value(12)
        out = self.run_ok("run-trial")
        self.assertIn("score = 12.0", out)
        err = self.run_fail("decide", "--hypothesis", "h")
        self.assertIn("1 of 2 trials", err)
        self.run_ok("run-trial")
        self.run_ok("score", "13")
        out = self.run_ok("decide", "--hypothesis", "h")
        self.assertIn("KEEP", out)
        self.assertEqual(self.records()[-1]["trial_scores"], [12.0, 13.0])

    def test_score_rejects_nan_and_missing_trial(self):
        self.run_ok(*INIT, "--metric-pattern", "result is ([0-9.]+)")
        self.run_ok("baseline")
        self.assertIn("no trial to score", self.run_fail("score", "3"))
        self.assertIn("not finite", self.run_fail("score", "nan"))


class ReportFileTest(RepoTest):
    files = {"bench.py": "import sys\nv = open('value.txt').read().strip()\n"
                         "if v != 'skip':\n    open('out/report.txt', 'w').write('score: ' + v)\n",
             "value.txt": "10\n", "out/.keep": ""}

    def test_stale_report_file_is_never_read(self):
        self.run_ok(*INIT[:-4], "--report-source", "out/report.txt", "--protect", "bench.py")
        self.run_ok("baseline")
        self.set_value("skip")
        out = self.run_ok("iterate", "--hypothesis", "writes nothing")
        self.assertIn("CRASH", out)
        self.assertIn("did not write out/report.txt", self.records()[-1]["reason"])

    def test_report_path_outside_repo_rejected(self):
        self.assertIn("leaves the repository", self.run_fail(*INIT[:-4], "--report-source", "../x.txt"))


class RecoveryTest(RepoTest):
    def test_decided_keep_is_finished_by_next_command(self):
        from ratchetlib.io import workspace
        from ratchetlib.keep import candidate
        self.start()
        self.set_value(40)
        run = workspace.open_run(self.repo)
        cand = candidate.candidate(run)
        rec = {"iter": 1, "hypothesis": "h", "description": "", "trial_scores": [40.0], "avg": 40.0,
               "decision": "keep", "kept": True, "sha": None, "incumbent": 10.0, "delta": 30.0,
               "timestamp": "t", "reason": "kept", "trials": [], "changed": cand.paths, "patch": None,
               "critic": None, "seconds": 0}
        run.store.write_current({"iter": 1, "phase": "decided", "decision": rec, "candidate": cand.to_dict()})
        out = self.run_ok("status")  # the first command after the kill, status included, recovers
        self.assertIn("recovered: finished iteration 1 (keep)", out)
        self.assertIn("last recovery", self.run_ok("status"))  # and later ones still tell
        self.set_value(40)
        out = self.run_ok("iterate", "--hypothesis", "next")
        self.assertNotIn("recovered:", out)
        recs = self.records()
        self.assertEqual([r["iter"] for r in recs], [0, 1, 2])
        self.assertEqual(recs[1]["sha"], git(self.repo, "rev-parse", "HEAD").strip())

    def test_torn_record_line_is_repaired(self):
        self.start()
        with open(os.path.join(self.repo, ".ratchet", "results.jsonl"), "a") as f:
            f.write('{"iter": 1, "decis')
        self.set_value(11)
        out = self.run_ok("iterate", "--hypothesis", "h")
        self.assertIn("torn last line", out)
        self.assertEqual([r["iter"] for r in self.records()], [0, 1])

    def test_lock_refuses_live_holder_and_takes_over_stale(self):
        self.start()
        lock = os.path.join(self.repo, ".ratchet", "lock")
        import socket
        with open(lock, "w") as f:
            json.dump({"pid": os.getppid(), "host": socket.gethostname(), "verb": "iterate"}, f)
        self.assertIn("another ratchet command", self.run_fail("iterate", "--hypothesis", "h"))
        with open(lock, "w") as f:
            json.dump({"pid": 2 ** 22 + 12345, "host": socket.gethostname(), "verb": "iterate"}, f)
        self.set_value(11)
        self.run_ok("iterate", "--hypothesis", "h")
        self.assertFalse(os.path.exists(lock))


if __name__ == "__main__":
    unittest.main()
