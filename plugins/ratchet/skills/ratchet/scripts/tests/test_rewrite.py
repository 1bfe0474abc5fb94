"""Issue 14, point 5: a protected file rewritten while candidate code runs and
put back before it ends (same bytes, even the old mtime) is `tampered`;
ratchet's own swaps and what the user does between commands are not."""

import os

from tests.util import RepoTest, TRIAL_PY, git, read, write

BENCH = "import speed\nprint('score:', speed.SPEED)\n"
INIT = ["init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
        "--report-source", "stdout", "--protect", "bench.py", "--protect", "data.txt"]

# Candidate code that rewrites a protected file and restores it, bytes and times.
REWRITE = ("import os\n"
           "p = {path!r}\n"
           "st, data = os.stat(p), open(p, 'rb').read()\n"
           "open(p, 'wb').write(b'tilted for the other side\\n')\n"
           "open(p, 'wb').write(data)\n"
           "os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))\n"
           "SPEED = 20\n")
# ... or puts a copy back by rename (a new inode, old times).
RENAME = ("import os, shutil\n"
          "shutil.copy2({path!r}, 'tmp.copy')\n"
          "os.replace('tmp.copy', {path!r})\n"
          "SPEED = 20\n")


class RewriteAndRestore(RepoTest):
    files = {"bench.py": BENCH, "speed.py": "SPEED = 10\n", "data.txt": "fixed inputs\n"}

    def start(self, *extra):
        self.run_ok(*INIT, *extra)
        self.run_ok("baseline")

    def tampered(self, code):
        write(self.repo, "speed.py", code)
        out = self.run_ok("iterate", "--hypothesis", "faster")
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "tampered", out)
        self.assertEqual(read(self.repo, "speed.py"), "SPEED = 10\n", "the candidate is reverted")
        self.assertEqual(read(self.repo, "data.txt"), "fixed inputs\n")
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        return rec

    def test_paired_rewrite_with_the_old_mtime_is_tampered(self):
        self.start()
        rec = self.tampered(REWRITE.format(path="data.txt"))
        self.assertEqual(rec["tampered"], {"data.txt": "rewritten"})
        self.assertIn("while the candidate ran: data.txt (rewritten)", rec["reason"])
        self.assertNotIn("unrestorable", rec)

    def test_mean_rule_rewrite_of_the_benchmark_itself_is_tampered(self):
        self.start("--decision", "mean")
        rec = self.tampered(REWRITE.format(path="bench.py"))
        self.assertEqual(rec["tampered"], {"bench.py": "rewritten"})

    def test_a_copy_put_back_by_rename_is_tampered(self):
        self.start()
        rec = self.tampered(RENAME.format(path="data.txt"))
        self.assertEqual(rec["tampered"], {"data.txt": "rewritten"})

    def test_run_trial_checks_each_trial_window(self):
        self.start("--decision", "mean")
        write(self.repo, "speed.py", REWRITE.format(path="data.txt"))
        self.run_ok("run-trial")
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["tampered"]), ("tampered", {"data.txt": "rewritten"}))

    def test_the_user_touching_protected_files_between_commands_is_not_tampering(self):
        self.start()
        full = os.path.join(self.repo, "data.txt")
        os.utime(full)  # a touch
        write(self.repo, "bench.py", BENCH)  # an editor saving the same bytes
        os.chmod(full, 0o600)
        write(self.repo, "speed.py", "SPEED = 20\n")
        self.run_ok("iterate", "--hypothesis", "faster")
        self.assertEqual(self.records()[-1]["decision"], "keep", self.records()[-1]["reason"])
        write(self.repo, "speed.py", "SPEED = 30\n")  # and the swaps of the kept run did not trip the next
        self.run_ok("iterate", "--hypothesis", "faster still")
        self.assertEqual(self.records()[-1]["decision"], "keep", self.records()[-1]["reason"])

    def test_a_guard_that_runs_a_rewriting_candidate_is_tampered(self):
        write(self.repo, "guard.py", "import os, speed\n")
        git(self.repo, "add", "guard.py")
        git(self.repo, "commit", "-qm", "guard")
        self.start("--guard-command", f"{TRIAL_PY} guard.py")
        # rewrites only when the guard imports it (trials run bench.py as __main__ first)
        code = ("import os, sys\n"
                "if 'guard.py' in sys.argv[0]:\n"
                "    p = 'data.txt'\n"
                "    st, data = os.stat(p), open(p, 'rb').read()\n"
                "    open(p, 'wb').write(data)\n"
                "    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))\n"
                "SPEED = 20\n")
        rec = self.tampered(code)
        self.assertIn("while the guard ran: data.txt (rewritten)", rec["reason"])

    def test_a_benchmark_that_rewrites_a_protected_file_fails_at_baseline(self):
        write(self.repo, "bench.py", "open('data.txt', 'w').write('fixed inputs\\n')\n" + BENCH)
        git(self.repo, "commit", "-qam", "rewriting bench")
        self.run_ok(*INIT)
        err = self.run_fail("baseline")
        self.assertIn("the benchmark itself changed protected files (data.txt (rewritten))", err)
