"""The fast paths of issue 18 answer exactly what the slow ones do:
the work-tree root found without git (io/gitroot) is git's own or nothing,
the kept filter-driver list (io/gitfilters) is listed again whenever a
configuration file changes, and a read verb imports only what it needs."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

from ratchetlib.io import gitfilters, gitops, gitroot
from tests.util import INIT, RepoTest, SCRIPTS, cli, git, make_repo


class PlainRoot(RepoTest):
    def setUp(self):
        super().setUp()
        self.start()
        os.makedirs(os.path.join(self.repo, "sub", "deeper"))

    def test_the_root_is_gits_from_anywhere_below_it(self):
        for where in (self.repo, os.path.join(self.repo, "sub", "deeper")):
            self.assertEqual(gitroot.plain_root(where), gitops.find_root(where))

    def test_symlinks_resolved_as_git_prints_the_root(self):
        link = os.path.join(tempfile.mkdtemp(prefix="ratchet-link-"), "to-repo")
        self.addCleanup(shutil.rmtree, os.path.dirname(link), True)
        os.symlink(os.path.join(self.repo, "sub"), link)
        self.assertEqual(gitroot.plain_root(link), gitops.find_root(link))

    def test_git_is_found_as_shutil_which_finds_it(self):
        import shutil
        for path in (os.environ.get("PATH", ""), "", os.pathsep, "/nonexistent"):
            with self.subTest(path=path):
                self.assertEqual(gitroot.git_executable(path), shutil.which("git", path=path))

    def test_a_git_found_is_kept_only_while_it_is_there_and_for_a_few_seconds(self):
        folder = tempfile.mkdtemp(prefix="ratchet-gitbin-")
        self.addCleanup(shutil.rmtree, folder, True)
        real = gitroot.git_executable()
        path = folder + os.pathsep + os.path.dirname(real)
        self.assertEqual(gitroot.git_executable(path), real)
        fake = os.path.join(folder, "git")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(fake, 0o755)
        self.assertEqual(gitroot.git_executable(path), real)  # kept: asked again within the same iterate
        with mock.patch.object(gitroot.time, "monotonic", return_value=gitroot.time.monotonic() + gitroot.KEEP_SECONDS):
            self.assertEqual(gitroot.git_executable(path), fake)  # then searched again
        os.remove(fake)
        self.assertEqual(gitroot.git_executable(path), real)  # gone: searched again at once

    def test_anything_unusual_is_left_to_git(self):
        with mock.patch.dict(os.environ, {"GIT_DIR": os.path.join(self.repo, ".git")}):
            self.assertIsNone(gitroot.plain_root(self.repo))
            self.assertIsNone(gitroot.plain_git_dir(self.repo))
        self.assertIsNone(gitroot.plain_root(os.path.join(self.repo, ".git")))  # inside .git: git's own error
        self.assertIsNone(gitroot.plain_root(os.path.join(self.repo, "missing")))
        no_run = make_repo(self, commit=False)  # a repository without a run: git, then open_run, word the error
        self.assertIsNone(gitroot.plain_root(no_run))
        with mock.patch("os.geteuid", return_value=os.geteuid() + 1):  # another user's: git's safe.directory check
            self.assertIsNone(gitroot.plain_root(self.repo))

    def test_git_paths_of_a_plain_layout_are_revparses(self):
        names = ["config", "info/attributes"]
        out = git(self.repo, "rev-parse", "--git-common-dir", *[a for n in names for a in ("--git-path", n)]).split()
        plain = gitroot.plain_git_dir(self.repo)
        self.assertEqual([os.path.join(self.repo, p) for p in out],
                         [plain] + [os.path.join(plain, n) for n in names])


class KeptFilterList(unittest.TestCase):
    def setUp(self):
        self.repo = make_repo(self)
        self.calls = 0

    def listed(self):
        self.calls += 1
        return gitops._list_config(self.repo, gitops._env())

    def overrides(self):
        return gitfilters.cached(self.repo, gitops._env(), self.listed)[0]

    def test_the_commit_identity_comes_from_the_same_listing(self):
        """No `git config` of its own before a commit (issue 18); a fallback
        only while the configuration lacks user.email or user.name, seen the
        moment the configuration changes."""
        home = tempfile.mkdtemp(prefix="ratchet-home-")
        self.addCleanup(shutil.rmtree, home, True)
        git(self.repo, "config", "--unset", "user.name")
        with mock.patch.dict(os.environ, {"HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config"),
                                          "GIT_CONFIG_NOSYSTEM": "1"}), \
                mock.patch.object(gitfilters, "RACY_SECONDS", 0.0), mock.patch.object(gitops, "_config", self.kept):
            self.assertEqual(gitops.identity(self.repo), gitfilters.FALLBACK_IDENTITY)
            self.assertEqual(gitops._filter_overrides(self.repo), [])
            self.assertEqual(self.calls, 1)
            git(self.repo, "config", "user.name", "Someone")
            self.assertEqual(gitops.identity(self.repo), [])
            self.assertEqual(self.calls, 2)

    def kept(self, repo):
        return gitfilters.cached(repo, gitops._env(), self.listed)

    def test_listed_once_while_nothing_changes_then_again_after_a_change(self):
        with mock.patch.object(gitfilters, "RACY_SECONDS", 0.0):  # the files count as written long ago
            self.assertEqual(self.overrides(), [])
            self.assertEqual(self.overrides(), [])
            self.assertEqual(self.calls, 1)
            git(self.repo, "config", "filter.late.clean", "cat")  # what a trial could do
            self.assertIn("filter.late.clean=", self.overrides())
            self.assertEqual(self.calls, 2)

    def test_a_config_changed_just_now_is_never_kept(self):
        git(self.repo, "config", "x.y", "z")  # its ctime is now: a second write in the same tick could hide
        with mock.patch.object(gitfilters, "RACY_SECONDS", 60.0):  # "just now", however slow this machine is
            self.overrides()
            self.overrides()
        self.assertEqual(self.calls, 2)

    def test_includes_are_always_listed_again(self):
        git(self.repo, "config", "include.path", os.path.join(tempfile.gettempdir(), "no-such-ratchet-include"))
        with mock.patch.object(gitfilters, "RACY_SECONDS", 0.0):
            self.overrides()
            self.overrides()
        self.assertEqual(self.calls, 2)

    def test_a_new_global_config_file_is_seen(self):
        home = tempfile.mkdtemp(prefix="ratchet-home-")
        self.addCleanup(shutil.rmtree, home, True)
        with mock.patch.dict(os.environ, {"HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config")}), \
                mock.patch.object(gitfilters, "RACY_SECONDS", 0.0):
            self.overrides()
            self.overrides()
            self.assertEqual(self.calls, 1)
            with open(os.path.join(home, ".gitconfig"), "w") as f:
                f.write('[filter "home"]\n\tsmudge = cat\n')
            self.assertIn("filter.home.smudge=", self.overrides())
            self.assertEqual(self.calls, 2)


class SavedFilterList(unittest.TestCase):
    """The kept listing outlives the process (.ratchet/gitconfig.json, sealed):
    the next command runs no `git config` while nothing changed, and a file
    that does not verify is listed again, never trusted (issue 18)."""

    def setUp(self):
        self.repo = make_repo(self)
        git(self.repo, "config", "filter.lfs.smudge", "cat")  # a driver to neutralise
        self.calls = 0
        with mock.patch.object(gitfilters, "RACY_SECONDS", 0.0):
            code, _, err = cli(*INIT, cwd=self.repo)
        self.assertEqual(code, 0, err)
        self.saved = os.path.join(self.repo, ".ratchet", gitfilters.SAVED)
        self.next_command()  # init listed before its store existed: the first command after it saves the listing
        self.assertEqual(self.calls, 1)
        self.calls = 0

    def listed(self):
        self.calls += 1
        return gitops._list_config(self.repo, gitops._env())

    def next_command(self):
        """What a new ratchet process gets: nothing kept in memory."""
        gitfilters._KEPT.clear()
        with mock.patch.object(gitfilters, "RACY_SECONDS", 0.0):
            return gitfilters.cached(self.repo, gitops._env(), self.listed)[0]

    def test_the_next_command_lists_nothing_until_a_file_changes(self):
        self.assertTrue(os.path.exists(self.saved))
        self.assertIn("filter.lfs.smudge=", self.next_command())
        self.assertEqual(self.calls, 0)
        git(self.repo, "config", "filter.late.clean", "cat")
        self.assertIn("filter.late.clean=", self.next_command())
        self.assertEqual(self.calls, 1)
        self.assertIn("filter.late.clean=", self.next_command())  # saved again
        self.assertEqual(self.calls, 1)

    def test_a_forged_or_foreign_file_is_listed_again(self):
        with open(self.saved) as f:
            doc = json.load(f)
        doc["overrides"] = []  # what a trial would write to keep its driver running
        with open(self.saved, "w") as f:
            json.dump(doc, f)
        self.assertIn("filter.lfs.smudge=", self.next_command())
        self.assertEqual(self.calls, 1)
        with open(self.saved, "w") as f:
            f.write("{torn")
        self.assertIn("filter.lfs.smudge=", self.next_command())
        self.assertEqual(self.calls, 2)

    def test_nothing_is_saved_without_a_run(self):
        bare = make_repo(self)
        gitfilters._KEPT.clear()
        with mock.patch.object(gitfilters, "RACY_SECONDS", 0.0):
            gitops.identity(bare)
        self.assertFalse(os.path.exists(os.path.join(bare, ".ratchet")))


class PlainHead(unittest.TestCase):
    """HEAD read from .git's files (gitroot.plain_head) is what git prints, or
    None (the caller asks git) whenever git could answer otherwise."""

    def setUp(self):
        self.repo = make_repo(self, {"a.txt": "1\n"})

    def by_git(self):
        branch = subprocess.run(["git", "symbolic-ref", "-q", "--short", "HEAD"], cwd=self.repo,
                                stdout=subprocess.PIPE, text=True).stdout.strip() or None
        return branch, git(self.repo, "rev-parse", "--verify", "-q", "HEAD^{commit}").strip()

    def test_a_branch_and_a_detached_head_as_git_prints_them(self):
        self.assertEqual(gitroot.plain_head(self.repo), self.by_git())
        git(self.repo, "checkout", "-q", "-b", "ratchet/x-1")
        self.assertEqual(gitroot.plain_head(self.repo), self.by_git())
        git(self.repo, "checkout", "-q", "--detach")
        self.assertEqual(gitroot.plain_head(self.repo), (None, self.by_git()[1]))
        self.assertEqual((gitops.current_branch(self.repo), gitops.head_sha(self.repo)), self.by_git())

    def test_packed_refs_and_objects_and_ambiguous_names_are_left_to_git(self):
        git(self.repo, "pack-refs", "--all")  # the branch in packed-refs, the commit still loose
        self.assertEqual(gitroot.plain_head(self.repo), self.by_git())
        git(self.repo, "tag", "main")  # `--short` would print heads/main
        self.assertIsNone(gitroot.plain_head(self.repo))
        self.assertEqual(gitops.current_branch(self.repo), "heads/main")
        git(self.repo, "tag", "-d", "main")
        git(self.repo, "gc", "-q")  # the commit packed: its type is git's to read
        self.assertIsNone(gitroot.plain_head(self.repo))
        self.assertEqual((gitops.current_branch(self.repo), gitops.head_sha(self.repo)), self.by_git())
        with mock.patch.dict(os.environ, {"GIT_DIR": os.path.join(self.repo, ".git")}):
            self.assertIsNone(gitroot.plain_head(self.repo))


class ReadVerbsLoadLittle(RepoTest):
    def test_status_history_tail_do_not_import_the_engine(self):
        self.start()
        engine = ("ratchetlib.keep.finish", "ratchetlib.keep.paired", "ratchetlib.measure.trial",
                  "ratchetlib.io.runner", "ratchetlib.io.gitops", "subprocess", "socket", "difflib",
                  "argparse", "ratchetlib.cli.flags", "_hashlib", "hmac", "secrets")  # parsed by quickargs; sealed by seal's own HMAC
        probe = ("import sys, io, contextlib\nsys.path.insert(0, sys.argv[1])\n"
                 "from ratchetlib.cli.main import main\n"
                 "with contextlib.redirect_stdout(io.StringIO()):\n    code = main(sys.argv[3:])\n"
                 "print(code, ' '.join(m for m in sys.argv[2].split(',') if m in sys.modules))\n")
        for verb in (["status"], ["history", "--last", "10"], ["tail"]):
            out = subprocess.run([sys.executable, "-c", probe, SCRIPTS, ",".join(engine), "-C", self.repo, *verb],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True).stdout
            self.assertEqual(out.strip(), "0", f"{verb}: {out}")


class ExitWithoutTeardown(unittest.TestCase):
    """cli.main.exit_process skips the interpreter's teardown (issue 18), and
    keeps what a normal exit does before it: the exit code, atexit handlers,
    buffered output, and a live thread's end."""

    PROBE = ("import atexit, sys, threading, time\nsys.path.insert(0, sys.argv[1])\n"
             "from ratchetlib.cli.main import exit_process\n"
             "atexit.register(lambda: open(sys.argv[2] + '.atexit', 'w').close())\n"
             "if sys.argv[3] == 'thread':\n"
             "    threading.Thread(target=lambda: (time.sleep(0.3), open(sys.argv[2] + '.thread', 'w').close())).start()\n"
             "sys.stdout.write('buffered ' * (1 if sys.argv[3] == 'small' else 2000))\n"
             "exit_process(3)\n")

    def run_probe(self, mode, **kw):
        base = os.path.join(tempfile.mkdtemp(), "mark")
        self.addCleanup(shutil.rmtree, os.path.dirname(base), True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        p = subprocess.run([sys.executable, "-c", self.PROBE, SCRIPTS, base, mode], env=env,
                           stderr=subprocess.PIPE, text=True, **kw)
        return p, base

    def test_the_code_the_output_and_the_atexit_handlers_survive(self):
        p, base = self.run_probe("plain", stdout=subprocess.PIPE)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (3, "buffered " * 2000, ""))
        self.assertTrue(os.path.exists(base + ".atexit"))

    def test_a_live_thread_is_waited_for_as_a_normal_exit_does(self):
        p, base = self.run_probe("thread", stdout=subprocess.PIPE)
        self.assertEqual(p.returncode, 3)
        self.assertTrue(os.path.exists(base + ".thread"))
        self.assertTrue(os.path.exists(base + ".atexit"))

    def test_a_closed_stdout_is_no_traceback(self):
        r, w = os.pipe()
        os.close(r)
        try:
            p, _ = self.run_probe("small", stdout=w)  # held in the buffer until the exit's flush
        finally:
            os.close(w)
        self.assertEqual((p.returncode, p.stderr), (3, ""))

    @unittest.skipUnless(os.path.exists("/dev/full"), "needs /dev/full (Linux)")
    def test_output_lost_to_a_full_disk_is_no_success(self):
        probe = (f"import sys\nsys.path.insert(0, {SCRIPTS!r})\nfrom ratchetlib.cli.main import exit_process\n"
                 "sys.stdout.write('x')\nexit_process(0)\n")
        with open("/dev/full", "w") as full:
            p = subprocess.run([sys.executable, "-c", probe], stdout=full, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 120)


