"""Issue 14, points 3, 4 and 8: a trial cannot tilt the other side, git's
configuration is harness, the user's untracked files survive the candidate.

The benchmark imports the editable sol.py (candidate code runs inside it)
and subtracts `json.loads("0")`, so a module shadowing `json`, or a startup
hook that patches it, lowers the score of every later run: planted by a
no-op candidate at its exit, it would make the incumbent look worse and the
candidate a win. Trials run with bytecode written (PYTHONDONTWRITEBYTECODE
cleared), as in a user's shell.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import types
import unittest
from unittest import mock

from ratchetlib.io import carry, gitpatch, swapfiles
from ratchetlib.keep import paired
from tests.util import RepoTest, TRIAL_PY, git, make_repo, read, write

BENCH = "import sol, json\nprint('score:', sol.score() - json.loads('0'))\n"
SOL = "def score():\n    return 10\n"
FILES = {"bench.py": BENCH, "sol.py": SOL, ".gitignore": "cache/\n"}
INIT = ["init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
        "--report-source", "stdout", "--protect", "bench.py", "--editable", "sol.py", "--trials", "2"]
SHADOW = "def loads(s):\n    return 5\n"
USER_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}


def at_exit(code: str, score: int = 10) -> str:
    """A candidate whose score is `score` and that runs `code` as its run ends."""
    return (f"import atexit\natexit.register(lambda: exec({code!r}))\n"
            f"def score():\n    return {score}\n")


class CarryTest(RepoTest):
    files = FILES

    def setUp(self):
        super().setUp()
        env = mock.patch.dict(os.environ, USER_ENV, clear=True)
        env.start()
        self.addCleanup(env.stop)

    def iterate(self, expect):
        out = self.run_ok("iterate", "--hypothesis", "h")
        self.assertIn(f": {expect.upper()}", out.splitlines()[0], out)
        return self.records()[-1]

    def assert_reverted(self):
        self.assertEqual(read(self.repo, "sol.py"), SOL)
        self.assertEqual(self.state()["best"], 10.0)
        self.assertEqual(git(self.repo, "status", "--porcelain", "--untracked-files=no"), "")

    # --- point 3: the working tree ---------------------------------------------------------------

    def test_a_no_op_candidate_that_plants_a_shadowing_module_is_never_kept(self):
        for decision in ("paired", "mean"):
            with self.subTest(decision=decision):
                self.repo = make_repo(self, FILES)
                self.start("--decision", decision)
                write(self.repo, "sol.py", at_exit(f"open('json.py', 'w').write({SHADOW!r})"))
                rec = self.iterate("tampered")
                self.assertEqual(rec["outside_writes"], {"json.py": "created"})
                self.assertIn("the candidate's run wrote outside its change: json.py (created)", rec["reason"])
                self.assertFalse(os.path.exists(os.path.join(self.repo, "json.py")))
                if decision == "paired":  # pair 1 is incumbent first: it never ran with the shadow
                    self.assertEqual([t["score"] for t in rec["incumbent_trials"]], [10.0])
                    self.assertEqual(len(rec["trials"]), 1)
                self.assert_reverted()
                # the next one is measured as usual (another size: same-size edits are issue 14 point 1)
                write(self.repo, "sol.py", "def score():\n    return 2000\n")
                self.assertEqual(self.iterate("keep")["avg"], 2000.0)

    def test_a_rewritten_helper_is_checked_out_again(self):
        self.repo = make_repo(self, {**FILES, "helper.py": "X = 1\n"})
        self.start()
        write(self.repo, "sol.py", at_exit("open('helper.py', 'w').write('X = 2\\n')"))
        rec = self.iterate("tampered")
        self.assertEqual(rec["outside_writes"], {"helper.py": "changed"})
        self.assertEqual(read(self.repo, "helper.py"), "X = 1\n")
        self.assert_reverted()

    def test_pycache_ignored_caches_and_declared_outputs_do_not_trip_it(self):
        # the benchmark writes an ignored cache file per run and a results file, the candidate's code a build output
        bench = ("import os, sol, json, uuid\nos.makedirs('cache', exist_ok=True)\n"
                 "open(os.path.join('cache', uuid.uuid4().hex), 'w').write('x')\nopen('results.txt', 'w').write('r')\n"
                 "print('score:', sol.score() - json.loads('0'))\n")
        self.repo = make_repo(self, {**FILES, "bench.py": bench})
        self.start("--output", "build")
        write(self.repo, "sol.py", "import os\nos.makedirs('build', exist_ok=True)\nopen('build/x.o', 'w').write('o')\n"
                                   "def score():\n    return 20\n")
        rec = self.iterate("keep")
        self.assertNotIn("outside_writes", rec)
        # bytecode was written (the folder stays; the swapped sol.py's own .pyc is dropped after each switch, fresh.py)
        self.assertTrue(os.path.isdir(os.path.join(self.repo, "__pycache__")))
        self.assertIn("cache", self.state()["outputs_seen"])
        self.assertIn("results.txt", self.state()["outputs_seen"])

    # --- point 3: startup hooks outside the repository ----------------------------------------------

    def test_a_planted_usercustomize_in_the_user_site_is_detected_and_removed(self):
        base = tempfile.mkdtemp(prefix="ratchet-userbase-")
        self.addCleanup(shutil.rmtree, base, True)
        os.environ["PYTHONUSERBASE"] = base  # the trials' user site; never the real one
        self.start()
        plant = ("import site, os\nd = site.getusersitepackages()\nos.makedirs(d, exist_ok=True)\n"
                 "open(os.path.join(d, 'usercustomize.py'), 'w').write('import json\\njson.loads = lambda s: 5\\n')")
        write(self.repo, "sol.py", at_exit(plant))
        rec = self.iterate("tampered")
        self.assertEqual(len(rec["startup_hooks"]), 1, rec)
        (path, kind), = rec["startup_hooks"].items()
        self.assertTrue(path.startswith(base) and path.endswith("usercustomize.py"), path)
        self.assertEqual(kind, "created")
        self.assertFalse(os.path.exists(path))
        self.assertIn("startup hook", rec["reason"])
        self.assert_reverted()

    def test_a_changed_pth_file_is_put_back(self):
        from ratchetlib.io import startup
        base = tempfile.mkdtemp(prefix="ratchet-userbase-")
        self.addCleanup(shutil.rmtree, base, True)
        d = os.path.join(base, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
        os.makedirs(d)
        write(d, "mine.pth", "/opt/mine\n")
        env = {"PYTHONUSERBASE": base, "PYTHONSTARTUP": os.path.join(base, "startup.py")}
        before = startup.snapshot(env)
        write(d, "mine.pth", "import evil\n")
        write(base, "startup.py", "print('hi')\n")
        changes = startup.changed(before, startup.snapshot(env))
        self.assertEqual(changes, {os.path.join(d, "mine.pth"): "changed", os.path.join(base, "startup.py"): "created"})
        self.assertEqual(startup.undo(before, changes), [])
        self.assertEqual(read(d, "mine.pth"), "/opt/mine\n")
        self.assertFalse(os.path.exists(os.path.join(base, "startup.py")))

    def runs_and_snapshots(self):
        from ratchetlib.io import startup
        with mock.patch.object(startup, "snapshot", wraps=startup.snapshot) as snap:
            rec = self.iterate("keep")
        return len(rec["trials"]) + len(rec.get("incumbent_trials") or []), snap.call_count

    def test_a_run_takes_the_hooks_the_last_run_left_unless_a_watched_folder_is_in_the_repository(self):
        """carry.watch: one snapshot a run, not two (issue 18), when ratchet's
        swap cannot move a hook; with the repository on PYTHONPATH it can
        (a candidate's own sitecustomize.py), so every run is bracketed anew."""
        base = tempfile.mkdtemp(prefix="ratchet-userbase-")
        self.addCleanup(shutil.rmtree, base, True)
        os.environ["PYTHONUSERBASE"] = base
        self.start()
        write(self.repo, "sol.py", "def score():\n    return 11\n")
        runs, snaps = self.runs_and_snapshots()
        self.assertEqual((runs, snaps), (4, 5))
        os.environ["PYTHONPATH"] = self.repo
        write(self.repo, "sitecustomize.py", "X = 2\n")
        git(self.repo, "add", "sitecustomize.py")
        git(self.repo, "commit", "-qm", "a hook in the repository")
        self.start()
        write(self.repo, "sol.py", "def score():\n    return 12\n")
        write(self.repo, "sitecustomize.py", "X = 3\n")  # the candidate's, swapped between the runs: no hook planted
        runs, snaps = self.runs_and_snapshots()
        self.assertEqual((runs, snaps), (4, 8))

    def test_a_hook_a_later_run_plants_is_caught_against_the_last_runs_hooks(self):
        base = tempfile.mkdtemp(prefix="ratchet-userbase-")
        self.addCleanup(shutil.rmtree, base, True)
        os.environ["PYTHONUSERBASE"] = base
        self.start()
        plant = (f"import os, site\nc = {os.path.join(base, 'runs')!r}\n"
                 "n = int(open(c).read()) if os.path.exists(c) else 0\nopen(c, 'w').write(str(n + 1))\n"
                 "if n == 1:\n    d = site.getusersitepackages(); os.makedirs(d, exist_ok=True)\n"
                 "    open(os.path.join(d, 'late.pth'), 'w').write('import os\\n')")
        write(self.repo, "sol.py", at_exit(plant, score=11))
        rec = self.iterate("tampered")
        (path, kind), = rec["startup_hooks"].items()
        self.assertEqual((os.path.basename(path), kind), ("late.pth", "created"))
        self.assertFalse(os.path.exists(path))
        self.assertEqual(read(base, "runs"), "2")  # the candidate's second run planted it
        self.assert_reverted()

    def test_within_names_a_watched_folder_or_startup_file_in_or_around_the_repository(self):
        from ratchetlib.io import startup
        far = tempfile.mkdtemp(prefix="ratchet-userbase-")
        self.addCleanup(shutil.rmtree, far, True)
        for env, want in (({"PYTHONUSERBASE": far}, False), ({"PYTHONUSERBASE": far, "PYTHONPATH": self.repo}, True),
                          ({"PYTHONUSERBASE": far, "PYTHONPATH": os.path.join(self.repo, "lib")}, True),
                          ({"PYTHONUSERBASE": far, "PYTHONPATH": os.path.dirname(self.repo)}, True),
                          ({"PYTHONUSERBASE": far, "PYTHONSTARTUP": os.path.join(self.repo, "s.py")}, True),
                          ({"PYTHONUSERBASE": self.repo + "-other"}, False)):
            with self.subTest(env=env):
                self.assertEqual(startup.within(self.repo, env), want)

    # --- point 8: the user's untracked files -------------------------------------------------------

    def test_deleted_and_emptied_untracked_user_files_are_restored(self):
        write(self.repo, "NOTES.txt", "my notes\n")
        write(self.repo, ".env", "TOKEN=1\n")
        self.start()
        write(self.repo, "NOTES.txt", "my notes, edited between iterations\n")  # the newer version is the one kept
        write(self.repo, "sol.py", at_exit("import os; os.remove('NOTES.txt'); open('.env', 'w').close()"))
        rec = self.iterate("tampered")
        self.assertEqual(rec["outside_writes"], {".env": "changed", "NOTES.txt": "deleted"})
        self.assertNotIn("not_restored", rec)
        self.assertEqual(read(self.repo, "NOTES.txt"), "my notes, edited between iterations\n")
        self.assertEqual(read(self.repo, ".env"), "TOKEN=1\n")
        self.assert_reverted()

    def test_a_lost_file_over_the_copy_cap_is_named(self):
        with open(os.path.join(self.repo, "big.bin"), "wb") as f:
            f.write(b"x" * ((1 << 20) + 1))
        self.start()
        self.assertEqual(self.json(".ratchet/untracked.json")["files"]["big.bin"]["copy"], False)
        write(self.repo, "sol.py", at_exit("import os; os.remove('big.bin')"))
        rec = self.iterate("tampered")
        self.assertEqual(rec["not_restored"], ["big.bin"])
        self.assertIn("could not put back big.bin", rec["reason"])

    def json(self, rel):
        import json
        with open(os.path.join(self.repo, rel)) as f:
            return json.load(f)

    # --- point 4: git's configuration ------------------------------------------------------------------

    def test_a_filter_a_hook_and_gitattributes_are_tampering_and_the_user_branch_is_untouched(self):
        head, tree = git(self.repo, "rev-parse", "main").strip(), git(self.repo, "rev-parse", "main^{tree}").strip()
        config = read(self.repo, ".git/config")
        self.start("--decision", "mean")
        # the agent adds a smudge filter that would rewrite sol.py on every checkout
        with open(os.path.join(self.repo, ".git", "config"), "a") as f:
            f.write('[filter "tilt"]\n\tsmudge = sed s/10/1/\n\tclean = cat\n')
        write(self.repo, ".git/info/attributes", "sol.py filter=tilt\n")
        write(self.repo, "sol.py", "def score():\n    return 10 # no-op\n")
        rec = self.iterate("tampered")
        self.assertEqual(rec["tampered"], {".git/config": "edited", ".git/info/attributes": "added"})
        self.assertEqual(read(self.repo, ".git/config"), config)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".git", "info", "attributes")))
        # a hook, and a .gitattributes in the candidate's own diff
        write(self.repo, ".git/hooks/post-checkout", "#!/bin/sh\necho 1 > sol.py\n")
        write(self.repo, ".gitattributes", "*.py filter=tilt\n")
        write(self.repo, "sol.py", "def score():\n    return 11\n")
        rec = self.iterate("tampered")
        self.assertEqual(rec["tampered"], {".git/hooks/post-checkout": "added", ".gitattributes": "added"})
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".git", "hooks", "post-checkout")))
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".gitattributes")))
        # candidate code that writes the filter while it runs
        plant = ("open('.git/config', 'a').write('[filter \"tilt\"]\\n\\tsmudge = sed s/10/1/\\n');"
                 "open('.git/info/attributes', 'w').write('sol.py filter=tilt\\n')")
        write(self.repo, "sol.py", at_exit(plant))
        rec = self.iterate("tampered")
        self.assertEqual(rec["tampered"], {".git/config": "edited", ".git/info/attributes": "added"})
        self.assertIn("while the candidate ran", rec["reason"])
        self.assertEqual(read(self.repo, ".git/config"), config)
        self.assert_reverted()
        self.run_ok("stop")
        self.assertEqual(git(self.repo, "symbolic-ref", "HEAD").strip(), "refs/heads/main")
        self.assertEqual((git(self.repo, "rev-parse", "main").strip(), git(self.repo, "rev-parse", "main^{tree}").strip()),
                         (head, tree))
        self.assertEqual(read(self.repo, "sol.py"), SOL)
        self.assertEqual(git(self.repo, "status", "--porcelain", "--untracked-files=no"), "")


