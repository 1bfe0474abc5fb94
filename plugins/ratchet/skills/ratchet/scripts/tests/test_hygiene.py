"""Issue 9, part 2: no process started by a trial survives it (Linux: the
child subreaper, /proc parent links and the RATCHET_TRIAL_ID marker), and
SIGINT/SIGTERM to a running `iterate` stop the trial tree, leave the state
consistent and exit 130/143 (bench/hygiene.py counts survivors over many trials)."""

import json
import os
import shutil
import signal
import tempfile
import unittest

from ratchetlib.io import procs, runner
from tests.test_concurrency import Background
from tests.util import RepoTest, TRIAL_PY, alive, git, read, slurp

SPAWNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spawner.py")


def pids_of(path):
    return [int(p) for p in slurp(path).split()] if os.path.exists(path) else []


class TreeTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.pidfile = os.path.join(self.dir, "pids")
        self.addCleanup(lambda: [procs.kill_pid(p) for p in pids_of(self.pidfile)])

    def survivors(self, mode, timeout):
        r = runner.run(f"{TRIAL_PY} {SPAWNER} {self.pidfile} {mode}", self.dir, os.path.join(self.dir, "o"),
                       os.path.join(self.dir, "e"), timeout)
        started = pids_of(self.pidfile)
        self.assertEqual(len(started), 7, slurp(os.path.join(self.dir, "e")))
        procs.wait_gone(started)
        return r, [p for p in started if alive(p)]

    def test_a_finished_trial_leaves_no_child_grandchild_setsid_or_double_forked_process(self):
        r, left = self.survivors("exit", 20)
        self.assertEqual((r.exit_code, left, r.survivors), (0, [], ()))

    def test_a_timed_out_trial_leaves_none_either(self):
        r, left = self.survivors("hang", 3)
        self.assertEqual((r.timed_out, left, r.survivors), (True, [], ()))


BENCH = ("import os, subprocess, sys, time\n"
         "if os.environ.get('BENCH_PIDFILE'):\n"
         "    subprocess.run([sys.executable, os.environ['SPAWNER'], os.environ['BENCH_PIDFILE'] + '.tree', 'exit'])\n"
         "    open(os.environ['BENCH_PIDFILE'], 'w').write(str(os.getpid()))\n"
         "time.sleep(float(os.environ.get('BENCH_SLEEP', '0')))\n"
         "print('score:', open('value.txt').read().strip())\n")


class SignalTest(RepoTest):
    files = {"bench.py": BENCH, "value.txt": "10\n"}

    def setUp(self):
        super().setUp()
        os.environ["SPAWNER"] = SPAWNER
        self.addCleanup(os.environ.pop, "SPAWNER", None)

    def interrupt(self, sig, code, word):
        self.start()
        self.set_value(12)
        before = {n: read(self.repo, ".ratchet/" + n) for n in ("state.json", "results.jsonl")}
        head = git(self.repo, "rev-parse", "HEAD")
        bg = Background(self, self.repo, "iterate", "--hypothesis", "bigger")
        bg.trial_pid()
        tree = pids_of(bg.pidfile + ".tree") + [int(slurp(bg.pidfile))]
        self.addCleanup(lambda: [procs.kill_pid(p) for p in tree])
        self.assertEqual(len(tree), 8)
        bg.proc.send_signal(sig)
        out, err = bg.proc.communicate(timeout=30)
        self.assertEqual(bg.proc.returncode, code, err)
        self.assertEqual(err.decode().strip(), f"ratchet: {word}; the trial's processes were stopped")
        procs.wait_gone(tree)
        self.assertEqual([p for p in tree if alive(p)], [], "processes surviving the interrupted trial")
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "lock")))
        self.assertEqual({n: read(self.repo, ".ratchet/" + n) for n in before}, before)
        cur = json.loads(read(self.repo, ".ratchet/current.json"))  # the buffer is whole JSON
        self.assertEqual((cur["iter"], cur["phase"], cur["trials"]), (1, "measuring", []))
        self.assertEqual(read(self.repo, "value.txt"), "12\n")  # the candidate is still in the tree
        self.assertEqual(git(self.repo, "rev-parse", "HEAD"), head)
        self.assertIn("iter 1: KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))

    def test_sigint_stops_the_trial_tree_and_exits_130(self):
        self.interrupt(signal.SIGINT, 130, "interrupted")

    def test_sigterm_stops_the_trial_tree_and_exits_143(self):
        self.interrupt(signal.SIGTERM, 143, "terminated")


if __name__ == "__main__":
    unittest.main()
