"""The pinned harness (harness.py) on its own: pin, verify, restore, named files."""

import json
import os
import stat
import unittest
from unittest import mock

from ratchetlib.io import harness, harness_named
from tests.util import make_repo, read, write

FILES = {"bench.py": "print('score: 1')\n", "tests/test_a.py": "assert True\n", "src/a.py": "x = 1\n",
         ".gitignore": "data/\n"}


class HarnessTest(unittest.TestCase):
    def setUp(self):
        self.repo = make_repo(self, FILES)
        write(self.repo, "data/expected.txt", "42\n")       # git-ignored harness data
        write(self.repo, "data/sub/big.bin", "x" * 5000)
        self.store = os.path.join(self.repo, ".ratchet")
        os.makedirs(self.store)

    def pin(self, specs=("bench.py", "tests", "data"), exclude=(".ratchet",), **kw):
        return harness.pin(self.repo, self.store, list(specs), list(exclude), **kw)

    def verify(self):
        return harness.verify(self.repo, self.store)

    def test_pin_covers_tracked_untracked_and_ignored_files(self):
        summary = self.pin()
        doc = json.loads(read(self.repo, ".ratchet/harness.json"))
        self.assertEqual(sorted(doc["files"]), ["bench.py", "data/expected.txt", "data/sub/big.bin", "tests/test_a.py"])
        self.assertTrue(doc["files"]["bench.py"]["tracked"])
        self.assertFalse(doc["files"]["data/expected.txt"]["tracked"])
        self.assertEqual(summary["files"], 4)
        self.assertEqual(self.verify(), {})

    def test_edit_delete_add_are_found_anywhere_under_a_spec(self):
        self.pin()
        write(self.repo, "bench.py", "print('score: 999')\n")
        os.remove(os.path.join(self.repo, "data", "expected.txt"))
        write(self.repo, "data/new/shadow.py", "x")
        write(self.repo, "tests/conftest.py", "x")
        write(self.repo, "src/b.py", "not protected")
        self.assertEqual(self.verify(), {"bench.py": "edited", "data/expected.txt": "deleted",
                                         "data/new/shadow.py": "added", "tests/conftest.py": "added"})

    def test_same_size_edit_with_the_old_mtime_is_found(self):
        self.pin(now_ns=10 ** 30)  # nothing is racy: the stat fast path is on
        full = os.path.join(self.repo, "data", "expected.txt")
        st = os.stat(full)
        write(self.repo, "data/expected.txt", "43\n")
        os.utime(full, ns=(st.st_atime_ns, st.st_mtime_ns))  # ctime still moves
        self.assertEqual(self.verify(), {"data/expected.txt": "edited"})

    def test_chmod_is_not_a_change(self):
        self.pin()
        for rel in ("bench.py", "data/expected.txt"):
            os.chmod(os.path.join(self.repo, rel), 0o755)
        self.assertEqual(self.verify(), {})
        self.assertTrue(harness.content_unchanged(self.repo, self.store, "bench.py"))

    def test_pycache_and_excluded_paths_are_not_pinned(self):
        write(self.repo, "tests/__pycache__/test_a.cpython-311.pyc", "old")
        write(self.repo, "data/report.txt", "score: 1")
        self.pin(exclude=(".ratchet", "data/report.txt"))
        write(self.repo, "tests/__pycache__/test_a.cpython-311.pyc", "new")
        write(self.repo, "tests/__pycache__/other.pyc", "new")
        write(self.repo, "data/report.txt", "score: 2")
        self.assertEqual(self.verify(), {})

    def test_restore_undoes_every_change_and_keeps_existing_folders(self):
        os.makedirs(os.path.join(self.repo, "data", "empty"))
        self.pin()
        write(self.repo, "bench.py", "print('score: 999')\n")
        os.chmod(os.path.join(self.repo, "bench.py"), 0o600)
        os.remove(os.path.join(self.repo, "data", "expected.txt"))
        write(self.repo, "data/empty/junk.txt", "x")
        write(self.repo, "data/new/deeper/junk.txt", "x")
        self.assertEqual(harness.restore(self.repo, self.store), [])
        self.assertEqual(self.verify(), {})
        self.assertEqual(read(self.repo, "bench.py"), FILES["bench.py"])
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.repo, "bench.py")).st_mode),
                         json.loads(read(self.repo, ".ratchet/harness.json"))["files"]["bench.py"]["mode"])
        self.assertTrue(os.path.isdir(os.path.join(self.repo, "data", "empty")))
        self.assertFalse(os.path.exists(os.path.join(self.repo, "data", "new")))

    def test_large_files_use_git_or_are_reported_unrestorable(self):
        with mock.patch.object(harness, "COPY_MAX_BYTES", 100):
            self.pin()
        doc = json.loads(read(self.repo, ".ratchet/harness.json"))
        self.assertFalse(doc["files"]["data/sub/big.bin"]["copy"])
        write(self.repo, "data/sub/big.bin", "y" * 5000)
        changes = self.verify()
        self.assertEqual(harness.unrestorable(self.store, changes), ["data/sub/big.bin"])
        self.assertEqual(harness.restore(self.repo, self.store), ["data/sub/big.bin"])

    def test_tracked_file_without_copy_comes_back_from_git(self):
        with mock.patch.object(harness, "COPY_MAX_BYTES", 5):
            self.pin()
        write(self.repo, "bench.py", "print('score: 999')\n")
        self.assertEqual(harness.unrestorable(self.store, self.verify()), [])
        self.assertEqual(harness.restore(self.repo, self.store), [])
        self.assertEqual(read(self.repo, "bench.py"), FILES["bench.py"])

    def test_a_corrupted_copy_is_not_used(self):
        self.pin()
        sha = json.loads(read(self.repo, ".ratchet/harness.json"))["files"]["data/expected.txt"]["sha256"]
        write(self.repo, f".ratchet/harness/{sha}", "forged")
        write(self.repo, "data/expected.txt", "0\n")
        self.assertEqual(harness.restore(self.repo, self.store), ["data/expected.txt"])

    def test_symlinks_are_pinned_not_followed(self):
        os.symlink("../src/a.py", os.path.join(self.repo, "tests", "link.py"))
        self.pin()
        self.assertIn("link", json.loads(read(self.repo, ".ratchet/harness.json"))["files"]["tests/link.py"])
        write(self.repo, "src/a.py", "x = 2\n")  # the target is not protected
        self.assertEqual(self.verify(), {})
        os.remove(os.path.join(self.repo, "tests", "link.py"))
        os.symlink("../bench.py", os.path.join(self.repo, "tests", "link.py"))
        self.assertEqual(self.verify(), {"tests/link.py": "edited"})
        harness.restore(self.repo, self.store)
        self.assertEqual(os.readlink(os.path.join(self.repo, "tests", "link.py")), "../src/a.py")

    def test_glob_specs(self):
        write(self.repo, "tests/deep/test_b.py", "x")
        self.pin(specs=("tests/**/test_*.py", "*.py"))
        self.assertEqual(sorted(json.loads(read(self.repo, ".ratchet/harness.json"))["files"]),
                         ["bench.py", "tests/deep/test_b.py", "tests/test_a.py"])
        write(self.repo, "tests/deep/er/test_c.py", "x")
        write(self.repo, "setup.py", "x")
        write(self.repo, "src/c.py", "x")
        self.assertEqual(self.verify(), {"setup.py": "added", "tests/deep/er/test_c.py": "added"})

    def test_no_pin_means_nothing_to_check(self):
        self.assertEqual(self.verify(), {})
        self.assertEqual(harness.restore(self.repo, self.store), [])


class NamedFilesTest(unittest.TestCase):
    def test_tracked_files_a_command_names(self):
        repo = make_repo(self, {"bench.py": "", "pkg/run.py": "", "conf.yaml": "", "out.json": ""})
        write(repo, "untracked.py", "")
        cmd = "cd . && python3 bench.py --config=conf.yaml -m pkg.run untracked.py ../x.py nope.py"
        self.assertEqual(harness_named.named_files(cmd, repo), ["bench.py", "conf.yaml", "pkg/run.py"])
        self.assertEqual(harness_named.named_files("python3 'unbalanced", repo), [])
        self.assertEqual(harness_named.named_files("true", os.path.dirname(repo)), [])


if __name__ == "__main__":
    unittest.main()
