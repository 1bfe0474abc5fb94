"""--artifact-glob: the best checkpoint copied atomically after a keep, a
reverted iteration's checkpoints left or removed, the user's files never."""

import json
import os
import unittest
from unittest import mock

from ratchetlib.io import artifacts, store_best
from tests.util import RepoTest, TRIAL_PY, git, read, write

BENCH = """import os, sys, time
v = open('value.txt').read().strip()
os.makedirs('ckpt', exist_ok=True)
open('ckpt/model-%d.bin' % time.time_ns(), 'w').write(v)
open('tok.json', 'w').write(v)
print('score:', v)
"""


class ArtifactTest(RepoTest):
    files = {"bench.py": BENCH, "value.txt": "10"}

    def start(self, *extra):
        self.run_ok("init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                    "--report-source", "stdout", "--protect", "bench.py", "--artifact-glob", "ckpt/model-*.bin",
                    "--artifact-glob", "tok.json", "--decision", "mean", *extra)
        # (trial counts and checkpoint names below follow the mean rule: paired incumbent runs write checkpoints too)
        return self.run_ok("baseline")

    def best(self):
        root = os.path.join(self.repo, ".ratchet", "best")
        with open(os.path.join(root, "best.json")) as f:
            manifest = json.load(f)
        contents = {}
        for entry in manifest["files"]:
            contents[entry["path"]] = read(root, os.path.join("files", entry["path"]))
        return manifest, contents

    def models(self):
        return sorted(os.listdir(os.path.join(self.repo, "ckpt")))

    def leftovers(self):
        return [n for n in os.listdir(os.path.join(self.repo, ".ratchet")) if n.startswith("best.")]

    def test_keep_copies_the_newest_match_of_each_glob(self):
        self.start("--trials", "2")
        manifest, contents = self.best()
        self.assertEqual((manifest["iter"], manifest["score"]), (0, 10.0))
        self.assertEqual(len(contents), 2)
        newest = self.models()[-1]
        self.assertEqual(contents, {f"ckpt/{newest}": "10", "tok.json": "10"})
        self.set_value(12)
        out = self.run_ok("iterate", "--hypothesis", "better")
        self.assertIn("KEEP", out)
        manifest, contents = self.best()
        rec = self.records()[-1]
        self.assertEqual((manifest["iter"], manifest["sha"]), (1, rec["sha"]))
        self.assertEqual(contents, {f"ckpt/{self.models()[-1]}": "12", "tok.json": "12"})
        self.assertEqual(rec["artifacts"], {"best": [f"ckpt/{self.models()[-1]}", "tok.json"], "removed": []})
        self.assertEqual([len(t["artifacts"]) for t in rec["trials"]], [2, 2])
        self.assertEqual(self.leftovers(), [])
        self.assertIn("best artifacts (iter 1): .ratchet/best/files/", self.run_ok("stop"))

    def test_revert_keeps_artifacts_by_default_and_best_is_unchanged(self):
        self.start()
        self.set_value(5)
        self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "worse"))
        self.assertEqual(len(self.models()), 2)
        self.assertEqual(self.best()[0]["iter"], 0)
        self.assertEqual(self.records()[-1]["artifacts"], {"best": [], "removed": []})

    def test_remove_on_revert_deletes_only_what_the_iteration_created(self):
        write(self.repo, "ckpt/model-0.bin", "the user's own checkpoint")
        write(self.repo, "tok.json", "the user's tokenizer")
        self.start("--artifacts-on-revert", "remove")
        before = self.models()
        self.set_value(5)
        write(self.repo, "notes.txt", "the agent's scratch file")  # part of the candidate, reverted as usual
        self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "worse"))
        rec = self.records()[-1]
        self.assertEqual(len(rec["artifacts"]["removed"]), 1)
        self.assertEqual(self.models(), before)
        self.assertEqual(read(self.repo, "ckpt/model-0.bin"), "the user's own checkpoint")
        self.assertTrue(os.path.exists(os.path.join(self.repo, "tok.json")))  # overwritten, not created: left
        self.set_value("crash")
        self.assertIn("CRASH", self.run_ok("iterate", "--hypothesis", "broken"))
        self.assertEqual(self.models(), before)

    def test_tracked_artifacts_are_never_removed(self):
        write(self.repo, ".gitignore", "")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "x")
        self.start("--artifacts-on-revert", "remove")
        self.assertEqual(artifacts.discard(self.repo, [{"artifacts_created": ["bench.py", "absent.bin"]}]), [])
        self.assertTrue(os.path.exists(os.path.join(self.repo, "bench.py")))

    def test_invalid_flags(self):
        for args, fragment in ((["--artifact-glob", "../x"], "inside it"),
                               (["--artifact-glob", ".ratchet/best/*"], "ratchet owns"),
                               (["--artifacts-on-revert", "delete"], "invalid choice")):
            with self.subTest(args=args):
                err = self.run_fail("init", "--run-command", "true", "--direction", "max", "--metric-name", "s",
                                    "--report-source", "stdout", *args)
                self.assertIn(fragment, err)


class CrashInTheMiddleTest(ArtifactTest):
    """A kill at each point of the swap leaves a whole best (old or new) or a whole old one to restore."""

    def killed_at(self, where):
        """Patch the swap so the process 'dies' (KeyboardInterrupt, like Ctrl-C) at `where`."""
        real_copy, real_rename = store_best._copy, store_best._rename
        calls = {"copy": 0, "rename": 0}

        def copy(src, dest):
            calls["copy"] += 1
            if where == "mid-copy" and calls["copy"] == 2:
                with open(dest, "w") as f:
                    f.write("half")  # a torn second file
                raise KeyboardInterrupt
            real_copy(src, dest)

        def rename(src, dest):
            calls["rename"] += 1
            real_rename(src, dest)
            if (where, calls["rename"]) in (("after-old-moved", 1), ("after-new-moved", 2)):
                raise KeyboardInterrupt
        return mock.patch.multiple(store_best, _copy=copy, _rename=rename)

    def test_kill_at_each_step_of_the_swap(self):
        from tests.util import cli
        self.start()
        for n, where in enumerate(("mid-copy", "after-old-moved", "after-new-moved"), start=1):
            with self.subTest(where=where):
                value = 20 + n
                previous = 2 * n - 3 if n > 1 else 0  # each round is a keep, then a no-change iteration
                self.set_value(value)
                with self.killed_at(where):
                    code, out, err = cli("iterate", "--hypothesis", f"h{n}", cwd=self.repo)
                self.assertEqual(code, 130, err)
                best = os.path.join(self.repo, ".ratchet", "best")
                if where == "after-old-moved":
                    self.assertFalse(os.path.exists(best))
                    old = [x for x in self.leftovers() if x.startswith("best.old-")]
                    self.assertEqual(len(old), 1)
                    with open(os.path.join(self.repo, ".ratchet", old[0], "best.json")) as f:
                        self.assertEqual(json.load(f)["iter"], previous)
                else:
                    manifest, contents = self.best()  # whole: every listed file is there, no "half"
                    self.assertEqual(manifest["iter"], previous if where == "mid-copy" else 2 * n - 1)
                    self.assertNotIn("half", contents.values())
                # The next command finishes the decided keep, copy included.
                out = self.run_ok("iterate", "--hypothesis", "nothing new")
                self.assertIn(f"finished iteration {2 * n - 1} (keep)", out)
                manifest, contents = self.best()
                self.assertEqual(manifest["iter"], 2 * n - 1)
                self.assertEqual(contents["tok.json"], str(value))
                self.assertEqual(self.leftovers(), [])


if __name__ == "__main__":
    unittest.main()
