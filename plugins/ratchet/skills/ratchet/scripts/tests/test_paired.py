"""Paired decisions end to end (issue 3): the swap and its recovery, common
random numbers, keep/revert on a noisy stand-in benchmark, deterministic
metrics, noise calibration, verify."""

import json
import os
import signal
import subprocess
from unittest import mock

from ratchetlib.io import gitops
from tests.util import BENCH, INIT, PY, RATCHET, RepoTest, read, write

# Noisy stand-in: the value in value.txt times (1 + N(0, CV)), unseeded.
NOISY = ("import os, random\n"
         "cv = float(os.environ.get('BENCH_CV', '0.01'))\n"
         "v = float(open('value.txt').read())\n"
         "print('score:', v * (1 + random.gauss(0, cv)))\n")

# Seed logger: the score depends on the seed only through a factor both runs
# of a pair share; every run appends "<seed> <value>" to ../seeds.log.
SEEDED = ("import os\n"
          "seed = int(os.environ['MYSEED'])\n"
          "v = float(open('value.txt').read())\n"
          "open(os.path.join('..', 'seeds.log'), 'a').write(f'{seed} {v}\\n')\n"
          "print('score:', v * (1 + (seed % 1000 - 500) / 5000))\n")

# Kills the ratchet process (pid in ../pid) during the first incumbent run.
KILLER = ("import os, signal, time\n"
          "v = open('value.txt').read().strip()\n"
          "marker = os.path.join('..', 'killed')\n"
          "if v == '10' and os.path.exists(os.path.join('..', 'armed')) and not os.path.exists(marker):\n"
          "    open(marker, 'w').write('x')\n"
          "    for _ in range(200):\n"
          "        if os.path.exists(os.path.join('..', 'pid')):\n"
          "            break\n"
          "        time.sleep(0.05)\n"
          "    os.kill(int(open(os.path.join('..', 'pid')).read()), signal.SIGKILL)\n"
          "    time.sleep(1)\n"
          "print('score:', v)\n")


