"""git's own configuration pins (io/gitguard.py) on their own: what a change
to them looks like, and that an unchanged file is known by its stat alone."""

import json
import os
import shutil
import tempfile
import unittest
from unittest import mock

from ratchetlib.io import gitguard, harness, store_files
from tests.util import make_repo, write

FAR_FUTURE_NS = 10 ** 30  # every pinned file is older than the racy window


class GitGuardTest(unittest.TestCase):
    def setUp(self):
        self.repo = make_repo(self)
        self.store = os.path.join(self.repo, ".ratchet")
        os.makedirs(self.store)
        self.config = os.path.join(self.repo, ".git", "config")

    def pin(self, now_ns=FAR_FUTURE_NS):
        with mock.patch.object(store_files, "fs_now", return_value=now_ns):
            return gitguard.pin(self.repo, self.store)

    def hashed_during_verify(self):
        with mock.patch.object(harness, "digest", wraps=harness.digest) as digest:
            changes = gitguard.verify(self.repo, self.store)
        return changes, [c.args[0] for c in digest.call_args_list]

    def test_unchanged_files_are_not_hashed_again(self):
        pins = self.pin()
        self.assertGreater(len([e for e in pins.values() if e.get("stat")]), 1)  # config and the hook samples
        self.assertEqual(self.hashed_during_verify(), ({}, []))

    def test_racy_pins_are_hashed_every_time(self):
        self.pin(now_ns=os.stat(self.config).st_ctime_ns)  # pinned the instant it was written
        changes, hashed = self.hashed_during_verify()
        self.assertEqual(changes, {})
        self.assertIn(self.config, hashed)

    def test_a_file_server_whose_clock_runs_behind_cannot_make_a_fresh_pin_settled(self):
        """Racy is judged by the clock that stamps the files (store_files.fs_now):
        with this machine's clock 10 s ahead, .git/config (written by setUp a
        moment ago) is still racy, so always hashed, never known by its stat."""
        ahead = store_files.time.time_ns() + 10 * 10 ** 9
        with mock.patch.object(store_files.time, "time_ns", return_value=ahead):
            pins = gitguard.pin(self.repo, self.store)
        self.assertIsNone(pins[".git/config"]["stat"])
        self.assertEqual([n for n in os.listdir(self.store) if n.startswith(".tmp-")], [])

    def test_a_same_size_edit_with_its_old_mtime_put_back_is_found(self):
        self.pin()
        st = os.stat(self.config)
        with open(self.config, "rb") as f:
            data = f.read()
        with open(self.config, "wb") as f:
            f.write(data.replace(b"name = t", b"name = u"))  # same size
        os.utime(self.config, ns=(st.st_atime_ns, st.st_mtime_ns))  # the ctime still moves
        self.assertEqual(os.stat(self.config).st_size, st.st_size)
        changes, hashed = self.hashed_during_verify()
        self.assertEqual(changes, {".git/config": gitguard.EDITED})
        self.assertEqual(hashed, [self.config])

    def test_a_hook_that_is_a_symlink_is_judged_by_its_target(self):
        target = os.path.join(os.path.dirname(self.repo), "shared-hook")
        write(os.path.dirname(self.repo), "shared-hook", "#!/bin/sh\nexit 0\n")
        os.symlink(target, os.path.join(self.repo, ".git", "hooks", "pre-commit"))
        self.pin()
        self.assertEqual(gitguard.verify(self.repo, self.store), {})
        write(os.path.dirname(self.repo), "shared-hook", "#!/bin/sh\nexit 1\n")
        self.assertEqual(gitguard.verify(self.repo, self.store), {".git/hooks/pre-commit": gitguard.EDITED})


class MovedProjectTest(unittest.TestCase):
    """The pins name files by label, resolved where the repository is now: a
    project folder moved after `init` is checked (and restored) in its new
    place, and nothing is written where it used to be."""

    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="ratchet-moved-")
        self.addCleanup(shutil.rmtree, self.top, True)
        self.old, self.new = os.path.join(self.top, "old"), os.path.join(self.top, "new")
        shutil.move(make_repo(self), self.old)
        os.makedirs(os.path.join(self.old, ".ratchet"))
        gitguard.pin(self.old, os.path.join(self.old, ".ratchet"))
        os.rename(self.old, self.new)
        self.store = os.path.join(self.new, ".ratchet")

    def test_unchanged_after_the_move(self):
        self.assertEqual(gitguard.verify(self.new, self.store), {})

    def test_an_edit_is_found_and_restored_in_the_new_place_only(self):
        config = os.path.join(self.new, ".git", "config")
        with open(config) as f:
            was = f.read()
        write(self.new, ".git/config", was + "[core]\n\tfsmonitor = ./spy\n")
        os.remove(os.path.join(self.new, ".git", "hooks", "pre-commit.sample"))
        changes = gitguard.verify(self.new, self.store)
        self.assertEqual(changes, {".git/config": gitguard.EDITED, ".git/hooks/pre-commit.sample": gitguard.DELETED})
        self.assertEqual(gitguard.restore(self.new, self.store, changes), [])
        self.assertEqual(gitguard.verify(self.new, self.store), {})
        with open(config) as f:
            self.assertEqual(f.read(), was)
        self.assertFalse(os.path.exists(self.old))

    def test_a_label_that_leads_out_of_the_hooks_folder_is_ignored(self):
        path = os.path.join(self.store, "gitguard.json")
        with open(path) as f:
            doc = json.load(f)
        doc["files"][".git/hooks/../../../escaped"] = {"absent": True}
        with open(path, "w") as f:
            json.dump(doc, f)
        write(self.top, "escaped", "not ratchet's\n")
        self.assertEqual(gitguard.verify(self.new, self.store), {})
        gitguard.restore(self.new, self.store, {".git/hooks/../../../escaped": gitguard.ADDED})
        self.assertTrue(os.path.exists(os.path.join(self.top, "escaped")))


if __name__ == "__main__":
    unittest.main()
