"""Issue 9, part 4: two commands at once, a killed lock holder, a read-only
`.ratchet/`, a full disk while writing state (RATCHET_FAULT, see faults.py)."""

import json
import os
import signal
import subprocess
import tempfile
import unittest
from unittest import mock

from tests.util import PY, RATCHET, RepoTest, alive, belongs, cli, git, read, slurp, wait_for

# bench.py sleeps BENCH_SLEEP seconds (after writing its pid to BENCH_PIDFILE) when they are set.
SLOW_BENCH = ("import os, time\n"
              "if os.environ.get('BENCH_PIDFILE'): open(os.environ['BENCH_PIDFILE'], 'w').write(str(os.getpid()))\n"
              "time.sleep(float(os.environ.get('BENCH_SLEEP', '0')))\n"
              "print('score:', open('value.txt').read().strip())\n")


class Background:
    """`ratchet.py ARGS` as a real subprocess, with its slow trial's pid file."""

    def __init__(self, test, repo, *argv, sleep="30"):
        self.pidfile = os.path.join(tempfile.mkdtemp(), "trial.pid")
        env = {**os.environ, "BENCH_SLEEP": sleep, "BENCH_PIDFILE": self.pidfile}
        self.proc = subprocess.Popen([PY, RATCHET, "-C", repo, *argv], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        test.addCleanup(self.cleanup)

    def trial_pid(self):
        assert wait_for(lambda: os.path.exists(self.pidfile) and slurp(self.pidfile).strip()), "trial never started"
        return int(slurp(self.pidfile))

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        if os.path.exists(self.pidfile):
            try:
                pid = int(slurp(self.pidfile))
                if belongs(pid, self.pidfile):  # the trial's environment names its pid file
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


class ConcurrencyTest(RepoTest):
    files = {"bench.py": SLOW_BENCH, "value.txt": "10\n"}

    def test_second_command_is_refused_and_a_killed_holders_lock_is_taken_over(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.set_value(12)
        bg = Background(self, self.repo, "iterate", "--hypothesis", "bigger")
        trial = bg.trial_pid()
        err = self.run_fail("iterate", "--hypothesis", "again")
        self.assertIn(f"another ratchet command (`iterate`, pid {bg.proc.pid}) is working on this repository", err)
        self.assertEqual(read(self.repo, "value.txt"), "12\n")  # the refused command changed nothing
        self.assertIn(f"working: `iterate` (pid {bg.proc.pid})", self.run_ok("status"))  # status only looks
        bg.proc.send_signal(signal.SIGKILL)
        bg.proc.wait()
        self.assertTrue(alive(trial))  # a SIGKILLed ratchet cannot stop its trial: the next command does
        lock = json.loads(read(self.repo, ".ratchet/lock"))
        self.assertEqual((lock["pid"], lock["verb"]), (bg.proc.pid, "iterate"))
        code, out, err = cli("iterate", "--hypothesis", "bigger", cwd=self.repo)
        self.assertEqual(code, 0, err)
        self.assertIn(f"recovered: took over the lock of a killed `iterate` (pid {bg.proc.pid})", err)
        self.assertIn(f"the killed `iterate` (pid {bg.proc.pid}) left running", out)
        self.assertFalse(alive(trial))
        self.assertIn("iter 1: KEEP", out)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "lock")))

    def test_a_pid_reused_by_another_process_does_not_hold_the_lock(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        with open(os.path.join(self.repo, ".ratchet", "lock"), "w") as f:  # pid 1 lives, but started long before
            json.dump({"pid": 1, "host": __import__("socket").gethostname(), "verb": "iterate", "pid_start": -1}, f)
        self.set_value(12)
        self.assertIn("iter 1: KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))


class ReadOnlyTest(RepoTest):
    def test_read_only_state_folder_is_one_line_exit_2_and_nothing_changes(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.set_value(12)
        root = os.path.join(self.repo, ".ratchet")
        before = {n: read(self.repo, ".ratchet/" + n) for n in ("state.json", "results.jsonl", "config.json")}
        head = git(self.repo, "rev-parse", "HEAD")
        self._read_only(root)
        err = self.run_fail("iterate", "--hypothesis", "bigger")
        self.assertRegex(err, r"cannot write .*\.ratchet: (permission denied|read-only file system)")
        self.assertEqual({n: read(self.repo, ".ratchet/" + n) for n in before}, before)
        self.assertEqual(git(self.repo, "rev-parse", "HEAD"), head)
        self.assertEqual(read(self.repo, "value.txt"), "12\n")  # the candidate is still in the tree

    def _read_only(self, root):
        """chmod when that binds (not root); as root a read-only bind mount."""
        os.chmod(root, 0o555)
        self.addCleanup(os.chmod, root, 0o755)
        probe = os.path.join(root, "probe")
        try:
            open(probe, "w").close()
        except OSError:
            return  # chmod binds
        os.unlink(probe)
        r = subprocess.run(["mount", "--bind", "-o", "ro", root, root], stderr=subprocess.PIPE)
        if r.returncode == 0:
            self.addCleanup(subprocess.run, ["umount", root])
            return
        # neither: root without mount rights; fail the lock's open the way a read-only folder does
        real = os.open
        def deny(path, *a, **k):
            if str(path).startswith(root):
                raise OSError(30, "Read-only file system", path)
            return real(path, *a, **k)
        patcher = mock.patch("os.open", deny)
        patcher.start()
        self.addCleanup(patcher.stop)


class DiskFullTest(RepoTest):
    def fault(self, where):
        return mock.patch.dict(os.environ, {"RATCHET_FAULT": f"enospc:{where}"})

    def snapshot(self):
        return {n: read(self.repo, ".ratchet/" + n) for n in ("state.json", "results.jsonl", "config.json")}

    def no_temp_files(self):
        self.assertEqual([n for n in os.listdir(os.path.join(self.repo, ".ratchet")) if n.startswith(".tmp-")], [])

    def test_disk_full_writing_state_keeps_the_old_state_and_the_next_command_rolls_forward(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        before = self.snapshot()
        self.set_value(12)
        with self.fault("state.json"):
            err = self.run_fail("iterate", "--hypothesis", "bigger", code=1)
        self.assertIn("disk full while writing", err)
        self.assertIn("state.json", err)
        self.no_temp_files()
        self.assertEqual(read(self.repo, ".ratchet/state.json"), before["state.json"])  # the old state, whole
        json.loads(before["state.json"])
        self.assertEqual(len(self.records()), 2)  # the keep was recorded before the state write failed
        code, out, err = cli("iterate", "--hypothesis", "nothing new", cwd=self.repo)
        self.assertIn("iteration 1 was recorded but the state was not updated; state rolled forward", out)
        self.assertEqual(self.state()["incumbent_score"], 12.0)
        self.assertEqual(self.records()[1]["sha"], git(self.repo, "rev-parse", "HEAD").strip())

    def test_disk_full_tears_the_record_and_the_next_command_finishes_the_iteration(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.set_value(12)
        with self.fault("results.jsonl"):
            err = self.run_fail("iterate", "--hypothesis", "bigger", code=1)
        self.assertIn("disk full while writing", err)
        self.assertFalse(read(self.repo, ".ratchet/results.jsonl").endswith("\n"))  # a torn last line
        self.assertEqual(self.state()["iteration"], 0)
        code, out, err = cli("status", cwd=self.repo)
        self.assertEqual(code, 0, err)
        self.assertIn("removed a torn last line", out)
        self.assertIn("finished iteration 1 (keep) that a killed command had decided", out)
        self.run_ok("iterate", "--hypothesis", "same")
        recs = self.records()
        self.assertEqual([r["iter"] for r in recs], [0, 1, 2])  # no duplicate, no torn line
        self.assertEqual(git(self.repo, "log", "--format=%s").count("iter 1:"), 1)  # one commit, not two

    def test_disk_full_while_buffering_a_trial_leaves_the_candidate_for_the_next_iterate(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        before = self.snapshot()
        self.set_value(12)
        with self.fault("current.json"):
            err = self.run_fail("iterate", "--hypothesis", "bigger", code=1)
        self.assertIn("current.json", err)
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(read(self.repo, "value.txt"), "12\n")
        self.no_temp_files()
        self.assertIn("iter 1: KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))


if __name__ == "__main__":
    unittest.main()
