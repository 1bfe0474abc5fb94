"""io/treescan against git itself: after each kind of write a run could make,
the tree derived from two scans is exactly what `git status` (carry.tree)
reports, or None, and None wherever only git can tell (a tracked file, git's
own state, a nested repository, .gitattributes, a racy write)."""

import os
import subprocess
import unittest
from unittest import mock

from ratchetlib.io import carry, treescan
from tests.util import git, make_repo, write

FILES = {"a.py": "A = 1\n", "sub/b.py": "B = 2\n", "value.txt": "10\n", ".gitignore": "build/\n*.log\n"}


class DeriveTest(unittest.TestCase):
    def setUp(self):
        self.repo = make_repo(self, FILES)
        write(self.repo, "notes.txt", "the user's\n")        # untracked
        write(self.repo, "build/out.o", "obj\n")             # ignored folder
        write(self.repo, "run.log", "log\n")                 # ignored file
        os.makedirs(os.path.join(self.repo, ".ratchet"))
        write(self.repo, ".ratchet/x.json", "{}\n")
        old = 1_600_000_000
        for top, _, names in os.walk(self.repo):  # out of the racy window, as a user's files are
            if "/.git" not in top + "/":
                for n in names:
                    os.utime(os.path.join(top, n), (old, old))

    def derived(self, change):
        """(derived tree or None, git's tree) around `change()`."""
        tree = carry.tree(self.repo)
        before = treescan.scan(self.repo, tree)
        self.assertIsNotNone(before)
        change()
        after = treescan.scan(self.repo, tree)
        got = treescan.derive(self.repo, tree, before, after) if after else None
        return got, carry.tree(self.repo)

    def assertDerived(self, change):
        got, truth = self.derived(change)
        self.assertIsNotNone(got, "this write needs no git process")
        self.assertEqual(got, truth)

    def assertGits(self, change):
        got, _ = self.derived(change)
        self.assertIsNone(got, "only git can tell")

    def test_writes_to_untracked_and_ignored_files_are_derived(self):
        self.assertDerived(lambda: None)
        self.assertDerived(lambda: write(self.repo, "new.txt", "x\n"))
        self.assertDerived(lambda: write(self.repo, "deep/er/new.bin", "y\n"))
        self.assertDerived(lambda: write(self.repo, "build/more.o", "z\n"))
        self.assertDerived(lambda: write(self.repo, "run.log", "longer log\n"))
        self.assertDerived(lambda: os.remove(os.path.join(self.repo, "notes.txt")))
        self.assertDerived(lambda: write(self.repo, ".ratchet/y.json", "{}\n"))
        self.assertDerived(lambda: write(self.repo, "sub/__pycache__/b.cpython-311.pyc", "pyc\n"))
        self.assertDerived(lambda: os.symlink("a.py", os.path.join(self.repo, "link.py")))
        self.assertDerived(lambda: os.mkfifo(os.path.join(self.repo, "pipe")))  # git lists no fifo

    def test_an_untracked_file_replaced_by_a_folder(self):
        def change():
            os.remove(os.path.join(self.repo, "notes.txt"))
            write(self.repo, "notes.txt/inside.txt", "x\n")
        self.assertDerived(change)

    def test_a_tracked_file_is_gits_to_judge(self):
        self.assertGits(lambda: write(self.repo, "a.py", "A = 11\n"))
        self.assertGits(lambda: os.remove(os.path.join(self.repo, "sub/b.py")))
        self.assertGits(lambda: os.chmod(os.path.join(self.repo, "a.py"), 0o755))
        self.assertGits(lambda: os.utime(os.path.join(self.repo, "a.py"), (1, 1)))

    def test_a_same_size_rewrite_with_the_old_mtime_put_back(self):
        full = os.path.join(self.repo, "value.txt")
        st = os.stat(full)

        def change():
            write(self.repo, "value.txt", "99\n")
            os.utime(full, ns=(st.st_atime_ns, st.st_mtime_ns))  # the ctime still moves
        self.assertGits(change)

    def test_a_racy_tracked_file_is_judged_by_its_bytes(self):
        """A write in the clock tick of the scan can leave the stat as it was:
        the scan hashed the file, and a stat that did not move is checked
        against that hash."""
        write(self.repo, "value.txt", "12\n")  # ratchet's swap, just now
        tree = carry.tree(self.repo)
        before = treescan.scan(self.repo, tree)
        self.assertIn("value.txt", before["hashes"])
        same_stat = dict(before["files"])
        with open(os.path.join(self.repo, "value.txt"), "r+") as f:
            f.write("13\n")  # same size, same tick (the stat below is the one the clock could not tell apart)
        after = treescan.scan(self.repo, tree)
        after["files"] = {**after["files"], "value.txt": same_stat["value.txt"]}
        self.assertIsNone(treescan.derive(self.repo, tree, before, after))
        write(self.repo, "value.txt", "12\n")
        after = treescan.scan(self.repo, tree)
        after["files"] = {**after["files"], "value.txt": same_stat["value.txt"]}
        self.assertEqual(treescan.derive(self.repo, tree, before, after), carry.tree(self.repo))

    def test_racy_by_the_clock_that_stamps_the_files(self):
        """A file server whose clock runs an hour behind this machine's: the
        file ratchet just wrote is still racy (judged against the newest
        timestamp the scan saw, not only against this machine's clock)."""
        write(self.repo, "value.txt", "12\n")
        tree = carry.tree(self.repo)
        ahead = treescan.time.time_ns() + 3600 * 10 ** 9
        with mock.patch.object(treescan.time, "time_ns", return_value=ahead):
            self.assertIn("value.txt", treescan.scan(self.repo, tree)["hashes"])
            rescanned = treescan.rescan(self.repo, {"files": {}, "hashes": {}}, ["value.txt"], tree)
            self.assertIn("value.txt", rescanned["hashes"])

    def test_a_racy_file_too_large_to_hash_is_gits(self):
        with mock.patch.object(treescan, "HASH_MAX", 2):
            write(self.repo, "value.txt", "12\n")
            tree = carry.tree(self.repo)
            before = treescan.scan(self.repo, tree)
            self.assertIsNone(treescan.derive(self.repo, tree, before, treescan.scan(self.repo, tree)))

    def test_a_file_the_index_has_coming_back_is_gits(self):
        os.remove(os.path.join(self.repo, "a.py"))  # git shows it deleted
        self.assertGits(lambda: write(self.repo, "a.py", "A = 1\n"))

    def test_git_run_by_the_trial_is_gits(self):
        self.assertGits(lambda: git(self.repo, "add", "notes.txt"))
        self.assertGits(lambda: git(self.repo, "commit", "-q", "--allow-empty", "-m", "x"))
        self.assertGits(lambda: git(self.repo, "config", "core.autocrlf", "true"))
        self.assertGits(lambda: write(self.repo, ".git/info/exclude", "notes.txt\n"))

    def test_the_users_git_configuration_is_part_of_gits_state(self):
        home = os.path.join(os.path.dirname(self.repo), "home")
        os.makedirs(home)
        with mock.patch.dict(os.environ, {"HOME": home}):
            self.assertGits(lambda: write(home, ".gitconfig", "[core]\n\tautocrlf = true\n"))

    def test_gitattributes_is_gits(self):
        self.assertGits(lambda: write(self.repo, ".gitattributes", "*.txt text eol=crlf\n"))
        self.assertGits(lambda: write(self.repo, "sub/.gitattributes", "*.py -text\n"))

    def test_a_name_that_is_not_ascii_is_gits(self):
        self.assertGits(lambda: write(self.repo, "caf\u00e9.txt", "x\n"))

    def test_no_scan_with_a_nested_repository_or_too_many_files(self):
        tree = carry.tree(self.repo)
        with mock.patch.object(treescan, "MAX_FILES", 3):
            self.assertIsNone(treescan.scan(self.repo, tree))
        self.assertIsNotNone(treescan.scan(self.repo, tree))
        subprocess.run(["git", "init", "-q", os.path.join(self.repo, "vendor")], check=True)
        self.assertIsNone(treescan.scan(self.repo, carry.tree(self.repo)))

    def test_a_swap_rescanned_is_a_scan(self):
        tree = carry.tree(self.repo)
        before = treescan.scan(self.repo, tree)
        write(self.repo, "a.py", "A = 2\n")
        write(self.repo, "fresh.py", "F = 1\n")
        tree = carry.tree(self.repo)
        moved = treescan.rescan(self.repo, before, ["a.py", "fresh.py", "gone.py"], tree)
        scanned = treescan.scan(self.repo, tree)
        self.assertEqual(moved["files"], scanned["files"])
        self.assertEqual(moved["hashes"], scanned["hashes"])


if __name__ == "__main__":
    unittest.main()
