"""Issue 9, part 6: bench/soak.py runs in CI on a short run with kills.

A 20-iteration soak (seeded agent actions, every one of them: improve,
regress, crash, hang, flood, tamper, untracked files, its own commit, fail;
SIGKILL, SIGTERM or SIGINT landing within 1.2 s of most commands' start, the
next command recovering) must exit 0 and print every invariant as held. The
1,000-iteration figures come from `python3 bench/soak.py`.
"""

import os
import re
import subprocess
import sys
import unittest

SOAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..", "..", "bench", "soak.py")
INVARIANTS = ("user files intact", "records consistent with git", "working tree equals HEAD", "no false keep",
              "exit codes", "no stray after a clean end", "no stray after the next recovery", "user branch untouched")

OPTIONS = ["--iterations", "20", "--seed", "3", "--kill-within", "1.2"]


@unittest.skipUnless(sys.platform.startswith("linux"), "the soak scans /proc for stray processes")
class SoakTest(unittest.TestCase):
    def test_a_short_soak_with_kills_keeps_every_invariant(self):
        p = subprocess.run([sys.executable, SOAK, *OPTIONS],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240)
        out = p.stdout
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("soak: every invariant held", out)
        self.assertRegex(out, r"iterations recorded: 20 \(\+ baseline\)")
        checks = re.search(r"^invariant checks: (\d+) run, (\d+) failed$", out, re.M)
        self.assertIsNotNone(checks, out)
        self.assertGreater(int(checks.group(1)), 25)
        self.assertEqual(checks.group(2), "0", out)
        for name in INVARIANTS:
            self.assertRegex(out, rf"(?m)^  {re.escape(name)}: ok \(\d+ checks\)$", out)
        self.assertRegex(out, r"(?m)^decisions: .*keep \d+")
        self.assertRegex(out, r"(?m)^kills: .*SIGKILL [1-9]")
        self.assertRegex(out, r"(?m)^stray processes: \d+ found right after a command \(0 after a command that was "
                              r"not SIGKILLed\), 0 still alive")
        self.assertRegex(out, r"(?m)^wall time: [\d.]+ s")


if __name__ == "__main__":
    unittest.main()
