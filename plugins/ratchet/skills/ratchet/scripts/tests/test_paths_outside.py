"""Issue 15 point 1: the repository is found for any path a file system
allows, and nothing outside it is ever pinned, written, restored or deleted.

Black-box CLI runs (subprocesses, a user's default environment) on
repositories under a path with a space, a newline, a non-UTF-8 byte and a
symlinked parent; next to `.../sp ace` lies a sibling `.../sp` whose branch
and uncommitted work must stay exactly as they were. Then every path flag
pointing outside is refused with exit 2 and one line, the guards under every
restore refuse outside targets whatever a config says, and a run command
that changes directory or carries a comment still has its harness protected."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from ratchetlib.io import harness
from ratchetlib.core import paths
from ratchetlib.core.errors import UsageError
from tests.util import BENCH, PY, RATCHET, TRIAL_PY, cli, git, make_repo, write


def user_env():
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}


def new_repo(path: bytes):
    os.makedirs(path)
    run = lambda *a: subprocess.run(["git", *a], cwd=path, check=True, stdout=subprocess.DEVNULL)
    run("init", "-q", "-b", "main")
    run("config", "user.name", "t")
    run("config", "user.email", "t@example.invalid")
    for rel, text in ((b"bench.py", BENCH), (b"value.txt", "10\n")):
        with open(os.path.join(path, rel), "w") as f:
            f.write(text)
    run("add", "-A")
    run("commit", "-q", "-m", "start")


def ratchet(cwd, *argv):
    p = subprocess.run([PY, RATCHET, *argv], cwd=cwd, env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def state_of(repo):
    """A sibling repository's branch, HEAD and work tree, to compare."""
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, stdout=subprocess.PIPE).stdout
    files = {}
    for dp, dn, fn in os.walk(repo):
        dn[:] = [d for d in dn if d != ".git"]
        for n in fn:
            with open(os.path.join(dp, n), "rb") as f:
                files[os.path.relpath(os.path.join(dp, n), repo)] = f.read()
    return files, run("symbolic-ref", "HEAD"), run("for-each-ref"), run("status", "--porcelain")


