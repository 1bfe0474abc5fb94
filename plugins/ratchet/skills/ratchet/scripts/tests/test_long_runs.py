"""Long runs: the heartbeat, `tail` on long training logs, launcher process
trees killed on timeout, and the UNCLEAN marker that blocks trials while an
earlier trial's processes survive."""

import io
import json
import os
import signal
import tempfile
import time
import unittest
from unittest import mock

from ratchetlib.measure import heartbeat
from ratchetlib.io import keeper, procs, runner
from ratchetlib.verbs import tail
from tests.util import INIT, RepoTest, TRIAL_PY, alive, belongs, cli

HAS_PROC = os.path.isdir("/proc")


class _Tty(io.StringIO):
    def isatty(self):
        return True


class HeartbeatTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ratchet-hb-")
        self.out, self.err = os.path.join(self.dir, "o"), os.path.join(self.dir, "e")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_with(self, beat, seconds=0.5, timeout=None):
        return runner.run(f"{TRIAL_PY} -c 'import time; time.sleep({seconds})'", self.dir, self.out, self.err,
                          timeout, progress=beat)

    def test_not_a_terminal_one_line_per_interval(self):
        stream = io.StringIO()
        beat = heartbeat.Heartbeat("iter 3 trial 1/2", 300, stream=stream, interval=0.05)
        r = self.run_with(beat)
        self.assertEqual(r.exit_code, 0)
        lines = stream.getvalue().splitlines()
        self.assertGreaterEqual(len(lines), 2, lines)  # ~10 expected; 2 leaves room for a loaded machine
        self.assertTrue(all(l == "ratchet: iter 3 trial 1/2 running 0:00 (timeout 5:00)" for l in lines), lines)
        self.assertNotIn("\r", stream.getvalue())

    def test_default_interval_is_30_seconds_off_a_terminal_and_1_on_one(self):
        self.assertEqual(heartbeat.Heartbeat("x", None, stream=io.StringIO(), environ={}).interval, 30.0)
        self.assertEqual(heartbeat.Heartbeat("x", None, stream=_Tty(), environ={}).interval, 1.0)
        env = {heartbeat.ENV_INTERVAL: "0.01"}
        self.assertEqual(heartbeat.Heartbeat("x", None, stream=io.StringIO(), environ=env).interval, 0.01)

    def test_terminal_live_line_with_and_without_colour(self):
        for environ, escapes in (({}, True), ({"NO_COLOR": ""}, False), ({"TERM": "dumb"}, False)):
            with self.subTest(environ=environ):
                stream = _Tty()
                beat = heartbeat.Heartbeat("iter 1 trial 1/1", None, stream=stream, interval=0.05, environ=environ)
                self.run_with(beat, 0.4)
                text = stream.getvalue()
                self.assertNotIn("\n", text)
                self.assertTrue(text.startswith("\r"), repr(text))
                self.assertIn("ratchet: iter 1 trial 1/1 running 0:00", text)
                self.assertEqual("\x1b" in text, escapes, repr(text))
                self.assertTrue(text.endswith("\r\x1b[K" if escapes else " \r"), repr(text))

    def test_short_trial_prints_nothing_and_timeout_is_exact(self):
        stream = io.StringIO()
        r = self.run_with(heartbeat.Heartbeat("x", 0.3, stream=stream, interval=5), seconds=0.01)
        self.assertEqual((r.exit_code, stream.getvalue()), (0, ""))
        t0 = time.monotonic()
        r = self.run_with(heartbeat.Heartbeat("x", 0.3, stream=stream, interval=0.1), seconds=30, timeout=0.3)
        self.assertTrue(r.timed_out)
        self.assertLess(time.monotonic() - t0, 5)

    def test_clock(self):
        self.assertEqual([heartbeat.clock(s) for s in (0, 65, 600, 3723)], ["0:00", "1:05", "10:00", "1:02:03"])


class HeartbeatThroughTheCli(RepoTest):
    files = {"bench.py": "import time\ntime.sleep(0.3)\nprint('score:', open('value.txt').read().strip())\n",
             "value.txt": "10\n"}

    def test_iterate_prints_the_heartbeat_on_stderr(self):
        from tests.util import INIT, cli
        with mock.patch.dict(os.environ, {heartbeat.ENV_INTERVAL: "0.05"}):
            self.run_ok(*INIT, "--trial-timeout-seconds", "60")
            code, out, err = cli("baseline", cwd=self.repo)
        self.assertEqual(code, 0, err)
        self.assertIn("ratchet: iter 0 trial 1/1 running 0:00 (timeout 1:00)", err)
        self.assertNotIn("running", out)


