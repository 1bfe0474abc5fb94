"""Bugs the soak (bench/soak.py) found, each pinned by a test: the user's
untracked files staged by an agent, git killed mid-command by a signal, and a
signal that lands while `loop` starts its agent."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from ratchetlib.io import workspace
from ratchetlib.io import gitops, procs, runner
from ratchetlib.verbs.loop import headless
from tests.util import BENCH, RepoTest, alive, git, read, wait_for_file, write


class StagedUntrackedTest(RepoTest):
    """An agent's `git add -A` stages the user's untracked files too; they stay the user's."""

    def setUp(self):
        super().setUp()
        write(self.repo, "NOTES.txt", "mine\n")

    def iterate_after_add_all(self):
        self.set_value(12)
        git(self.repo, "add", "-A")
        return self.run_ok("iterate", "--hypothesis", "bigger")

    def test_a_keep_does_not_commit_them(self):
        self.start("--decision", "mean", "--trials", "1")
        out = self.iterate_after_add_all()
        self.assertIn("iter 1: KEEP", out)
        self.assertIn("unstaged NOTES.txt (untracked before)", out)
        self.assertNotIn("NOTES.txt", git(self.repo, "ls-files"))
        self.assertEqual(read(self.repo, "NOTES.txt"), "mine\n")

    def test_a_narrow_scope_does_not_delete_them(self):
        self.start("--decision", "mean", "--trials", "1", "--editable", "value.txt")
        self.assertIn("iter 1: KEEP", self.iterate_after_add_all())  # not out-of-scope
        self.assertEqual(read(self.repo, "NOTES.txt"), "mine\n")
        self.assertEqual(git(self.repo, "status", "--porcelain"), "?? NOTES.txt\n")


class BytecodeCacheTest(RepoTest):
    """A bytecode cache written since the last decision (the benchmark
    imported a module for the first time, the agent ran its tests) is not the
    agent's change: a keep committed it, and every later import rewrote it,
    every swap deleted it, so the tree no longer equalled HEAD (the soak,
    seeds 8 and 9, with bytecode written as on a user's machine)."""
    files = {"bench.py": BENCH, "value.txt": "10\n", "helper.py": "X = 1\n"}

    def cache_then_change(self, stage=False):
        self.start("--decision", "mean", "--trials", "1")
        subprocess.run([sys.executable, "-c", "import helper"], cwd=self.repo, check=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
        cached = [f"__pycache__/{n}" for n in os.listdir(os.path.join(self.repo, "__pycache__"))]
        self.assertEqual(len(cached), 1)
        self.set_value(12)
        write(self.repo, "extra.txt", "the agent's new file\n")
        if stage:
            git(self.repo, "add", "-A")
        out = self.run_ok("iterate", "--hypothesis", "bigger")
        self.assertIn("iter 1: KEEP", out)
        self.assertEqual(sorted(self.records()[-1]["changed"]), ["extra.txt", "value.txt"])
        self.assertEqual(git(self.repo, "show", "--name-only", "--format=", "HEAD").split(), ["extra.txt", "value.txt"])
        self.assertEqual(git(self.repo, "status", "--porcelain"), "?? __pycache__/\n")  # untracked, as before
        return out, cached[0]

    def test_a_keep_does_not_commit_a_cache_made_since_the_last_decision(self):
        self.cache_then_change()

    def test_nor_one_the_agent_staged(self):
        out, cached = self.cache_then_change(stage=True)
        self.assertIn(f"unstaged {cached} (bytecode cache)", out)


class QuarantineTest(unittest.TestCase):
    """store_files.quarantine never deletes: the same hook moved aside twice
    within one second (two recoveries) keeps both copies."""

    def test_a_second_move_of_the_same_path_keeps_the_first(self):
        from ratchetlib.io import store_files
        root, outside = tempfile.mkdtemp(), tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, root, True)
        self.addCleanup(__import__("shutil").rmtree, outside, True)
        hook = os.path.join(outside, "usercustomize.py")
        moved = []
        for text in ("first\n", "second\n"):
            write(outside, "usercustomize.py", text)
            moved.append(store_files.quarantine(root, hook))
        self.assertNotEqual(moved[0], moved[1])
        self.assertEqual([read(os.path.dirname(p), os.path.basename(p)) for p in moved], ["first\n", "second\n"])
        self.assertFalse(os.path.exists(hook))


class GitFinishesOnASignalTest(unittest.TestCase):
    """subprocess.run SIGKILLs its child when Ctrl-C or SIGTERM arrive; git would leave .git/index.lock."""

    def test_the_command_finishes_before_the_signal_goes_on(self):
        d = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, d, True)
        done = os.path.join(d, "done")

        def interrupt(*_):
            raise KeyboardInterrupt
        old = signal.signal(signal.SIGALRM, interrupt)
        self.addCleanup(signal.signal, signal.SIGALRM, old)
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        t0 = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            gitops._run(["sh", "-c", f"sleep 0.6; echo ok > {done}"], d, dict(os.environ))
        self.assertTrue(os.path.exists(done), "the command was killed instead of finishing")
        self.assertGreater(time.monotonic() - t0, 0.5)


class SignalWhileTheAgentStartsTest(RepoTest):
    def test_an_agent_not_yet_in_calls_is_killed_by_its_marker(self):
        self.start("--decision", "mean", "--trials", "1")
        run = workspace.open_run(self.repo)
        loop = headless.Loop(run, headless.Options(agent_command="true"), lambda line: None)
        pidfile = os.path.join(tempfile.mkdtemp(), "pid")
        marker = runner.new_marker()
        agent = runner.Child(f"echo $$ > {pidfile}; exec sleep 300", self.repo, os.devnull, marker=marker)
        self.addCleanup(agent.kill)
        loop.begin(1, time.time(), [marker])  # the buffer is written, the signal lands before `calls` holds it
        wait_for_file(pidfile)
        pid = int(read(os.path.dirname(pidfile), "pid"))
        loop.interrupted(KeyboardInterrupt())
        procs.wait_gone([pid])
        self.assertFalse(alive(pid))
        self.assertEqual(self.records()[-1]["decision"], "interrupted")


if __name__ == "__main__":
    unittest.main()
