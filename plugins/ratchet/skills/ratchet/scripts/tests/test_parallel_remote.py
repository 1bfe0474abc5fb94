"""`loop --parallel` on a cluster (verbs/loop/remote.py), the parts no real scheduler is needed for: the
measurement tree a proposal runs in, the main tree watched across a round, and what a thread's error or
a signal does to the others (the real rounds are in test_e2e_slurm.py and test_e2e_ray.py)."""

import os
import threading
import time

from ratchetlib.io import executor, workspace
from ratchetlib.verbs.loop import remote
from tests.util import RepoTest, git, write


class RemoteRound(RepoTest):
    def setUp(self):
        super().setUp()
        self.start()
        self.run = workspace.open_run(self.repo)

    def test_the_measurement_tree_has_nothing_of_the_agent_and_the_harness_pinned(self):
        tree = os.path.join(self.repo, ".ratchet", "worktrees", "slot-1")
        git(self.repo, "worktree", "add", "-q", "--detach", tree, "HEAD")
        self.addCleanup(git, self.repo, "worktree", "remove", "--force", tree)
        write(tree, "planted.pyc", "x")   # untracked
        write(tree, ".gitignore", "*.cache\n")
        write(tree, "results.cache", "42")  # ignored: `git clean -x` takes it too
        os.unlink(os.path.join(tree, "bench.py"))
        remote.measurement_tree(tree, self.run.store.root)
        self.assertEqual(sorted(os.listdir(tree)), [".git", "bench.py", "value.txt"])
        with open(os.path.join(self.repo, "bench.py")) as a, open(os.path.join(tree, "bench.py")) as b:
            self.assertEqual(a.read(), b.read())

    def test_a_main_tree_change_during_the_round_makes_every_measured_proposal_tampered(self):
        watched = remote.watch_main_tree(self.run)
        write(self.repo, "bench.py", "print('score: 1000')\n")  # candidate code on a node wrote the harness
        subs = [{"slot": 1, "decision": "keep", "avg": 12.0, "delta": 2.0, "reason": "better", "trials": [{}]},
                {"slot": 2, "decision": "agent-error", "avg": None, "delta": None, "reason": "no answer", "trials": []}]
        got = remote.checked(self.run, watched, subs)
        self.assertEqual([s["decision"] for s in got], ["tampered", "agent-error"])
        self.assertIn("the main tree changed while the proposals ran at once", got[0]["reason"])
        self.assertEqual(git(self.repo, "status", "--porcelain"), "", "the harness was put back")
        self.assertIs(remote.checked(self.run, remote.watch_main_tree(self.run), subs), subs, "an untouched tree: as measured")

    def test_a_threads_error_halts_the_others_and_is_raised(self):
        self.addCleanup(executor.halt, False)
        started = threading.Event()

        def failing():
            started.wait(5)
            raise RuntimeError("boom")

        def waiting():
            started.set()
            end = time.monotonic() + 10
            while time.monotonic() < end:
                executor._lane_node(None)  # what a lane's next submission asks first: Halted once stopped
                time.sleep(0.01)
            return "never halted"
        t0 = time.monotonic()
        with self.assertRaisesRegex(RuntimeError, "boom"):
            remote.at_once(self.run.config, [failing, waiting])
        self.assertLess(time.monotonic() - t0, 8, "the other thread was halted, not waited out")
        self.assertEqual(remote.at_once(self.run.config, [lambda: 1, lambda: 2]), [1, 2], "the next round runs")