class TreeTest(unittest.TestCase):
    """carry.tree (issue 18): git's `matching` ignored listing, each folder
    it ignores whole walked by ratchet, gives exactly the files git's
    `traditional` listing gives one by one, and git never walks .ratchet/."""

    def traditional(self, repo):
        """The tree as git's traditional listing gives it (the previous carry.tree)."""
        from ratchetlib.io import gitops
        raw = subprocess.run(["git", "status", "--porcelain=v2", "-z", "--untracked-files=all", "--ignored=traditional",
                              "--no-renames", "--", ".", ":(exclude,top).ratchet"], cwd=repo, check=True,
                             capture_output=True).stdout.decode("utf-8", "surrogateescape")
        files, tracked = {}, []
        for c in gitops.parse_status(raw):
            if c.xy not in ("??", "!!"):
                tracked.append(c.path)
            elif not c.path.endswith("/") and not carry._skip(c.path):
                st = os.lstat(os.path.join(repo, c.path))
                files[c.path] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        return {"files": files, "tracked": sorted(tracked)}

    def test_every_kind_of_ignored_path_as_gits_traditional_listing(self):
        repo = make_repo(self, {"a.txt": "1\n", "build/tracked.txt": "k\n",
                                ".gitignore": "/.ratchet/\nbuild/\n*.log\nlogs/\nnest/\nempty/\n__pycache__/\n"})
        git(repo, "add", "-f", "build/tracked.txt")
        git(repo, "commit", "-qm", "tracked inside an ignored folder")
        for rel in ("build/a.o", "build/sub/b.o", "src/c.log", "logs/deep/d.txt", "logs/deep/er/e.txt",
                    "nest/f", "logs/inner/g", "notes.txt", "pkg/__pycache__/m.pyc", "logs/__pycache__/n.pyc",
                    ".ratchet/reports/iter-0001-trial-01.out"):
            write(repo, rel, "x\n")
        for sub in ("nest", "logs/inner"):  # an ignored nested repository, and one inside an ignored folder
            git(os.path.join(repo, sub), "init", "-q")
        os.makedirs(os.path.join(repo, "empty"))
        os.symlink("../src", os.path.join(repo, "logs", "link"))  # a symlink to a folder is a file to git
        os.symlink("/nonexistent", os.path.join(repo, "logs", "dangling"))
        os.mkfifo(os.path.join(repo, "build", "sub", "pipe"))  # git lists no fifo
        write(repo, "a.txt", "2\n")
        self.assertEqual(carry.tree(repo), self.traditional(repo))
        self.assertIn("logs/link", carry.tree(repo)["files"])

    def test_the_store_is_one_entry_git_never_walks(self):
        from ratchetlib.io import gitops
        repo = make_repo(self, {"a.txt": "1\n", ".gitignore": "/.ratchet/\n*.log\n"})
        for k in range(30):
            write(repo, f".ratchet/reports/iter-{k:04d}.out", "x\n")
        write(repo, "notes.txt", "untracked\n")
        write(repo, "build.log", "ignored\n")
        write(repo, "a.txt", "2\n")
        outputs, real = [], gitops.git

        def kept(r, *args, **kw):
            outputs.append(real(r, *args, **kw))
            return outputs[-1]
        with mock.patch.object(gitops, "git", kept):
            tree = carry.tree(repo)
        self.assertEqual((sorted(tree["files"]), tree["tracked"]), (["build.log", "notes.txt"], ["a.txt"]))
        listed = [e[2:] for e in outputs[0].split("\0") if e[:1] in "?!"]
        self.assertEqual([e for e in listed if e.startswith(".ratchet")], [".ratchet/"])