class QuickArgs(unittest.TestCase):
    """cli/quickargs reads the plain command lines of status, history, tail and
    iterate to exactly argparse's values, and leaves every other line to argparse."""

    READ = [["status"], ["status", "--json"], ["-C", "d", "status"], ["-C", "a", "-C", "b", "status", "-C", "c"],
            ["-C", "", "status"], ["status", "--json", "--json"], ["history"], ["history", "--last", "10"],
            ["history", "--last", "0"], ["history", "--last", "007", "--all", "--json"], ["history", "--all"],
            ["history", "--last", "3", "--last", "4"], ["tail"], ["tail", "--iter", "2", "--trial", "1"],
            ["tail", "--lines", "5", "--guard", "-C", "x"], ["-C", "x", "tail", "--lines", "3", "--lines", "4"],
            ["iterate", "--hypothesis", "h"], ["iterate", "--hypothesis", ""], ["-C", "d", "iterate", "--json",
            "--hypothesis", "cache the parse", "--description", "memoized", "--arm", "tune", "--critic-pick", "a",
            "--critic-reason", "cheaper", "--proposal-a", "A", "--proposal-b", "B"],
            ["iterate", "--hypothesis", "one", "--hypothesis", "two"]]
    LEFT = [[], ["--help"], ["status", "-h"], ["status", "--bogus"], ["status", "extra"], ["history", "--last", "x"],
            ["history", "--last=2"], ["history", "--las", "2"], ["history", "--last", "-1"], ["history", "--last", "1_0"],
            ["history", "--last", "\u00b2"], ["history", "--last"], ["tail", "--json"], ["-C"], ["-C", "-x", "status"],
            ["-Cdir", "status"], ["status", "-C"], ["stat"], ["status", "--", "x"], ["iterate"],
            ["iterate", "--description", "d"], ["iterate", "--hypothesis"], ["iterate", "--hypothesis", "-fast"],
            ["iterate", "--hypothesis=h"], ["iterate", "--hyp", "h"], ["iterate", "--hypothesis", "h", "--lines", "2"],
            ["iterate", "--hypothesis", "h", "extra"], ["decide", "--hypothesis", "h"]]

    def test_the_plain_forms_parse_as_argparse_does(self):
        from ratchetlib.cli import quickargs
        from ratchetlib.cli.flags import build_parser
        for argv in self.READ:
            quick = quickargs.read_argv(argv)
            self.assertIsNotNone(quick, argv)
            self.assertEqual(vars(quick), vars(build_parser(argv).parse_args(argv)), argv)

    def test_anything_else_is_left_to_argparse(self):
        from ratchetlib.cli import quickargs
        for argv in self.LEFT:
            self.assertIsNone(quickargs.read_argv(argv), argv)


if __name__ == "__main__":
    unittest.main()
