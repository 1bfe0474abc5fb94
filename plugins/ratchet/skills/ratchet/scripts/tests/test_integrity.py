"""Integrity end to end through the CLI: tampering, scope, auto-protection."""

import json
import os
import stat
from unittest import mock

from tests.util import BENCH, INIT, RepoTest, TRIAL_PY, git, make_repo, read, write

# bench.py imports the editable sol.py, so candidate code runs inside the benchmark.
SOL_BENCH = {"bench.py": "import sol\nprint('score:', sol.score())\n", "sol.py": "def score():\n    return 10\n",
             "value.txt": "10\n"}
INIT_SOL = ["init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
            "--report-source", "stdout"]


class TamperTest(RepoTest):
    def iterate(self, expect):
        out = self.run_ok("iterate", "--hypothesis", "h")
        self.assertIn(f": {expect.upper()}", out.splitlines()[0], out)
        return self.records()[-1]

    def test_edit_restores_the_harness_and_reverts_the_whole_candidate(self):
        self.start()
        write(self.repo, "bench.py", BENCH + "print('score: 999')\n")
        self.set_value(11)
        rec = self.iterate("tampered")
        self.assertEqual(rec["tampered"], {"bench.py": "edited"})
        self.assertEqual((read(self.repo, "bench.py"), read(self.repo, "value.txt")), (BENCH, "10\n"))
        patch = read(self.repo, os.path.join(".ratchet", rec["patch"]))
        self.assertIn("value.txt", patch)
        self.assertNotIn("bench.py", patch)  # re-applying the patch must not tamper again
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        self.assertEqual(rec["trials"], [])

    def test_delete(self):
        self.start()
        os.remove(os.path.join(self.repo, "bench.py"))
        self.assertEqual(self.iterate("tampered")["tampered"], {"bench.py": "deleted"})
        self.assertEqual(read(self.repo, "bench.py"), BENCH)

    def test_chmod_only_is_not_tampering(self):
        self.start()
        full = os.path.join(self.repo, "bench.py")
        before = stat.S_IMODE(os.stat(full).st_mode)
        os.chmod(full, 0o755)
        self.set_value(12)
        rec = self.iterate("keep")
        self.assertNotIn("tampered", rec)
        self.assertIn("mode change of protected bench.py undone", rec["reason"])
        self.assertEqual(stat.S_IMODE(os.stat(full).st_mode), before)
        self.assertEqual(git(self.repo, "show", "--name-only", "--format=", "HEAD").split(), ["value.txt"])

    def test_staged_but_uncommitted_harness_edit(self):
        self.start()
        write(self.repo, "bench.py", "print('score: 999')\n")
        git(self.repo, "add", "bench.py")
        write(self.repo, "bench.py", BENCH)  # the work tree looks clean, the index does not
        self.set_value(11)
        rec = self.iterate("tampered")
        self.assertEqual(rec["tampered"], {"bench.py": "staged"})
        self.assertEqual(git(self.repo, "diff", "--cached", "--name-only"), "")
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")

    def test_a_self_committed_harness_edit(self):
        self.start()
        head = git(self.repo, "rev-parse", "HEAD").strip()
        write(self.repo, "bench.py", "print('score: 999')\n")
        git(self.repo, "commit", "-qam", "agent")
        self.assertEqual(self.iterate("tampered")["tampered"], {"bench.py": "edited"})
        self.assertEqual(git(self.repo, "rev-parse", "HEAD").strip(), head)
        self.assertEqual(read(self.repo, "bench.py"), BENCH)

    def test_untracked_shadowing_module_inside_a_protected_folder(self):
        self.files = None
        write(self.repo, "evalkit/score.py", "import statistics\nprint('score:', statistics.mean([10, 10]))\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "evalkit")
        self.run_ok(*INIT[:2], f"{TRIAL_PY} evalkit/score.py", *INIT[3:-2], "--protect", "evalkit")
        self.run_ok("baseline")
        write(self.repo, "evalkit/statistics.py", "def mean(xs):\n    return 1000\n")
        rec = self.iterate("tampered")
        self.assertEqual(rec["tampered"], {"evalkit/statistics.py": "added"})
        self.assertFalse(os.path.exists(os.path.join(self.repo, "evalkit", "statistics.py")))

    def test_git_ignored_protected_data_edit_and_add(self):
        self.files = None
        write(self.repo, ".gitignore", "data/\n")
        write(self.repo, "bench.py", "print('score:', open('value.txt').read().strip())\nopen('data/expected.txt').read()\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "ignored data")
        write(self.repo, "data/expected.txt", "42\n")
        self.start("--protect", "data")
        write(self.repo, "data/expected.txt", "0\n")
        self.assertEqual(self.iterate("tampered")["tampered"], {"data/expected.txt": "edited"})
        self.assertEqual(read(self.repo, "data/expected.txt"), "42\n")
        write(self.repo, "data/shadow.py", "x = 1\n")
        self.set_value(11)
        self.assertEqual(self.iterate("tampered")["tampered"], {"data/shadow.py": "added"})
        self.assertFalse(os.path.exists(os.path.join(self.repo, "data", "shadow.py")))
        self.set_value(11)
        self.iterate("keep")

    def test_candidate_code_that_rewrites_the_harness_while_it_runs(self):
        self.repo = make_repo(self, SOL_BENCH)
        self.run_ok(*INIT_SOL, "--protect", "bench.py", "--trials", "2")
        self.run_ok("baseline")
        write(self.repo, "sol.py", "open('bench.py', 'a').write('# patched by the candidate\\n')\n"
                                   "def score():\n    return 99\n")
        rec = self.iterate("tampered")
        self.assertEqual(rec["tampered"], {"bench.py": "edited"})
        self.assertIn("while the candidate ran", rec["reason"])
        self.assertEqual(len(rec["trials"]), 2)
        self.assertEqual(read(self.repo, "bench.py"), SOL_BENCH["bench.py"])
        self.assertEqual(read(self.repo, "sol.py"), SOL_BENCH["sol.py"])
        self.assertEqual(self.state()["best"], 10.0)

    def test_a_harness_file_that_cannot_be_restored_stops_the_run(self):
        self.files = None
        write(self.repo, ".gitignore", "data/\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "ignore data")
        write(self.repo, "data/big.bin", "x" * 4096)
        from ratchetlib.io import harness
        with mock.patch.object(harness, "COPY_MAX_BYTES", 1024):
            self.start("--protect", "data")
        write(self.repo, "data/big.bin", "y" * 4096)
        out = self.run_ok("iterate", "--hypothesis", "h")
        self.assertIn("no copy to restore data/big.bin", out)
        self.assertIn("next: stop (harness could not be restored", out)
        self.assertEqual(self.records()[-1]["unrestorable"], ["data/big.bin"])

    def test_baseline_refuses_a_benchmark_that_writes_into_protected_files(self):
        write(self.repo, "bench.py", "print('score: 1')\nopen('data/log.txt', 'a').write('x')\n")
        write(self.repo, "data/log.txt", "")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "noisy bench")
        self.run_ok(*INIT, "--protect", "data")
        err = self.run_fail("baseline")
        self.assertIn("the benchmark itself changed protected files (data/log.txt (edited))", err)

    def test_baseline_refuses_a_harness_changed_since_init(self):
        self.run_ok(*INIT)
        write(self.repo, "bench.py", "print('score: 5')\n")
        self.assertIn("protected files changed since init: bench.py (edited)", self.run_fail("baseline"))

    def test_stop_restores_a_tampered_ignored_harness(self):
        write(self.repo, ".gitignore", "data/\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "ignore data")
        write(self.repo, "data/x.txt", "1\n")
        self.start("--protect", "data")
        write(self.repo, "data/x.txt", "2\n")
        self.assertIn("restored protected files changed since init: data/x.txt (edited)", self.run_ok("stop"))
        self.assertEqual(read(self.repo, "data/x.txt"), "1\n")


class TamperRecoveryTest(RepoTest):
    files = SOL_BENCH

    def test_run_trial_catches_a_rewrite_and_recovery_finishes_a_decided_tamper(self):
        self.run_ok(*INIT_SOL, "--metric-pattern", "score: ([0-9]+)")
        self.run_ok("baseline")
        write(self.repo, "sol.py", "open('bench.py', 'w').write('print(1)')\ndef score():\n    return 99\n")
        out = self.run_ok("run-trial")
        self.assertIn("iter 1: TAMPERED", out)
        self.assertEqual(read(self.repo, "bench.py"), SOL_BENCH["bench.py"])
        # A kill after the decision was buffered but before git acted: the next command finishes it.
        from ratchetlib.io import workspace
        from ratchetlib.keep import candidate, finish, integrity
        write(self.repo, "bench.py", "print('score: 999')\n")
        run = workspace.open_run(self.repo)
        cand = candidate.candidate(run)
        v, extra = integrity.before_trials(run, cand)
        rec = finish.record(2, v, [], 10.0, {"hypothesis": "h"}, cand, extra)
        run.store.write_current({"iter": 2, "phase": "decided", "decision": rec, "candidate": cand.to_dict()})
        out = self.run_ok("iterate", "--hypothesis", "next")
        self.assertIn("recovered: finished iteration 2 (tampered)", out)
        self.assertEqual(read(self.repo, "bench.py"), SOL_BENCH["bench.py"])
        self.assertEqual(self.records()[2]["tampered"], {"bench.py": "edited"})


class ScopeTest(RepoTest):
    files = {"bench.py": BENCH, "value.txt": "10\n", "README": "readme\n", "src/a.py": "a = 1\n"}

    def test_out_of_scope_restores_tracked_removes_new_and_keeps_older_untracked(self):
        write(self.repo, "notes.txt", "mine\n")
        self.start("--editable", "value.txt", "src")
        write(self.repo, "README", "changed\n")
        write(self.repo, "stray/new.txt", "x")
        write(self.repo, "src/b.py", "b = 2\n")
        self.set_value(11)
        out = self.run_ok("iterate", "--hypothesis", "h")
        self.assertIn("OUT-OF-SCOPE", out)
        rec = self.records()[-1]
        self.assertEqual(rec["out_of_scope"], ["README", "stray/new.txt"])
        self.assertEqual(read(self.repo, "README"), "readme\n")
        self.assertFalse(os.path.exists(os.path.join(self.repo, "stray")))
        self.assertFalse(os.path.exists(os.path.join(self.repo, "src", "b.py")))
        self.assertEqual(read(self.repo, "notes.txt"), "mine\n")
        self.assertEqual(read(self.repo, "value.txt"), "10\n")
        self.assertIn("src/b.py", read(self.repo, os.path.join(".ratchet", rec["patch"])))

    def test_new_files_inside_the_editable_scope_are_committed_on_keep(self):
        self.start("--editable", "value.txt", "src")
        write(self.repo, "src/new/b.py", "b = 2\n")
        self.set_value(11)
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "h"))
        self.assertEqual(sorted(git(self.repo, "show", "--name-only", "--format=", "HEAD").split()),
                         ["src/new/b.py", "value.txt"])


class AutoProtectTest(RepoTest):
    files = {"bench.py": BENCH, "value.txt": "10\n", "check.py": "print('ok')\n"}

    def test_files_the_commands_name_are_protected_by_default(self):
        out = self.run_ok(*INIT[:-2], "--guard-command", f"{TRIAL_PY} check.py")
        self.assertIn("auto-protected because a command names them: bench.py, check.py", out)
        self.assertIn("pinned: 2 protected file(s)", out)
        cfg = json.loads(read(self.repo, ".ratchet/config.json"))
        self.assertEqual(cfg["auto_protected"], ["bench.py", "check.py"])
        self.run_ok("baseline")
        write(self.repo, "check.py", "print('fine')\n")
        self.assertIn("TAMPERED", self.run_ok("iterate", "--hypothesis", "h"))

    def test_a_file_listed_in_editable_is_not_auto_protected(self):
        out = self.run_ok(*INIT[:-2], "--editable", "bench.py", "value.txt")
        self.assertNotIn("auto-protected", out)
        self.assertNotIn("bench.py", json.loads(read(self.repo, ".ratchet/config.json"))["protect"])