class SwappedTreeTest(unittest.TestCase):
    """carry.swapped (issue 18): the tree after ratchet's own swap, known
    without git, is what `git status` (carry.tree) reports after that swap,
    for every kind of path a candidate has, through git and through the
    captured files, both ways and again."""

    def test_the_derived_tree_equals_gits_after_every_switch(self):
        repo = make_repo(self, {"a.txt": "1\n", "old.txt": "old\n", "keep.txt": "k\n", ".gitignore": "*.log\n"})
        write(repo, "notes.txt", "the user's\n")  # untracked, there before
        write(repo, "build.log", "ignored\n")
        store = os.path.join(repo, ".ratchet")
        os.makedirs(store)
        # the candidate: an edit, a deletion, a new file in a new folder, a staged new file, a mode change
        write(repo, "a.txt", "2\n")
        os.remove(os.path.join(repo, "old.txt"))
        write(repo, "pkg/deep/new.py", "x = 1\n")
        write(repo, "staged.txt", "s\n")
        git(repo, "add", "staged.txt")
        os.chmod(os.path.join(repo, "keep.txt"), 0o755)
        run = types.SimpleNamespace(repo=repo, store=types.SimpleNamespace(root=store))
        tracked, new = ["a.txt", "keep.txt", "old.txt", "staged.txt"], ["pkg/deep/new.py"]
        patch = gitpatch.diff_patch(repo, tracked, new)
        with open(os.path.join(store, "candidate.patch"), "wb") as f:
            f.write(patch.encode())
        swap = {"patch": "candidate.patch", "tracked": tracked, "new": new}
        sides = {"candidate": swapfiles.read_side(repo, tracked + new)}
        paired.to_incumbent(run, swap, sides)  # through git: learns which tracked paths HEAD lacks
        self.assertEqual(sides["absent"], ["staged.txt"])
        left = carry.tree(repo)
        for role in ("candidate", "incumbent", "candidate", "incumbent", "candidate"):
            with self.subTest(role=role):
                (paired.to_candidate if role == "candidate" else paired.to_incumbent)(run, swap, sides)
                derived = carry.swapped(repo, left, tracked, new, sides["absent"], role)
                left = carry.tree(repo)
                self.assertEqual(derived, left)
        self.assertEqual(read(repo, "a.txt"), "2\n")
        self.assertIn("staged.txt", left["files"])
