"""The CLI contract: exit codes, one-line errors, --json, the demo."""

import contextlib
import io
import json
import os
import subprocess
import sys
import unittest

from tests.util import INIT, RATCHET, RepoTest


class CliTest(RepoTest):
    def test_usage_errors_are_one_line_exit_2(self):
        self.run_fail("init")
        self.run_fail("bogus-verb")
        self.run_fail(*INIT, "--trials", "three")
        self.run_fail(*INIT[:4])
        self.run_fail("status")  # no run yet
        self.run_fail("iterate", "--hypothesis", "x")

    def test_json_outputs(self):
        self.run_ok(*INIT)
        data = json.loads(self.run_ok("baseline", "--json"))
        self.assertEqual(data["record"]["decision"], "baseline")
        self.set_value(12)
        data = json.loads(self.run_ok("iterate", "--hypothesis", "h", "--json"))
        self.assertEqual((data["record"]["decision"], data["next"]), ("keep", "continue"))
        st = json.loads(self.run_ok("status", "--json"))
        for key in ("run_id", "iteration", "best", "baseline", "stop", "config"):
            self.assertIn(key, st)
        self.assertEqual((st["iteration"], st["best"], st["baseline"], st["stop"]), (1, 12.0, 10.0, None))
        self.assertEqual(st["config"]["metric_name"], "score")
        hist = json.loads(self.run_ok("history", "--json"))
        self.assertEqual([r["decision"] for r in hist], ["baseline", "keep"])
        self.assertEqual(len(json.loads(self.run_ok("history", "--json", "--last", "1"))), 1)

    def test_status_is_short_and_echoes_instructions(self):
        self.run_ok(*INIT, "--instructions", "Never touch the tests.")
        self.run_ok("baseline")
        for v in range(11, 16):
            self.set_value(v)
            self.run_ok("iterate", "--hypothesis", f"v{v}")
        out = self.run_ok("status")
        self.assertLessEqual(len(out.splitlines()), 10)
        self.assertIn("instructions: Never touch the tests.", out)
        self.assertIn("Never touch the tests.", self.run_ok("iterate", "--hypothesis", "again"))

    def test_tail_shows_traceback(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        os.remove(os.path.join(self.repo, "value.txt"))
        self.run_ok("iterate", "--hypothesis", "crash")
        out = self.run_ok("tail")
        self.assertIn("Traceback (most recent call last)", out)
        self.assertIn("FileNotFoundError", out)

    def test_works_from_a_subdirectory_and_by_path(self):
        os.makedirs(os.path.join(self.repo, "sub"))
        p = subprocess.run([sys.executable, RATCHET, *INIT], cwd=os.path.join(self.repo, "sub"),
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.repo, ".ratchet", "config.json")))


    def test_a_signal_after_the_work_is_done_does_not_change_the_exit_code(self):
        """ratchet.py ignores SIGINT/SIGTERM once main() has returned: in the
        interpreter's teardown Python puts the default handlers back, and a late
        signal (a supervisor stopping a loop that just ended) would turn exit 3
        into death by the signal (-15), which the exit-code contract does not have."""
        import runpy
        import signal
        from unittest import mock
        self.start("--calibration-runs", "2")
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        self.addCleanup(lambda: [signal.signal(s, h) for s, h in saved.items()])
        with mock.patch.object(sys, "argv", [RATCHET, "-C", self.repo, "status"]), \
                mock.patch("ratchetlib.cli.main.exit_process", side_effect=sys.exit), \
                contextlib.redirect_stdout(io.StringIO()), self.assertRaises(SystemExit) as done:  # not os._exit here
            runpy.run_path(RATCHET, run_name="__main__")
        self.assertEqual(done.exception.code, 0)
        self.assertEqual([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)], [signal.SIG_IGN] * 2)

class DemoTest(unittest.TestCase):
    def test_demo_runs_every_outcome(self):
        p = subprocess.run([sys.executable, RATCHET, "demo"], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for word in ("iter 1: KEEP", "iter 2: REVERT", "iter 3: CRASH", "iter 4: TAMPERED", "NameError",
                     "untouched untracked file notes.txt", "demo finished"):
            self.assertIn(word, p.stdout)


if __name__ == "__main__":
    unittest.main()
