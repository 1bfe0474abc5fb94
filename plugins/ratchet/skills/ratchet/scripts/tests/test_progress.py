"""Every long-running command shows the same heartbeat (heartbeat.py): the
doctor's runs, the guard and the holdout, not only the trials."""

import os
import shutil
import tempfile
from unittest import mock

from ratchetlib.measure import heartbeat
from tests.util import INIT, RepoTest, TRIAL_PY, cli, write

SLOW = "import time\ntime.sleep(0.3)\nprint('score:', open('value.txt').read().strip())\n"


class ProgressTest(RepoTest):
    files = {"bench.py": "print('score:', open('value.txt').read().strip())\n", "slow.py": SLOW,
             "value.txt": "10\n"}

    def cli_err(self, *argv):
        with mock.patch.dict(os.environ, {heartbeat.ENV_INTERVAL: "0.05"}):
            code, out, err = cli(*argv, cwd=self.repo)
        self.assertIn(code, (0, 2), err)
        self.assertNotIn("running", out)   # stdout stays the plain answer
        return err

    def test_doctor_runs(self):
        tmp = tempfile.mkdtemp(prefix="progress-")
        self.addCleanup(shutil.rmtree, tmp, True)
        with mock.patch.object(tempfile, "tempdir", tmp):
            err = self.cli_err("doctor", "--run-command", f"{TRIAL_PY} slow.py", "--direction", "max",
                               "--metric-name", "score", "--runs", "2", "--trial-timeout-seconds", "30")
        self.assertIn("ratchet: doctor run 1/2 running 0:00 (timeout 0:30)", err)
        self.assertIn("ratchet: doctor run 2/2 running 0:00", err)

    def test_guard_and_holdout(self):
        self.run_ok(*INIT, "--guard-command", f"{TRIAL_PY} slow.py", "--holdout-command", f"{TRIAL_PY} slow.py",
                    "--guard-timeout-seconds", "30")
        err = self.cli_err("baseline")
        self.assertIn("ratchet: guard of iter 0 running 0:00 (timeout 0:30)", err)
        write(self.repo, "value.txt", "12\n")
        self.cli_err("iterate", "--hypothesis", "up")
        err = self.cli_err("stop")
        self.assertIn("ratchet: holdout on the start commit, run 1/1 running 0:00", err)
        self.assertIn("ratchet: holdout on the best commit, run 1/1 running 0:00", err)
