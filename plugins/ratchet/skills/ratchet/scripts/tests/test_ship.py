"""`diff` and `finalize`: the run's change as text and as a clean branch."""

import json
import os
import unittest

from ratchetlib.io.store import Store
from ratchetlib.core.state import from_json as state_from_json
from tests.util import BENCH, RepoTest, git, read, write


def refs(repo):
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()


class ShipTest(RepoTest):
    files = {"bench.py": BENCH, "value.txt": "10\n", "src/a.py": "A = 1\n", "src/old.py": "OLD = 1\n"}

    def loop(self):
        """baseline 10; keep 12 (+ a.py edit); revert 11; crash; keep 15 (+ new file, old.py deleted)."""
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.set_value(12)
        write(self.repo, "src/a.py", "A = 2\n")
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "bigger value", "--description", "value 12"))
        self.set_value(11)
        self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "smaller value", "--description", "value 11"))
        self.set_value("x")
        self.assertIn("CRASH", self.run_ok("iterate", "--hypothesis", "broken value"))
        self.set_value(15)
        write(self.repo, "src/new.py", "NEW = 1\n")
        os.remove(os.path.join(self.repo, "src/old.py"))
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "much bigger", "--description", "value 15"))
        return self.records()

    def head(self, ref="HEAD"):
        return git(self.repo, "rev-parse", ref).strip()

    def tree(self, ref):
        return git(self.repo, "rev-parse", f"{ref}^{{tree}}").strip()


