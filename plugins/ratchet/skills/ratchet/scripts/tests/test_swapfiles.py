"""A paired swap after the first of each side writes the captured files
(io/swapfiles.py, issue 18): the same bytes, modes, links and absences as
the git swap (a side with a folder where the other has a file is left to
git), and every run of a side seeing exactly that side however many
switches there were."""

import os
import stat
import tempfile
import unittest
from unittest import mock

from ratchetlib.io import swapfiles
from tests.util import RepoTest, git, read, write

# The score says which side is in the tree: value.txt, +1000 with new.txt, +100 without old.txt.
SIDES_BENCH = """import os
v = int(open('value.txt').read())
v += 1000 if os.path.exists('pkg/new.txt') else 0
v += 100 if not os.path.exists('old.txt') else 0
print('score:', v)
"""


class CaptureRestore(unittest.TestCase):
    def setUp(self):
        self.repo = tempfile.mkdtemp(prefix="ratchet-swapfiles-")
        self.addCleanup(lambda: __import__("shutil").rmtree(self.repo, True))

    def put(self, rel, data, mode=0o644):
        full = os.path.join(self.repo, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        os.chmod(full, mode)

    def test_a_side_comes_back_byte_and_mode_exact_with_links_and_absences(self):
        self.put("run.sh", b"#!/bin/sh\n", 0o755)
        self.put("secret.cfg", b"k=v\r\n", 0o600)
        os.symlink("run.sh", os.path.join(self.repo, "link"))
        rels = ["run.sh", "secret.cfg", "link", "deep/new/file.txt"]
        side = swapfiles.read_side(self.repo, rels)
        self.assertIsNone(side["deep/new/file.txt"])
        # the other side: everything different, a new file in new folders
        os.remove(os.path.join(self.repo, "run.sh"))
        self.put("secret.cfg", b"other", 0o644)
        os.remove(os.path.join(self.repo, "link"))
        self.put("deep/new/file.txt", b"new")
        swapfiles.write_side(self.repo, side)
        with open(os.path.join(self.repo, "run.sh"), "rb") as f:
            self.assertEqual(f.read(), b"#!/bin/sh\n")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.repo, "run.sh")).st_mode), 0o755)
        with open(os.path.join(self.repo, "secret.cfg"), "rb") as f:
            self.assertEqual(f.read(), b"k=v\r\n")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.repo, "secret.cfg")).st_mode), 0o600)
        self.assertEqual(os.readlink(os.path.join(self.repo, "link")), "run.sh")
        self.assertFalse(os.path.exists(os.path.join(self.repo, "deep")))  # emptied folders removed
        self.assertEqual(sorted(os.listdir(self.repo)), ["link", "run.sh", "secret.cfg"])  # no temporary left

    def test_a_file_where_the_other_side_has_a_folder(self):
        self.put("x", b"a file")
        one = swapfiles.read_side(self.repo, ["x", "x/y"])
        self.assertEqual(one, {"x": ("file", 0o644, b"a file"), "x/y": None})
        os.remove(os.path.join(self.repo, "x"))
        self.put("x/y", b"in a folder")
        self.assertIsNone(swapfiles.read_side(self.repo, ["x", "x/y"]))  # `x` is a folder here: git swaps this side
        swapfiles.write_side(self.repo, one)  # the folder's file goes first, then the folder, then the file is written
        with open(os.path.join(self.repo, "x"), "rb") as f:
            self.assertEqual(f.read(), b"a file")

    def test_what_it_cannot_hold_is_left_to_git(self):
        os.makedirs(os.path.join(self.repo, "adir"))
        self.assertIsNone(swapfiles.read_side(self.repo, ["adir"]))
        os.mkfifo(os.path.join(self.repo, "fifo"))
        self.assertIsNone(swapfiles.read_side(self.repo, ["fifo"]))
        self.put("big", b"x" * 100)
        with mock.patch.object(swapfiles, "MAX_BYTES", 99):
            self.assertIsNone(swapfiles.read_side(self.repo, ["big"]))

    def test_sweep_removes_only_a_killed_writes_temporary(self):
        self.put("src/a.py", b"a")
        self.put("src/.ratchet-swap-123-a.py", b"half")
        self.put("src/.ratchet-swap-123-other.py", b"not one of ours")
        swapfiles.clear_temps(self.repo, ["src/a.py"])
        self.assertEqual(sorted(os.listdir(os.path.join(self.repo, "src"))), [".ratchet-swap-123-other.py", "a.py"])


class EverySwapSeesItsSide(RepoTest):
    files = {"bench.py": SIDES_BENCH, "value.txt": "10\n", "old.txt": "old\n"}

    def test_incumbent_and_candidate_runs_each_see_only_their_side(self):
        self.start("--trials", "3", "--max-trials", "3")
        write(self.repo, "value.txt", "20\n")
        write(self.repo, "pkg/new.txt", "new\n")
        os.remove(os.path.join(self.repo, "old.txt"))
        os.chmod(os.path.join(self.repo, "value.txt"), 0o600)
        self.run_ok("iterate", "--hypothesis", "every side change at once")
        rec = self.records()[-1]
        self.assertEqual([t["score"] for t in rec["incumbent_trials"]], [10.0] * 3, rec["incumbent_trials"])
        self.assertEqual([t["score"] for t in rec["trials"]], [1120.0] * 3, rec["trials"])
        self.assertEqual(rec["decision"], "keep")
        self.assertEqual(read(self.repo, "value.txt"), "20\n")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.repo, "value.txt")).st_mode), 0o600)
        self.assertEqual(git(self.repo, "status", "--porcelain").strip(), "")
        self.assertFalse([n for n in os.listdir(self.repo) if n.startswith(".ratchet-swap-")])


if __name__ == "__main__":
    unittest.main()