class OddPathTest(unittest.TestCase):
    def setUp(self):
        self.base = os.fsencode(tempfile.mkdtemp(prefix="ratchet-paths-"))
        self.addCleanup(shutil.rmtree, self.base, True)

    def full_run(self, repo):
        init = ["init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                "--report-source", "stdout", "--decision", "mean"]
        for argv in (init, ["baseline"], "edit", ["iterate", "--hypothesis", "twenty"], "edit2",
                     ["iterate", "--hypothesis", "worse"], ["status"], ["history"], ["report"], ["finalize"]):
            if argv in ("edit", "edit2"):
                with open(os.path.join(repo, b"value.txt"), "w") as f:
                    f.write("20\n" if argv == "edit" else "5\n")
                continue
            code, out, err = ratchet(repo, *argv)
            self.assertEqual(code, 0, f"{argv}: {err}{out}")
        with open(os.path.join(repo, b".ratchet", b"results.jsonl"), "rb") as f:
            recs = [json.loads(line) for line in f]
        self.assertEqual([r["decision"] for r in recs], ["baseline", "keep", "revert"])
        with open(os.path.join(repo, b"value.txt")) as f:
            self.assertEqual(f.read(), "20\n")

    def test_space_with_a_sibling_that_stays_untouched(self):
        sibling, repo = os.path.join(self.base, b"sp"), os.path.join(self.base, b"sp ace")
        new_repo(sibling)
        new_repo(repo)
        git(os.fsdecode(sibling), "checkout", "-q", "-b", "mine")
        with open(os.path.join(sibling, b"value.txt"), "w") as f:
            f.write("my uncommitted work\n")
        before = state_of(sibling)
        self.full_run(repo)
        self.assertEqual(state_of(sibling), before)

    def test_newline_non_utf8_byte_and_a_symlinked_parent(self):
        for name in (b"new\nline", b"bad\xffbyte", b"tab\there"):
            with self.subTest(name=name):
                self.full_run_at(os.path.join(self.base, name, b"repo"))
        real = os.path.join(self.base, b"real")
        os.makedirs(real)
        os.symlink(real, os.path.join(self.base, b"link"))
        new_repo(os.path.join(real, b"repo"))
        self.full_run(os.path.join(self.base, b"link", b"repo"))
        sub = os.path.join(self.base, b"link", b"repo", b"deeper")
        os.makedirs(sub)
        code, out, err = ratchet(sub, "status")   # from a folder inside, through the link
        self.assertEqual(code, 0, err)

    def full_run_at(self, repo):
        new_repo(repo)
        self.full_run(repo)

    def test_each_failure_to_find_a_root_has_its_own_line(self):
        plain = os.path.join(self.base, b"plain")
        os.makedirs(plain)
        code, out, err = ratchet(plain, "status")
        self.assertEqual((code, err.strip()), (2, "ratchet: error: not inside a git repository; run ratchet from your "
                                                  "project's git work tree (git init first)"))
        new_repo(os.path.join(self.base, b"r"))
        code, out, err = ratchet(os.path.join(self.base, b"r", b".git"), "status")
        self.assertEqual(code, 2)
        self.assertIn("inside .git, not the work tree", err)
        env = {**user_env(), "PATH": os.fsdecode(plain)}
        p = subprocess.run([PY, RATCHET, "status"], cwd=os.path.join(self.base, b"r"), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("git is not installed or not on PATH", p.stderr)


INIT = ["init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
        "--report-source", "stdout"]


class OutsidePathFlagTest(unittest.TestCase):
    def setUp(self):
        self.repo = make_repo(self)
        self.outside = tempfile.mkdtemp(prefix="ratchet-outside-")
        self.addCleanup(shutil.rmtree, self.outside, True)
        write(self.outside, "notes.md", "mine\n")
        os.symlink(self.outside, os.path.join(self.repo, "elsewhere"))

    def refused(self, *extra):
        code, out, err = cli(*INIT, *extra, cwd=self.repo)
        self.assertEqual(code, 2, f"{extra}: {err}{out}")
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("is outside the repository", err)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "config.json")))
        return err

    def test_every_path_flag_refuses_outside(self):
        o = self.outside
        for flag in ("--protect", "--editable"):
            for bad in (o, os.path.join(o, "notes.md"), "../x", "../..", "/", "elsewhere", "elsewhere/notes.md",
                        "src/../../x"):
                with self.subTest(flag=flag, bad=bad):
                    self.refused(flag, bad)
        for bad in (os.path.join(o, "notes.md"), "../notes.md", "elsewhere/notes.md"):
            with self.subTest(flag="--instructions-file", bad=bad):
                self.refused("--instructions-file", bad)
        with self.subTest(flag="--artifact-glob"):
            self.refused("--artifact-glob", "elsewhere/*.pt")
        for bad in ("elsewhere/out.txt", "json:elsewhere/r.json"):
            with self.subTest(flag="--report-source", bad=bad):
                code, out, err = cli(*INIT[:-1], bad, "--protect", "bench.py", cwd=self.repo)
                self.assertEqual(code, 2, err)
                self.assertRegex(err, "outside the repository|leaves the repository")
        with open(os.path.join(o, "notes.md")) as f:
            self.assertEqual(f.read(), "mine\n")

    def test_inside_paths_given_absolute_are_made_relative(self):
        code, out, err = cli(*INIT, "--protect", os.path.join(self.repo, "bench.py"),
                             "--editable", os.path.join(self.repo, "value.txt"), cwd=self.repo)
        self.assertEqual(code, 0, err)
        with open(os.path.join(self.repo, ".ratchet", "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual((cfg["protect"], cfg["editable"]), ([".ratchet", "bench.py"], ["value.txt"]))

    def test_a_config_naming_an_outside_file_never_touches_it(self):
        """Belt and braces: an older config.json that protects `../x` pins
        nothing there and restores nothing there."""
        outside_file = os.path.join(self.outside, "notes.md")
        rel = os.path.relpath(outside_file, self.repo)
        self.assertTrue(rel.startswith(".."))
        store = os.path.join(self.repo, ".ratchet")
        os.makedirs(store)
        harness.pin(self.repo, store, [rel, "elsewhere", "bench.py"])
        files = harness.load(store)["files"]
        self.assertEqual(sorted(files), ["bench.py", "elsewhere"])
        self.assertEqual(files["elsewhere"]["link"], self.outside)  # the link is pinned as a link, never followed
        write(self.outside, "notes.md", "my newer edit\n")
        pins = harness.load(store)
        pins["files"][rel] = dict(pins["files"]["bench.py"])   # a forged pin for the outside file
        with open(os.path.join(store, "harness.json"), "w") as f:
            json.dump(pins, f)
        failed = harness.restore(self.repo, store, {rel: harness.EDITED, "elsewhere/notes.md": harness.ADDED})
        self.assertEqual(sorted(failed), sorted([rel, "elsewhere/notes.md"]))
        with open(outside_file) as f:
            self.assertEqual(f.read(), "my newer edit\n")

    def test_contained(self):
        self.assertTrue(paths.contained(self.repo, "a/b.txt"))
        for bad in ("../a", "/etc/passwd", "elsewhere/notes.md", ".", ""):
            self.assertFalse(paths.contained(self.repo, bad), bad)
        self.assertTrue(paths.contained(self.repo, "elsewhere"))  # the link itself is inside: removed, not followed
        with self.assertRaises(UsageError):
            paths.inside("/", self.repo, "--protect")


class HarnessInRunCommandTest(unittest.TestCase):
    def test_cd_and_comments_still_protect_the_benchmark(self):
        repo = make_repo(self, {"sub/bench.py": BENCH, "sub/value.txt": "10\n", "value.txt": "1\n"})
        for cmd, want in ((f"cd sub && {TRIAL_PY} bench.py", "sub/bench.py"),
                          (f"{TRIAL_PY} sub/bench.py  # fast, don't change", "sub/bench.py"),
                          (f"(cd sub; {TRIAL_PY} bench.py) | cat", "sub/bench.py")):
            with self.subTest(cmd=cmd):
                code, out, err = cli("init", "--run-command", cmd, "--direction", "max", "--metric-name", "score",
                                     "--report-source", "stdout", "--branch", f"b{abs(hash(cmd))}", cwd=repo)
                self.assertEqual(code, 0, err)
                self.assertIn(f"auto-protected because a command names them: {want}", out)
                git(repo, "checkout", "-q", "main")

    def test_init_says_when_it_found_no_harness(self):
        repo = make_repo(self)
        code, out, err = cli("init", "--run-command", "make bench", "--direction", "max", "--metric-name", "score",
                             "--report-source", "stdout", cwd=repo)
        self.assertEqual(code, 0, err)
        self.assertIn("warning: found no file of the benchmark in the run command", out)
        self.assertIn("--protect PATH", out)


if __name__ == "__main__":
    unittest.main()
