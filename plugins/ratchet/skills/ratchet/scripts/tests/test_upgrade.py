"""A run started before the renovation (issue 19) resumes after it.

tests/fixtures/run-before-renovation.tar.gz holds a project and the run's
seal key exactly as ratchet left them at commit 7d6dd13 (the last commit
with the flat ratchetlib/, before the layer folders and the typed RunState):

    git init; bench.py prints `score: <value.txt>`; value.txt = 10; commit
    ratchet.py init --run-command "python3 bench.py" --metric-name score \
        --direction max --iterations 10 --report-source stdout
    ratchet.py baseline
    value.txt = 20; ratchet.py iterate --hypothesis "double the value"   # keep
    value.txt = 15; ratchet.py iterate --hypothesis "a smaller value"    # revert

(`proj/` is the repository, `state/` the XDG_STATE_HOME holding the key.)
This ratchet must read that state.json, results.jsonl and the seals as they
are, show the same run, and carry it on: a keep, a revert and a stop.
"""

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

from tests.util import PY, RATCHET, git, write

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "run-before-renovation.tar.gz")


class RunFromBeforeTheRenovationTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ratchet-upgrade-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        with tarfile.open(FIXTURE) as t:
            if hasattr(tarfile, "data_filter"):  # 3.12+ (and late 3.10/3.11): refuse odd members
                t.extractall(self.tmp, filter="data")
            else:
                t.extractall(self.tmp)
        self.repo = os.path.join(self.tmp, "proj")
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
        self.env["XDG_STATE_HOME"] = os.path.join(self.tmp, "state")

    def ratchet(self, *args, code=0):
        p = subprocess.run([PY, RATCHET, *args], cwd=self.repo, env=self.env, capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, code, p.stdout + p.stderr)
        return p.stdout

    def state(self):
        with open(os.path.join(self.repo, ".ratchet", "state.json")) as f:
            return json.load(f)

    def test_status_reads_the_old_run_as_it_was(self):
        before = self.state()
        out = self.ratchet("status")
        self.assertIn("baseline 10 · best 20", out)
        self.assertIn("so far: 1 keep, 1 revert", out)
        self.assertIn('"double the value"', out)  # the hints memory of the old state
        self.assertNotIn("sealed this run's contract", out)  # the old run was sealed already: nothing adopted
        self.assertEqual(self.state(), before)  # reading writes nothing

    def test_the_run_carries_on_keep_revert_stop(self):
        before = self.state()
        write(self.repo, "value.txt", "30\n")
        self.assertIn("KEEP", self.ratchet("iterate", "--hypothesis", "thirty"))
        write(self.repo, "value.txt", "25\n")
        self.assertIn("REVERT", self.ratchet("iterate", "--hypothesis", "twenty-five"))
        st = self.state()
        self.assertEqual((st["iteration"], st["best"], st["best_iter"], st["baseline"]), (4, 30.0, 3, 10.0))
        self.assertEqual(st["counts"], {"baseline": 1, "keep": 2, "revert": 2})
        self.assertEqual(st["untracked_before"], before["untracked_before"])
        self.assertEqual(st["memory"]["records"], before["memory"]["records"] + 2)
        self.assertEqual(st["memory"]["best_win"]["hypothesis"], "double the value")  # +100% still the biggest
        self.assertEqual(st["escalation"]["streak"], 1)
        self.assertEqual(git(self.repo, "log", "-1", "--format=%s").strip(), "ratchet: iter 3: thirty")
        history = self.ratchet("history", "--last", "10")
        self.assertEqual([line.split()[1] for line in history.splitlines() if line.strip()[:1].isdigit()],
                         ["baseline", "keep", "revert", "keep", "revert"])
        self.assertIn("stopped", self.ratchet("stop"))
        self.assertEqual(self.state()["stop"], "stopped by user")


if __name__ == "__main__":
    unittest.main()