class PairedTest(RepoTest):

    def use(self, bench):
        write(self.repo, "bench.py", bench)
        subprocess.run(["git", "commit", "-qam", "bench"], cwd=self.repo, check=True)

    def load(self, *rel):
        with open(os.path.join(self.repo, *rel)) as f:
            return json.load(f)

    def iterate(self, value, hyp="change"):
        self.set_value(value)
        return self.run_ok("iterate", "--hypothesis", hyp)

    def test_deterministic_metric_decided_after_min_pairs(self):
        out = self.start()
        self.assertIn("deterministic", out)
        self.assertEqual(len(self.records()[0]["trial_scores"]), 10)  # the calibration runs (default 10)
        out = self.iterate(12)
        self.assertIn("KEEP", out)
        rec = self.records()[-1]
        self.assertEqual((rec["pairs"], rec["trial_scores"], rec["incumbent_scores"]), (2, [12.0, 12.0], [10.0, 10.0]))
        self.assertIn("deterministic metric", rec["reason"])
        self.assertAlmostEqual(rec["estimate"], 0.2)
        self.assertEqual([t["role"] for t in sorted(rec["trials"] + rec["incumbent_trials"], key=lambda t: t["trial"])],
                         ["incumbent", "candidate", "candidate", "incumbent"])  # AB, BA
        self.assertEqual(read(self.repo, "value.txt").strip(), "12")
        self.iterate(11)
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["pairs"]), ("revert", 2))
        self.assertEqual(read(self.repo, "value.txt").strip(), "12")  # the tree ends on the incumbent
        self.assertTrue(os.path.exists(os.path.join(self.repo, ".ratchet", rec["patch"])))

    def git_calls_of_an_iterate(self, value, stage=False):
        self.set_value(value)
        if stage:
            subprocess.run(["git", "add", "value.txt"], cwd=self.repo, check=True)
        with mock.patch.object(gitops, "git", wraps=gitops.git) as spy:
            out = self.run_ok("iterate", "--hypothesis", "change")
        return out, [a for c in spy.call_args_list for a in c.args[1:] if a in ("reset", "ls-tree", "checkout")]

    def test_a_change_with_nothing_staged_is_swapped_and_reverted_by_checkouts_alone(self):
        self.start()
        out, calls = self.git_calls_of_an_iterate(12)
        self.assertIn("KEEP", out)
        self.assertEqual(calls, ["checkout"])  # the first switch: no reset, no ls-tree (issue 18)
        self.assertEqual([r["incumbent_scores"] for r in self.records()[-1:]], [[10.0, 10.0]])  # it ran HEAD's code
        out, calls = self.git_calls_of_an_iterate(13, stage=True)  # staged: the index is reset first
        self.assertIn("KEEP", out)
        self.assertEqual(calls, ["reset", "ls-tree", "checkout"])
        self.assertEqual(self.records()[-1]["incumbent_scores"], [12.0, 12.0])
        self.assertEqual(read(self.repo, "value.txt").strip(), "13")
        out, calls = self.git_calls_of_an_iterate(11)  # a revert of an unstaged change: the swap's checkout alone,
        self.assertIn("REVERT", out)                   # the revert writes back the incumbent the swap captured
        self.assertEqual(calls, ["checkout"])
        self.assertEqual(read(self.repo, "value.txt").strip(), "13")
        out, calls = self.git_calls_of_an_iterate(11, stage=True)
        self.assertIn("REVERT", out)
        self.assertEqual(calls, ["reset", "ls-tree", "checkout"] * 2)
        self.assertEqual(read(self.repo, "value.txt").strip(), "13")
        self.assertEqual(subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=self.repo, capture_output=True,
                                        text=True).stdout, "")  # nothing left staged

    def test_a_revert_from_the_swaps_memory_leaves_what_gits_checkout_would(self):
        """keep/finish._back_from_memory: the incumbent's bytes and modes back,
        the candidate's new file and its new folder gone, nothing staged, git
        sees a clean tree; the saved patch re-applies the candidate."""
        os.chmod(os.path.join(self.repo, "value.txt"), 0o755)
        subprocess.run(["git", "commit", "-qam", "exec bit"], cwd=self.repo, check=True)
        self.start()
        write(self.repo, "gen/deep/extra.txt", "the agent's new file\n")
        with mock.patch.object(gitops, "git", wraps=gitops.git) as spy:
            out = self.iterate(9)
        self.assertIn("REVERT", out)
        self.assertEqual([a for c in spy.call_args_list for a in c.args[1:] if a == "checkout"], ["checkout"])
        self.assertEqual(read(self.repo, "value.txt").strip(), "10")
        self.assertFalse(os.path.exists(os.path.join(self.repo, "gen")))
        self.assertEqual(os.stat(os.path.join(self.repo, "value.txt")).st_mode & 0o777, 0o755)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=self.repo,
                                capture_output=True, text=True).stdout
        self.assertEqual(status, "")
        rec = self.records()[-1]
        self.assertEqual(sorted(rec["changed"]), ["gen/deep/extra.txt", "value.txt"])
        subprocess.run(["git", "apply", "--binary", os.path.join(".ratchet", rec["patch"])], cwd=self.repo, check=True)
        self.assertEqual(read(self.repo, "value.txt").strip(), "9")
        self.assertEqual(read(self.repo, "gen/deep/extra.txt"), "the agent's new file\n")

    def test_the_tree_needs_no_git_status_of_its_own_when_the_runs_touch_no_tracked_file(self):
        """The first trial's tree comes from the candidate's own status, and
        each run's effect on the tree from two stat scans (io/treescan): an
        iterate's only statuses are the candidate's and the next state's,
        not one a trial (issue 18); a run that writes a tracked file still
        gets git's own answer, and its write is still caught."""
        self.start()
        self.set_value(12)
        with mock.patch.object(gitops, "git", wraps=gitops.git) as spy:
            self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "change"))
        self.assertEqual(len([c for c in spy.call_args_list if c.args[1] == "status"]), 2)
        self.assertEqual(len(self.records()[-1]["trials"] + self.records()[-1]["incumbent_trials"]), 4)

    def test_a_revert_saves_the_measured_patch_without_asking_git_again(self):
        """The swap's patch is the revert's when the tree ends the pairs
        holding exactly that candidate: one `git diff` an iterate (three git
        processes fewer with a new file), the same bytes, and it applies."""
        self.start()
        self.set_value(9)
        write(self.repo, "helper.py", "X = 1\n")  # a new file too
        with mock.patch.object(gitops, "git", wraps=gitops.git) as spy:
            self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "worse"))
        diffs = [c for c in spy.call_args_list if "diff" in c.args[1:3]]
        self.assertEqual(len(diffs), 1, diffs)
        rec = self.records()[-1]
        patch = read(self.repo, ".ratchet/" + rec["patch"])
        self.assertEqual(patch, read(self.repo, ".ratchet/swap/candidate.patch"))
        self.assertIn("helper.py", patch)
        self.assertFalse(os.path.exists(os.path.join(self.repo, "helper.py")))
        subprocess.run(["git", "apply", "--check", os.path.join(self.repo, ".ratchet", rec["patch"])],
                       cwd=self.repo, check=True)

    def test_a_staged_new_file_is_in_the_patch_git_makes(self):
        """Without the measured patch (the tree no longer the candidate as
        saved), the revert asks git: a staged new file, unstaged by the
        pairs' first switch, is still in the saved patch."""
        from ratchetlib.keep import finish
        self.start()
        self.set_value(9)
        write(self.repo, "helper.py", "X = 1\n")
        subprocess.run(["git", "add", "helper.py"], cwd=self.repo, check=True)
        with mock.patch.object(finish, "_measured_patch", return_value=None):
            self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "worse"))
        patch = read(self.repo, ".ratchet/" + self.records()[-1]["patch"])
        self.assertIn("helper.py", patch)
        self.assertIn("value.txt", patch)
        self.assertFalse(os.path.exists(os.path.join(self.repo, "helper.py")))
        subprocess.run(["git", "apply", "--check", os.path.join(self.repo, ".ratchet", self.records()[-1]["patch"])],
                       cwd=self.repo, check=True)

    def test_a_run_that_writes_a_tracked_file_gets_gits_answer(self):
        write(self.repo, "a.txt", "")
        self.use(BENCH + "open('a.txt', 'a').write('x')\n")  # every run appends to a tracked file
        subprocess.run(["git", "add", "a.txt"], cwd=self.repo, check=True)
        subprocess.run(["git", "commit", "-qm", "a"], cwd=self.repo, check=True)
        self.start()
        self.set_value(12)
        with mock.patch.object(gitops, "git", wraps=gitops.git) as spy:
            self.run_ok("iterate", "--hypothesis", "change")
        self.assertEqual(len([c for c in spy.call_args_list if c.args[1] == "status"]), 2 + 4)  # git's, after each run

    def test_noisy_benchmark_keeps_a_clear_gain_and_reverts_a_loss(self):
        self.use(NOISY)
        os.environ["BENCH_CV"] = "0.01"
        self.addCleanup(os.environ.pop, "BENCH_CV", None)
        out = self.start()
        self.assertIn("smallest improvement detectable within 10 pairs", out)
        st = self.state()
        self.assertTrue(st["log_scale"])
        self.assertGreater(st["noise"]["sigma_pair"], 0)
        self.iterate(11, "ten percent better")
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "keep", rec["reason"])
        self.assertRegex(rec["reason"], r"^kept: \+\d+\.\d% \[")
        self.assertTrue(0.05 < rec["estimate"] < 0.15, rec)
        self.assertTrue(rec["interval"][0] < rec["estimate"] < rec["interval"][1])
        self.assertEqual(len(rec["effects"]), rec["pairs"])
        self.assertIsNotNone(rec["statistic"])
        self.iterate(10, "ten percent worse")
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "revert", rec["reason"])
        self.assertLess(rec["estimate"], 0)
        self.assertEqual(read(self.repo, "value.txt").strip(), "11")
        self.assertGreater(self.state()["noise"]["pairs_seen"], 0)  # the noise estimate learns from pairs

    def test_calibration_says_when_the_target_is_out_of_reach(self):
        self.use(NOISY)
        os.environ["BENCH_CV"] = "0.2"
        self.addCleanup(os.environ.pop, "BENCH_CV", None)
        out = self.start()
        self.assertIn("too noisy for the target", out)
        self.assertIn("--max-trials", out)
        self.assertGreater(self.state()["detectable_effect"], 0.02)

    def test_seed_pairing(self):
        self.use(SEEDED)
        self.start("--seed-env", "MYSEED")
        log = os.path.join(os.path.dirname(self.repo), "seeds.log")
        os.remove(log)
        self.iterate(12)
        runs = [line.split() for line in read(os.path.dirname(log), "seeds.log").splitlines()]
        rec = self.records()[-1]
        self.assertEqual(len(runs), 2 * rec["pairs"])
        pairs = [runs[i:i + 2] for i in range(0, len(runs), 2)]
        for a, b in pairs:
            self.assertEqual(a[0], b[0])                   # same seed within a pair
            self.assertEqual({a[1], b[1]}, {"10.0", "12.0"})  # one run each
        self.assertEqual(len({p[0][0] for p in pairs}), len(pairs))  # a fresh seed per pair
        self.assertEqual(rec["decision"], "keep")

    def test_kill_mid_swap_recovers_the_candidate(self):
        self.use(KILLER)
        self.start()
        root = os.path.dirname(self.repo)
        open(os.path.join(root, "armed"), "w").close()
        self.set_value("11")
        proc = subprocess.Popen([PY, RATCHET, "-C", self.repo, "iterate", "--hypothesis", "h"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with open(os.path.join(root, "pid"), "w") as f:
            f.write(str(proc.pid))
        proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, -signal.SIGKILL)
        self.assertEqual(read(self.repo, "value.txt").strip(), "10")  # killed while the incumbent was in the tree
        cur = self.load(".ratchet", "current.json")
        self.assertIn("swap", cur)
        os.remove(os.path.join(root, "armed"))
        out = self.run_ok("iterate", "--hypothesis", "h")
        self.assertIn("mid-swap; the candidate was restored", out)
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["iter"]), ("keep", 1))
        self.assertEqual(read(self.repo, "value.txt").strip(), "11")

    def test_verify_and_status_show_the_verified_gain(self):
        self.start("--iterations", "2")
        self.iterate(11)
        self.iterate(12)  # the iteration cap: the run stops and verifies itself
        st = self.state()
        self.assertAlmostEqual(st["verified"]["gain_pct"], 20.0)
        self.assertEqual(st["verified"]["interval"], [st["verified"]["gain_pct"]] * 2)
        self.assertEqual(st["verified"]["pairs"], 2)  # deterministic: no more pairs needed
        self.assertIn("verified gain over the start: +20.0%", self.run_ok("status"))
        doc = self.load(".ratchet", "verify.json")
        self.assertEqual((doc["start_scores"], doc["best_scores"]), ([10.0, 10.0], [12.0, 12.0]))
        self.assertEqual(read(self.repo, "value.txt").strip(), "12")

    def test_verify_verb_on_a_noisy_benchmark(self):
        self.use(NOISY)
        os.environ["BENCH_CV"] = "0.01"
        self.addCleanup(os.environ.pop, "BENCH_CV", None)
        self.start()
        self.iterate(12)
        out = self.run_ok("verify", "--pairs", "6")
        self.assertIn("verified gain over the start", out)
        v = self.state()["verified"]
        self.assertEqual(v["pairs"], 6)
        self.assertTrue(v["interval"][0] < v["gain_pct"] < v["interval"][1])
        self.assertLess(abs(v["gain_pct"] - 20.0), 3.0, v)  # 1% noise, 6 pairs: se about 0.6 points
        self.assertEqual(read(self.repo, "value.txt").strip(), "12")
        self.assertEqual(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=self.repo,
                                        stdout=subprocess.PIPE, text=True).stdout, "")

    def test_flags_are_validated(self):
        self.run_fail(*INIT, "--max-trials", "1")
        self.run_fail(*INIT, "--target", "0")
        self.run_fail(*INIT, "--alpha", "0.7")
        self.run_fail(*INIT, "--seed-env", "NOT A NAME")
        self.run_fail(*INIT, "--calibration-runs", "1")
        self.run_ok(*INIT, "--decision", "mean")
        self.assertEqual(self.load(".ratchet", "config.json")["decision"], "mean")

    def test_a_config_from_before_paired_decisions_keeps_the_mean_rule(self):
        from ratchetlib.core import config
        self.assertEqual(config.from_dict({"run_command": "x", "direction": "max", "metric_name": "s"}).decision,
                         "mean")
        self.assertEqual(config.build({"run_command": "x", "direction": "max", "metric_name": "s",
                                       "report_source": "stdout"}, self.repo).min_pairs, 2)


if __name__ == "__main__":
    import unittest
    unittest.main()
