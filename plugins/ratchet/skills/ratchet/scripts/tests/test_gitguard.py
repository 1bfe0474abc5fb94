"""git's own configuration pins (io/gitguard.py) on their own: what a change
to them looks like, and that an unchanged file is known by its stat alone."""

import os
import unittest
from unittest import mock

from ratchetlib.io import gitguard, harness
from tests.util import make_repo, write

FAR_FUTURE_NS = 10 ** 30  # every pinned file is older than the racy window


class GitGuardTest(unittest.TestCase):
    def setUp(self):
        self.repo = make_repo(self)
        self.store = os.path.join(self.repo, ".ratchet")
        os.makedirs(self.store)
        self.config = os.path.join(self.repo, ".git", "config")

    def pin(self, now_ns=FAR_FUTURE_NS):
        with mock.patch.object(gitguard.time, "time_ns", return_value=now_ns):
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


if __name__ == "__main__":
    unittest.main()