class TailTest(unittest.TestCase):
    def write_log(self, text):
        fd, path = tempfile.mkstemp(prefix="ratchet-log-")
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def test_torchrun_log_shows_the_worker_traceback_not_the_launchers(self):
        progress = "".join(f"\rEpoch 3: {i}%|####| {i}/100 [00:0{i % 10}<00:00, loss=0.{i}]" for i in range(100))
        body = "\n".join(f"step {i} loss {1 / (i + 1):.4f} \x1b[32mok\x1b[0m" for i in range(20000))
        worker = ("[rank1]: Traceback (most recent call last):\n"
                  "[rank1]:   File \"train.py\", line 88, in <module>\n"
                  "[rank1]:     logits = model(batch)\n"
                  "[rank1]: ValueError: shapes (3,) and (4,) not aligned\n")
        launcher = ("E1123 13:00:00 torch/distributed/elastic/multiprocessing/api.py failed (exitcode: 1)\n"
                    "Traceback (most recent call last):\n  File \"/usr/bin/torchrun\", line 8, in <module>\n"
                    "    sys.exit(main())\n"
                    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
                    + "=" * 60 + "\ntrain.py FAILED\n" + "\n".join(f"  field {i}: value" for i in range(14)) + "\n")
        path = self.write_log(body + "\n" + progress + "\n" + worker + "[rank0]: still logging\n" + launcher)
        text = tail.tail_text(path, 80)
        lines = text.splitlines()
        self.assertLessEqual(len(lines), 81)
        self.assertTrue(lines[0].startswith("[rank1]: Traceback"), lines[0])
        self.assertIn("ValueError: shapes (3,) and (4,) not aligned", text)
        self.assertIn("ChildFailedError", text)
        self.assertNotIn("\x1b", text)

    def test_huge_traceback_and_long_lines_are_bounded(self):
        frames = "".join(f"  File \"m.py\", line {i}, in f\n    return f(x)\n" for i in range(3000))
        path = self.write_log("x" * 100000 + "\nTraceback (most recent call last):\n" + frames
                              + "RecursionError: maximum recursion depth exceeded " + "y" * 5000 + "\n")
        text = tail.tail_text(path, 80)
        lines = text.splitlines()
        self.assertLessEqual(len(lines), 81)
        self.assertEqual(lines[0], "Traceback (most recent call last):")
        self.assertIn("lines cut", text)
        self.assertTrue(lines[-1].startswith("RecursionError"))
        self.assertLessEqual(max(map(len, lines)), 400)
        self.assertLess(len(text), 81 * 401)

    def test_no_traceback_shows_the_end(self):
        path = self.write_log("\n".join(f"line {i}" for i in range(1000)))
        self.assertEqual(tail.tail_text(path, 5).splitlines()[-5:], [f"line {i}" for i in range(995, 1000)])


LAUNCHER = r'''"""A stand-in for torchrun/accelerate: workers in their own sessions, each with a child."""
import os, subprocess, sys, time
mode = open('value.txt').read().strip()
worker = ("import subprocess, sys, time\n"
          "subprocess.Popen(['sleep', '300'])\n"
          "time.sleep(300)\n")
pids = []
for rank in range(2):
    # rank 1 drops the environment (and with it ratchet's marker), as some launchers do
    env = None if rank == 0 else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    p = subprocess.Popen([sys.executable, "-c", worker], start_new_session=True, env=env)
    pids.append(p.pid)
time.sleep(0.3)
with open('pids.txt', 'w') as f:
    f.write(" ".join(map(str, pids)))
if mode == 'hang':
    time.sleep(300)
print('score:', 10 if mode == 'hang' else mode)
'''


@unittest.skipUnless(HAS_PROC, "needs /proc (Linux)")
class LauncherTreeTest(RepoTest):
    files = {"bench.py": LAUNCHER, "value.txt": "10\n"}

    def tree(self):
        """The workers and their children still alive (the pids the launcher recorded, plus theirs)."""
        with open(os.path.join(self.repo, "pids.txt")) as f:
            workers = [int(p) for p in f.read().split()]
        kids = [p for w in workers for p in keeper.descendants(w)]
        return workers, [p for p in workers + kids if alive(p)]

    def kill_leftovers(self):
        try:
            workers, live = self.tree()
        except OSError:
            return
        for p in live:
            try:
                if belongs(p, self.repo):  # started in the repository, as the launcher's workers are
                    os.kill(p, signal.SIGKILL)
            except OSError:
                pass

    def test_timeout_kills_workers_in_their_own_sessions_and_their_children(self):
        self.addCleanup(self.kill_leftovers)
        self.run_ok("init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                    "--report-source", "stdout", "--protect", "bench.py", "--trial-timeout-seconds", "3")
        self.run_ok("baseline")
        self.assertEqual(self.tree()[1], [])  # a finished trial's lingering workers are killed too
        self.set_value("hang")
        out = self.run_ok("iterate", "--hypothesis", "hangs")
        self.assertIn("TIMEOUT", out)
        workers, live = self.tree()
        self.assertEqual(len(workers), 2)
        self.assertEqual(live, [])
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "UNCLEAN")))


