"""Trial execution: capture to disk, exit codes, timeouts, process trees."""

import os
import shutil
import sys
import tempfile
import time
import unittest

from ratchetlib import runner

PY = sys.executable


def slurp(path):
    with open(path) as f:
        return f.read()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class RunTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.out, self.err = os.path.join(self.dir, "o"), os.path.join(self.dir, "e")

    def run_cmd(self, cmd, timeout=None):
        return runner.run(cmd, self.dir, self.out, self.err, timeout)

    def test_streams_to_files_and_reports_exit_code(self):
        r = self.run_cmd(f"{PY} -c \"import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)\"")
        self.assertEqual((r.exit_code, r.timed_out), (3, False))
        self.assertEqual(slurp(self.out), "out\n")
        self.assertEqual(slurp(self.err), "err\n")

    def test_stdin_is_closed(self):
        r = self.run_cmd(f"{PY} -c \"import sys; print(repr(sys.stdin.read()))\"")
        self.assertEqual(r.exit_code, 0)
        self.assertEqual(slurp(self.out), "''\n")

    def test_marker_is_in_the_environment(self):
        self.run_cmd(f"{PY} -c \"import os; print(os.environ['{runner.MARKER}'])\"")
        self.assertEqual(len(slurp(self.out).strip()), 32)

    @unittest.skipUnless(os.path.isdir("/proc"), "needs /proc (Linux)")
    def test_timeout_kills_children_grandchildren_and_setsid_escapees(self):
        pids = os.path.join(self.dir, "pids")
        script = os.path.join(self.dir, "tree.py")
        with open(script, "w") as f:
            f.write(f"""import os, subprocess, sys, time
procs = [subprocess.Popen(['sleep', '300']),
         subprocess.Popen([sys.executable, '-c', 'import subprocess,time; subprocess.Popen(["sleep","301"]); time.sleep(300)']),
         subprocess.Popen(['sleep', '302'], start_new_session=True)]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open({pids!r} + '.daemon', 'w').write(str(os.getpid()))
        time.sleep(300)
    os._exit(0)
open({pids!r}, 'w').write(' '.join(str(p.pid) for p in procs))
time.sleep(300)
""")
        t0 = time.monotonic()
        r = self.run_cmd(f"{PY} {script}", timeout=1.5)
        self.assertTrue(r.timed_out)
        self.assertIsNone(r.exit_code)
        self.assertLess(time.monotonic() - t0, 10)
        victims = [int(p) for p in slurp(pids).split()] + [int(slurp(pids + ".daemon"))]
        time.sleep(0.1)
        self.assertEqual([p for p in victims if alive(p)], [])
        self.assertEqual(r.survivors, ())

    @unittest.skipUnless(os.path.isdir("/proc"), "needs /proc (Linux)")
    def test_background_leftovers_of_a_finished_trial_are_killed(self):
        pidfile = os.path.join(self.dir, "bg")
        r = self.run_cmd(f"(setsid sleep 300 & echo $! > {pidfile}); echo done")
        self.assertEqual(r.exit_code, 0)
        time.sleep(0.1)
        self.assertFalse(alive(int(slurp(pidfile))))


if __name__ == "__main__":
    unittest.main()
