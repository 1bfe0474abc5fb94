"""Issue 14, point 7: submodules and git-ignored files. An edit inside a
submodule is refused at `iterate` (never a false "reverted"); a kept change
that ran with a git-ignored file made since init names it in the verdict, and
`finalize` warns that the branch does not carry it."""

import os
import subprocess

from ratchetlib.io import gitops
from tests.util import RepoTest, TRIAL_PY, git, read, write

INIT = ["init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
        "--report-source", "stdout", "--protect", "bench.py"]


class Submodules(RepoTest):
    def setUp(self):
        super().setUp()
        lib = os.path.join(os.path.dirname(self.repo), "lib")
        os.makedirs(lib)
        git(lib, "init", "-q", "-b", "main")
        write(lib, "lib.py", "X = 10\n")
        git(lib, "add", "-A")
        git(lib, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "lib")
        subprocess.run(["git", "-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "lib"],
                       cwd=self.repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        write(self.repo, "bench.py", "import sys\nsys.path.insert(0, 'lib')\nimport lib\nprint('score:', lib.X)\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "with a submodule")
        self.run_ok(*INIT)
        self.run_ok("baseline")

    def test_an_edit_inside_a_submodule_is_refused_and_left_alone(self):
        write(self.repo, "lib/lib.py", "X = 20\n")
        err = self.run_fail("iterate", "--hypothesis", "bigger")
        self.assertIn("the change is inside git submodule or nested repository lib", err)
        self.assertIn("git -C lib stash -u", err)
        self.assertEqual(read(self.repo, "lib/lib.py"), "X = 20\n", "nothing claims to have undone it")
        self.assertEqual([r["decision"] for r in self.records()], ["baseline"])
        git(os.path.join(self.repo, "lib"), "stash", "-q", "-u")  # the fix the message names
        write(self.repo, "value.txt", "11\n")
        self.run_ok("iterate", "--hypothesis", "a real change")
        self.assertEqual(self.records()[-1]["decision"], "revert")

    def test_a_new_file_in_a_submodule_and_a_nested_repository_are_refused(self):
        write(self.repo, "lib/extra.py", "Y = 1\n")
        self.assertIn("submodule or nested repository lib", self.run_fail("iterate", "--hypothesis", "h"))
        os.remove(os.path.join(self.repo, "lib", "extra.py"))
        nested = os.path.join(self.repo, "vendor")
        os.makedirs(nested)
        git(nested, "init", "-q")
        write(nested, "v.py", "Z = 1\n")
        self.assertIn("nested repository vendor", self.run_fail("iterate", "--hypothesis", "h"))
        self.assertIn("nested repository vendor", self.run_fail("stop"))


    def test_the_status_names_the_gitlinks_without_another_git_process(self):
        """Porcelain v2 carries each entry's HEAD and index modes, so a
        submodule is known from the status itself (issue 18: no ls-files and
        ls-tree per iterate), whether edited, deleted or only staged."""
        write(self.repo, "lib/lib.py", "X = 30\n")
        write(self.repo, "with space.txt", "a b\n")
        write(self.repo, ".gitignore", "*.log\n")
        write(self.repo, "run.log", "x\n")
        changes, ignored = gitops.status_and_ignored(self.repo)
        seen = {c.path: (c.xy, c.gitlink) for c in changes}
        self.assertEqual(seen, {"lib": (" M", True), "with space.txt": ("??", False), ".gitignore": ("??", False)})
        self.assertEqual(ignored, [".ratchet/", "run.log"])
        self.assertEqual(gitops.nested_repos(changes), ["lib"])
        git(self.repo, "rm", "-q", "--cached", "lib")  # staged removal: a gitlink in HEAD only
        self.assertIn(("lib", "D ", True), [(c.path, c.xy, c.gitlink) for c in gitops.status(self.repo)])
        git(self.repo, "add", "bench.py")
        write(self.repo, "bench.py", "print('score: 1')\n")
        self.assertIn(("bench.py", " M", False), [(c.path, c.xy, c.gitlink) for c in gitops.status(self.repo)])

    def test_every_kind_of_v2_entry_is_read(self):
        raw = "\0".join(["1 .M N... 100644 100644 100644 aaa aaa a b.py", "1 D. S... 160000 000000 000000 bbb 000 lib",
                         "2 R. N... 100644 100644 100644 ccc ccc R100 new name.py", "old name.py",
                         "u UU N... 100644 100644 100644 100644 d e f both.py", "? new dir/x.py", "! build/", "? vendor/", ""])
        self.assertEqual([(c.xy, c.path, c.gitlink) for c in gitops.parse_status(raw)],
                         [(" M", "a b.py", False), ("D ", "lib", True), ("R ", "new name.py", False),
                          ("UU", "both.py", False), ("??", "new dir/x.py", False), ("!!", "build/", False),
                          ("??", "vendor/", False)])
        self.assertEqual(gitops.nested_repos([c for c in gitops.parse_status(raw) if c.xy != "!!"]), ["lib", "vendor/"])


class NestedBeforeInit(RepoTest):
    def test_a_nested_repository_the_user_had_at_init_is_theirs(self):
        nested = os.path.join(self.repo, "vendor")
        os.makedirs(nested)
        git(nested, "init", "-q")
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "value.txt", "11\n")
        self.run_ok("iterate", "--hypothesis", "h")
        self.assertEqual(self.records()[-1]["decision"], "keep")


class IgnoredFiles(RepoTest):
    files = {"bench.py": "import speed\nopen('trial.log', 'w').write('ran')\nprint('score:', speed.score())\n",
             "speed.py": "def score():\n    return 10\n", ".gitignore": "*.cfg\n*.log\n__pycache__/\n"}

    def test_a_kept_change_reading_a_new_ignored_file_is_flagged_and_finalize_warns(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "tuned.cfg", "20\n")  # the agent's data file, which git ignores
        write(self.repo, "speed.py", "def score():\n    return int(open('tuned.cfg').read())\n")
        out = self.run_ok("iterate", "--hypothesis", "read the tuned value")
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["ignored_new"]), ("keep", ["tuned.cfg"]))
        self.assertIn("not part of the commit: git-ignored tuned.cfg, made since init", rec["reason"])
        self.assertIn("not part of the commit", out)
        write(self.repo, "scratch.cfg", "notes\n")  # made in a reverted iteration ...
        write(self.repo, "speed.py", "def score():\n    return 5\n")
        self.run_ok("iterate", "--hypothesis", "worse")
        self.assertEqual(self.records()[-1]["decision"], "revert")
        write(self.repo, "speed.py", "def score():\n    return int(open('tuned.cfg').read()) + 10\n")
        self.run_ok("iterate", "--hypothesis", "more")
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["ignored_new"]), ("keep", ["scratch.cfg"]))  # ... named once kept; tuned.cfg was already
        self.assertNotIn("trial.log", rec["reason"])
        out = self.run_ok("finalize")
        self.assertIn("warning: kept changes ran with git-ignored tuned.cfg, scratch.cfg, which the branch does "
                      "not carry", out)
        branch = [l for l in out.splitlines() if l.startswith("created branch ")][0].split()[2].rstrip(":")
        self.assertNotIn("tuned.cfg", git(self.repo, "ls-tree", "-r", "--name-only", branch))

    def test_trial_outputs_and_an_untouched_run_are_not_flagged(self):
        # a candidate's run that writes a file nobody declared is tampering (carry.py): declare it as an output
        self.run_ok(*INIT, "--output", "new_output.log")
        self.run_ok("baseline")
        write(self.repo, "bench_out.log", "x")  # a log the user's wrapper writes is flagged only if kept with it
        os.remove(os.path.join(self.repo, "bench_out.log"))
        write(self.repo, "speed.py", "def score():\n    open('new_output.log', 'w').write('x')\n    return 20\n")
        self.run_ok("iterate", "--hypothesis", "bigger")
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "keep")
        self.assertNotIn("ignored_new", rec)  # new_output.log is what its trials wrote
        self.assertNotIn("warning", self.run_ok("finalize"))