SURVIVOR = r'''import subprocess
p = subprocess.Popen(['sleep', '300'], start_new_session=True)
open('survivor.pid', 'w').write(str(p.pid))
print('score:', open('value.txt').read().strip())
'''


@unittest.skipUnless(HAS_PROC, "needs /proc (Linux)")
class UncleanTest(RepoTest):
    files = {"bench.py": SURVIVOR, "value.txt": "10\n"}

    def survivor(self):
        with open(os.path.join(self.repo, "survivor.pid")) as f:
            return int(f.read())

    def unkillable(self):
        """Make the survivor immune to ratchet's signals, as a process stuck in the kernel is."""
        real = procs.signal_pid

        def signal_except_survivor(pid, sig):
            if os.path.exists(os.path.join(self.repo, "survivor.pid")) and pid == self.survivor():
                return
            real(pid, sig)
        return mock.patch.object(procs, "signal_pid", signal_except_survivor)

    def test_survivor_writes_unclean_blocks_trials_until_clean_finds_none(self):
        init = ["init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                "--report-source", "stdout", "--protect", "bench.py"]
        self.run_ok(*init)
        self.run_ok("baseline")
        self.assertFalse(alive(self.survivor()))
        self.set_value(11)
        with self.unkillable():
            err = self.run_fail("iterate", "--hypothesis", "h", code=1)
            pid = self.survivor()
            self.addCleanup(lambda: alive(pid) and belongs(pid, self.repo) and os.kill(pid, signal.SIGKILL))
            self.assertIn("survived the kill", err)
            self.assertIn(str(pid), err)
            self.assertIn("ratchet.py clean", err)
            with open(os.path.join(self.repo, ".ratchet", "UNCLEAN")) as f:
                marker = json.load(f)
            self.assertEqual([p["pid"] for p in marker["processes"]], [pid])
            self.assertEqual((marker["iter"], marker["trial"]), (1, 1))
            reports = sorted(os.listdir(os.path.join(self.repo, ".ratchet", "reports")))
            err = self.run_fail("iterate", "--hypothesis", "h")
            self.assertIn("ratchet.py clean", err)
            self.assertEqual(sorted(os.listdir(os.path.join(self.repo, ".ratchet", "reports"))), reports)
            err = self.run_fail("clean")
            self.assertIn(f"still running after SIGKILL: {pid}", err)
            self.assertTrue(alive(pid))
            # A new run does not wash the marker away: it guards the machine.
            self.run_ok("stop")
            self.run_ok(*init)
            self.assertIn("ratchet.py clean", self.run_fail("baseline"))
        out = self.run_ok("clean")
        self.assertIn("killed 1 leftover process", out)
        procs.wait_gone([pid])
        self.assertFalse(alive(pid))
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "UNCLEAN")))
        self.assertIn("nothing to clean", self.run_ok("clean"))
        self.assertIn("baseline: score 10", self.run_ok("baseline"))

    def test_a_corrupt_unclean_blocks_trials_and_clean_sets_it_aside(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        marker = os.path.join(self.repo, ".ratchet", "UNCLEAN")
        with open(marker, "w") as f:
            f.write('{"format": 1, "marker": "ratchet-')  # a torn write
        self.set_value(11)
        err = self.run_fail("iterate", "--hypothesis", "h")
        self.assertIn("UNCLEAN", err)  # the fix is `clean`, never "start a new run with `init`" (init keeps it)
        self.assertIn("run `ratchet.py clean`", err)
        self.assertNotIn("init", err)
        code, out, err = cli("doctor", "--runs", "1", cwd=self.repo)
        self.assertEqual(code, 2, err)
        self.assertIn("leftover processes", out)
        out = self.run_ok("clean")
        self.assertIn("UNCLEAN was unreadable: set aside as .ratchet/UNCLEAN.corrupt-", out)
        self.assertFalse(os.path.exists(marker))
        kept = [n for n in os.listdir(os.path.join(self.repo, ".ratchet")) if n.startswith("UNCLEAN.corrupt-")]
        self.assertEqual(len(kept), 1)  # set aside, never deleted
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "h"))


if __name__ == "__main__":
    unittest.main()