class DiffTest(ShipTest):
    def test_best_iteration_and_patch(self):
        recs = self.loop()
        out = self.run_ok("diff")
        self.assertIn("-10\n+15", out)
        self.assertIn("+A = 2", out)
        self.assertIn("+++ b/src/new.py", out)
        self.assertIn("deleted file mode", out)
        self.assertNotIn("bench.py", out)
        self.assertEqual(out, self.run_ok("diff", "--best"))
        # the diff is exactly start..best, so it applies to the start commit
        start = json.loads(read(self.repo, ".ratchet/config.json"))["start_commit"]
        self.assertEqual(out, git(self.repo, "diff", "--no-color", start, recs[-1]["sha"]))
        # a kept iteration: its own commit only
        one = self.run_ok("diff", "--iter", "1")
        self.assertIn("-10\n+12", one)
        self.assertIn("+A = 2", one)
        self.assertNotIn("new.py", one)
        # a reverted iteration: the patch its revert saved
        two = self.run_ok("diff", "--iter", "2")
        self.assertIn("-12\n+11", two)
        self.assertEqual(two, read(self.repo, ".ratchet/patches/iter-0002.patch"))
        self.assertIn("-12\n+x", self.run_ok("diff", "--iter", "3"))

    def test_mistakes_are_one_line(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.assertIn("nothing to finalize or diff", self.run_fail("diff"))
        self.assertIn("baseline", self.run_fail("diff", "--iter", "0"))
        self.assertIn("no record of iteration 9", self.run_fail("diff", "--iter", "9"))
        self.assertIn("not allowed with", self.run_fail("diff", "--best", "--iter", "1"))


class FinalizeTest(ShipTest):
    def test_single_commit(self):
        recs = self.loop()
        best = recs[-1]["sha"]
        start = json.loads(read(self.repo, ".ratchet/config.json"))["start_commit"]
        exp_branch = git(self.repo, "branch", "--show-current").strip()
        before = refs(self.repo)
        head_before = self.head()
        out = self.run_ok("finalize", "--branch", "result/one")
        self.assertIn("created branch result/one: 1 commit on the start commit", out)
        self.assertIn("its tree equals the best commit", out)
        self.assertIn("git switch main && git merge --ff-only result/one", out)
        self.assertIn("gh pr create --base main --head result/one", out)
        # the new branch: one commit, on the start commit, same tree as the best commit
        self.assertEqual(git(self.repo, "rev-list", "--count", f"{start}..result/one").strip(), "1")
        self.assertEqual(self.head("result/one^"), start)
        self.assertEqual(self.tree("result/one"), self.tree(best))
        msg = git(self.repo, "log", "-1", "--format=%B", "result/one")
        self.assertTrue(msg.startswith("Improve score by 50.0% (10 -> 15)\n"), msg)
        self.assertIn("- value 12: +2 (20.0% better)", msg)
        self.assertIn("- value 15: +3 (25.0% better)", msg)
        self.assertIn("Not verified by a paired re-run", msg)
        self.assertNotIn("Ratchet-Iteration", msg)
        self.assertNotIn("ratchet: iter", msg)
        files = git(self.repo, "ls-tree", "-r", "--name-only", "result/one").split()
        self.assertFalse([f for f in files if f.startswith(".ratchet")])
        # nothing else moved: HEAD, the experiment branch, main, the work tree
        self.assertEqual(self.head(), head_before)
        self.assertEqual(git(self.repo, "branch", "--show-current").strip(), exp_branch)
        self.assertEqual(sorted(refs(self.repo)), sorted(before + [f"refs/heads/result/one {self.head('result/one')}"]))
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        # the same name again is refused; the default name works
        self.assertIn("already exists", self.run_fail("finalize", "--branch", "result/one"))
        data = json.loads(self.run_ok("finalize", "--json"))
        self.assertTrue(data["branch"].endswith("-final"))
        self.assertEqual(data["tree"], self.tree(data["branch"]))

    def test_verified_gain_in_the_message(self):
        self.loop()
        st = self.state()
        st["verified"] = {"gain_pct": 48.0, "interval": [40.0, 55.5], "pairs": 8}
        Store(self.repo).write_state(state_from_json(st))  # through the writer that seals it
        self.run_ok("finalize", "--branch", "v")
        msg = git(self.repo, "log", "-1", "--format=%B", "v")
        self.assertIn("Verified gain (paired re-run): +48.0% [+40.0%, +55.5%] over 8 pairs.", msg)

    def test_split_one_commit_per_keep(self):
        recs = self.loop()
        start = json.loads(read(self.repo, ".ratchet/config.json"))["start_commit"]
        keeps = [r for r in recs if r["decision"] == "keep"]
        self.run_ok("stop")   # back on main: finalize works from there too
        out = self.run_ok("finalize", "--split", "--branch", "result/split")
        self.assertIn("2 commits on the start commit", out)
        shas = git(self.repo, "rev-list", "--reverse", f"{start}..result/split").split()
        self.assertEqual(len(shas), 2)
        # each commit's tree is its kept commit's tree, in order
        self.assertEqual([self.tree(s) for s in shas], [self.tree(r["sha"]) for r in keeps])
        self.assertEqual(self.tree("result/split"), self.tree(keeps[-1]["sha"]))
        subjects = git(self.repo, "log", "--reverse", "--format=%s", f"{start}..result/split").splitlines()
        self.assertEqual(subjects, ["value 12", "value 15"])
        body = git(self.repo, "log", "-1", "--format=%B", "result/split")
        self.assertIn("Why: much bigger", body)
        self.assertIn("score: 12 -> 15, +3 (25.0% better), mean of 1 trial(s)", body)
        self.assertNotIn("Ratchet-Iteration", git(self.repo, "log", "--format=%B", f"{start}..result/split"))
        self.assertEqual(git(self.repo, "branch", "--show-current").strip(), "main")
        self.assertIn("git switch main && git merge --ff-only result/split", out)

    def test_refuses_a_dirty_tree_and_changes_nothing(self):
        self.loop()
        before = refs(self.repo)
        write(self.repo, "src/a.py", "A = 99\n")
        err = self.run_fail("finalize", "--branch", "dirty")
        self.assertIn("uncommitted changes (src/a.py)", err)
        self.assertEqual(refs(self.repo), before)
        self.assertEqual(read(self.repo, "src/a.py"), "A = 99\n")

    def test_nothing_kept_and_bad_names(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.set_value(5)
        self.run_ok("iterate", "--hypothesis", "worse")
        self.assertIn("nothing to finalize", self.run_fail("finalize"))
        self.assertIn("not a valid git branch name", self.run_fail("finalize", "--branch", "bad..name"))

    def test_tree_check_refuses_a_best_with_paths_outside_the_scope(self):
        """A kept commit that carries a protected path (which ratchet never
        commits) cannot be rebuilt from the kept changes: refused, no branch."""
        self.loop()
        # rewrite history by hand: amend the best commit to also change the protected bench.py
        write(self.repo, "bench.py", BENCH + "# tampered\n")
        git(self.repo, "commit", "-q", "--amend", "-a", "--no-edit")
        new_best = self.head()
        st = self.state()
        st["incumbent_sha"] = new_best
        Store(self.repo).write_state(state_from_json(st))  # through the writer that seals it
        lines = read(self.repo, ".ratchet/results.jsonl").splitlines()
        last = json.loads(lines[-1])
        last["sha"] = new_best
        write(self.repo, ".ratchet/results.jsonl", "\n".join(lines[:-1] + [json.dumps(last)]) + "\n")
        before = refs(self.repo)
        err = self.run_fail("finalize", "--branch", "out", code=1)
        self.assertIn("differ from the best commit", err)
        self.assertIn("bench.py", err)
        self.assertEqual(refs(self.repo), before)

    def test_the_agents_own_commit_with_a_forged_trailer(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.set_value(13)
        git(self.repo, "commit", "-q", "-am", "agent work\n\nRatchet-Iteration: 7\n")
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "my own commit", "--description", "value 13"))
        self.run_ok("finalize", "--split", "--branch", "s")
        log = git(self.repo, "log", "--format=%B", "main..s")
        self.assertNotIn("Ratchet-Iteration", log)
        self.assertIn("value 13", log)
        self.assertEqual(self.tree("s"), self.tree(self.records()[-1]["sha"]))


class ChainFinalizeTest(RepoTest):
    def test_a_chain_starts_at_the_first_runs_start(self):
        start = git(self.repo, "rev-parse", "HEAD").strip()
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.set_value(12)
        self.run_ok("iterate", "--hypothesis", "a", "--description", "value 12")
        self.run_ok("stop")
        self.run_ok("chain", "--rationale", "go on")
        self.run_ok("baseline")
        self.set_value(14)
        self.run_ok("iterate", "--hypothesis", "b", "--description", "value 14")
        best = self.records()[-1]["sha"]
        out = self.run_ok("finalize", "--split", "--branch", "chain/split")
        self.assertIn("2 commits", out)
        self.assertEqual(git(self.repo, "rev-list", "--reverse", f"{start}..chain/split").count("\n"), 2)
        self.assertEqual(git(self.repo, "rev-parse", "chain/split~2").strip(), start)
        self.assertEqual(git(self.repo, "rev-parse", "chain/split^{tree}"), git(self.repo, "rev-parse", f"{best}^{{tree}}"))
        self.run_ok("finalize", "--branch", "chain/one")
        msg = git(self.repo, "log", "-1", "--format=%B", "chain/one")
        self.assertIn("(10 -> 14)", msg)
        self.assertIn("a chain of 2 runs", msg)


class CrashSafetyTest(ShipTest):
    def test_an_interrupted_finalize_leaves_no_branch(self):
        """Killed after the commit objects are made but before the ref: no
        branch exists, and a second finalize with the same name succeeds."""
        from unittest import mock
        from ratchetlib.io import gitops
        self.loop()
        real = gitops.git

        def dying(repo, *args, **kw):
            if args and args[0] == "update-ref":
                raise KeyboardInterrupt()
            return real(repo, *args, **kw)
        before = refs(self.repo)
        with mock.patch.object(gitops, "git", dying):
            from tests.util import cli
            code, _, _ = cli("finalize", "--branch", "half", cwd=self.repo)
        self.assertEqual(code, 130)
        self.assertEqual(refs(self.repo), before)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "lock")))
        self.run_ok("finalize", "--branch", "half")


if __name__ == "__main__":
    unittest.main()
