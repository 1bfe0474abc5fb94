"""Issue 15 point 6 (second half): what a user may not read or write gets
one line that says so, never "not inside a git repository".

Root bypasses file permissions, so as root the CLI runs as `nobody`
(setpriv, setup only: the product never relies on root); as any other user
it runs as that user, whose permissions bind already. Cases: a `.ratchet/`
another user made (e.g. `sudo ratchet init`), one that user made unreadable,
a `.git` this user may not read, and a repository owned by another user
(git's safe.directory check)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from tests.util import RATCHET, git

BENCH = "print('score:', open('value.txt').read().strip())\n"
NOBODY = 65534


def _python_for(prefix):
    """An interpreter (>= 3.10) the unprivileged user can run, or None."""
    for py in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable):
        try:
            p = subprocess.run(prefix + [py, "-c", "import sys; assert sys.version_info >= (3, 10)"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            continue
        if p.returncode == 0:
            return py
    return None


def unprivileged():
    """(argv prefix, uid, python) to run a command as a user file permissions bind."""
    if os.geteuid() != 0:
        return [], os.geteuid(), sys.executable
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise unittest.SkipTest("running as root without setpriv: no unprivileged user to test with")
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    py = _python_for(prefix)
    if py is None:
        raise unittest.SkipTest("no Python >= 3.10 that the user nobody may run")
    return prefix, NOBODY, py


class PermissionTest(unittest.TestCase):
    def setUp(self):
        self.prefix, self.uid, self.py = unprivileged()
        base = tempfile.mkdtemp(prefix="ratchet-perm-")
        self.addCleanup(shutil.rmtree, base, True)
        os.chmod(base, 0o755)
        self.repo = os.path.join(base, "repo")
        os.makedirs(self.repo)
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "config", "user.name", "t")
        git(self.repo, "config", "user.email", "t@example.invalid")
        for rel, text in (("bench.py", BENCH), ("value.txt", "10\n")):
            with open(os.path.join(self.repo, rel), "w") as f:
                f.write(text)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "start")
        self.chown(self.repo, self.uid)
        self.home = os.path.join(base, "home")
        os.makedirs(self.home)
        self.chown(self.home, self.uid)

    def chown(self, path, uid):
        if os.geteuid() != 0:
            return
        for dp, dn, fn in os.walk(path):
            os.chown(dp, uid, uid)
            for n in fn:
                os.lchown(os.path.join(dp, n), uid, uid)

    def cli(self, *argv):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "LC_ALL": "C.UTF-8"}
        p = subprocess.run(self.prefix + [self.py, RATCHET, *argv], cwd=self.repo, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *argv):
        code, out, err = self.cli(*argv)
        self.assertEqual(code, 0, err + out)
        return out

    def fails(self, *argv):
        code, out, err = self.cli(*argv)
        self.assertEqual(code, 2, err + out)
        self.assertTrue(err.startswith("ratchet: error: "), err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertNotIn("not inside a git repository", err)
        return err

    def started(self):
        self.ok("init", "--run-command", f"{self.py} bench.py", "--direction", "max", "--metric-name", "score",
                "--report-source", "stdout")
        self.ok("baseline")

    def need_root(self):
        if os.geteuid() != 0:
            self.skipTest("making a file another user's needs root for the setup")

    def test_a_ratchet_folder_another_user_made_is_named_in_one_line(self):
        self.need_root()
        self.started()
        self.chown(os.path.join(self.repo, ".ratchet"), 0)   # as if `sudo ratchet ...` had run
        with open(os.path.join(self.repo, "value.txt"), "w") as f:
            f.write("11\n")
        results = os.path.join(self.repo, ".ratchet", "results.jsonl")
        with open(results) as f:
            before = f.read()
        err = self.fails("iterate", "--hypothesis", "h")
        self.assertRegex(err, r"cannot (read or )?write \S*\.ratchet\S*: permission denied")
        with open(results) as f:
            self.assertEqual(f.read(), before)
        with open(os.path.join(self.repo, "value.txt")) as f:
            self.assertEqual(f.read(), "11\n")  # the candidate is still in the tree

    def test_a_ratchet_folder_this_user_may_read_but_not_write(self):
        self.need_root()
        self.started()
        root = os.path.join(self.repo, ".ratchet")
        self.chown(root, 0)
        for dp, dn, fn in os.walk(root):
            for n in fn:
                os.chmod(os.path.join(dp, n), 0o644)
        with open(os.path.join(self.repo, "value.txt"), "w") as f:
            f.write("11\n")
        err = self.fails("iterate", "--hypothesis", "h")
        self.assertIn(".ratchet: permission denied; make it writable (it belongs to uid 0, not to this user", err)
        self.assertIn("baseline 10", self.ok("status"))   # reading still works

    def test_an_unreadable_ratchet_folder_says_so(self):
        self.need_root()
        self.started()
        root = os.path.join(self.repo, ".ratchet")
        self.chown(root, 0)
        os.chmod(root, 0o700)
        err = self.fails("status")
        self.assertIn("cannot read or write", err)
        self.assertIn(".ratchet", err)

    def test_an_unreadable_git_folder_says_so(self):
        self.need_root()
        dot = os.path.join(self.repo, ".git")
        self.chown(dot, 0)
        os.chmod(dot, 0o700)
        self.addCleanup(os.chmod, dot, 0o755)
        err = self.fails("status")
        self.assertIn(f"cannot read {dot}: permission denied", err)

    def test_a_repository_of_another_user_is_named_as_such(self):
        self.need_root()
        self.chown(self.repo, 0)
        err = self.fails("status")
        self.assertIn("git refuses this repository: it belongs to another user", err)


if __name__ == "__main__":
    unittest.main()
