"""`doctor`: the preflight on a good benchmark, a noisy one, one that prints
no metric and one that hangs, plus the repository checks and what it leaves."""

import json
import math
import os
import shutil
import tempfile
import unittest
from unittest import mock

from ratchetlib.verbs import doctor, doctor_figures
from tests.util import BENCH, INIT, RepoTest, TRIAL_PY, cli, git, read, write

# Deterministic "noise": each run prints the next value of a fixed cycle
# (sd 7.9, CV 7.9% over the first five), its counter in a git-ignored file.
NOISY = ("import os\n"
         "vals = [100, 90, 110, 95, 105]\n"
         "n = int(open('.count').read()) if os.path.exists('.count') else 0\n"
         "open('.count', 'w').write(str(n + 1))\n"
         "print('score:', vals[n % 5])\n")
HANGS = "import time\nprint('starting', flush=True)\ntime.sleep(60)\n"
SILENT = "print('hello, no metric here')\n"


def flags(bench="bench.py", *extra):
    return ["doctor", "--run-command", f"{TRIAL_PY} {bench}", "--direction", "max", "--metric-name", "score",
            "--report-source", "stdout", *extra]


class DoctorTest(RepoTest):
    files = {"bench.py": BENCH, "value.txt": "10\n", "noisy.py": NOISY, "hangs.py": HANGS, "silent.py": SILENT,
             ".gitignore": ".count\n"}

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="doctor-tmp-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        patcher = mock.patch.object(tempfile, "tempdir", self.tmp)
        patcher.start()
        self.addCleanup(patcher.stop)

    def doctor(self, *argv, code=0):
        got, out, err = cli(*argv, "--json", cwd=self.repo)
        self.assertEqual(got, code, f"{argv}: {err}{out}")
        data = json.loads(out)
        return data, {c["name"]: c for c in data["checks"]}

    def assert_left_nothing(self):
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet")))
        self.assertEqual(os.listdir(self.tmp), [], "doctor left its temporary folder behind")

    def test_good_benchmark(self):
        data, c = self.doctor(*flags("bench.py", "--trials", "3", "--protect", "bench.py",
                                     "--trial-timeout-seconds", "30", "--runs", "3"))
        self.assertTrue(data["ok"])
        for name in ("git", "repository", "branch", "clean tree", "flags", "run command", "metric", "trial time",
                     "noise", "protected", "timeout"):
            self.assertEqual(c[name]["status"], "ok", c.get(name))
        self.assertIn("score = 10", c["metric"]["detail"])
        self.assertIn("none: 3 identical scores", c["noise"]["detail"])
        self.assertIn("bench.py", c["protected"]["detail"])
        m = data["measurement"]
        self.assertEqual((m["runs"], m["scores"], m["sd"]), (3, [10.0, 10.0, 10.0], 0.0))
        self.assert_left_nothing()
        # the human form: one line per check, a closing count, exit 0
        code, out, _ = cli(*flags("bench.py", "--runs", "2"), cwd=self.repo)
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"(?m)^ok    run command: .* exits 0")
        self.assertRegex(out, r"(?m)^warn  timeout: no --trial-timeout-seconds.*\n      fix: --trial-timeout-seconds 10 ")
        self.assertNotIn("\x1b[", out)   # not a terminal: no colour
        self.assertTrue(out.rstrip().splitlines()[-1].startswith("doctor: 0 fail, 1 warn: ready for `init`"))

    def test_noisy_benchmark(self):
        # the mean rule's own advice (the paired default's: test_paired_default_advises_no_margin)
        data, c = self.doctor(*flags("noisy.py", "--trials", "2", "--runs", "5", "--trial-timeout-seconds", "30",
                                     "--protect", "noisy.py", "--decision", "mean"))
        self.assertTrue(data["ok"])   # noise warns, it does not fail
        m = data["measurement"]
        self.assertEqual(m["scores"], [100.0, 90.0, 110.0, 95.0, 105.0])
        self.assertAlmostEqual(m["sd"], math.sqrt(62.5))
        self.assertAlmostEqual(m["cv_pct"], math.sqrt(62.5))
        self.assertEqual(c["noise"]["status"], "warn")
        self.assertIn("CV 7.91%", c["noise"]["detail"])
        # MDE = 2.8 * sqrt(2) * sd / sqrt(N), N = --trials 2: 2.8 * 7.906 = 22.1 (22.1% of 100)
        self.assertAlmostEqual(m["mde"], 2.8 * math.sqrt(62.5))
        self.assertEqual(c["detectable effect"]["status"], "warn")
        self.assertIn("22.14%", c["detectable effect"]["detail"])
        # trials for a 2% effect: (2.8 * sqrt(2) * 7.906 / 2)^2 = 245 > 50: reduce the noise first
        self.assertIn("reduce the noise first", c["detectable effect"]["fix"])
        self.assertEqual(c["false keeps"]["status"], "warn")
        self.assertIn("kept 50% of the time", c["false keeps"]["detail"])
        # margin for 5% false keeps: 1.645 * sd * sqrt(2 / 2) = 13% of 100
        self.assertIn("--min-improvement 13%", c["false keeps"]["fix"])
        self.assertEqual(data["suggested"].get("min_improvement"), "13%")
        self.assertNotIn("trials", data["suggested"])
        self.assert_left_nothing()

    def test_margin_that_covers_the_noise_and_a_goal(self):
        data, c = self.doctor(*flags("noisy.py", "--trials", "4", "--runs", "5", "--min-improvement", "30%",
                                     "--trial-timeout-seconds", "30", "--protect", "noisy.py", "--decision", "mean"))
        self.assertEqual(c["false keeps"]["status"], "ok")
        self.assertIn("kept 0% of the time", c["false keeps"]["detail"])
        self.assertEqual(c["detectable effect"]["status"], "ok")   # MDE 15.7% < the 30% goal

    def test_paired_default_advises_no_margin(self):
        """Under the paired test, false keeps are its alpha: no --min-improvement is suggested (issue 16)."""
        data, c = self.doctor(*flags("noisy.py", "--runs", "5", "--trial-timeout-seconds", "30", "--protect", "noisy.py"))
        self.assertTrue(data["ok"])
        self.assertNotIn("min_improvement", data["suggested"])
        self.assertNotIn("trials", data["suggested"])
        self.assertEqual(c["false keeps"]["status"], "ok")
        self.assertIn("held at --alpha 0.05 by the paired test", c["false keeps"]["detail"])
        self.assertNotIn("--min-improvement", c["false keeps"]["fix"] + c["detectable effect"]["fix"])
        # CV 7.9%: the test's detectable effect within 10 pairs, and the target 2% out of reach of 100 pairs
        m = data["measurement"]
        self.assertTrue(8.0 < m["paired_detectable_pct"] < 12.0, m)
        self.assertEqual(c["detectable effect"]["status"], "warn")
        self.assertIn("within --max-trials 10 pairs (20 runs)", c["detectable effect"]["detail"])
        self.assertIn("reduce the noise first", c["detectable effect"]["fix"])
        self.assertNotIn("mde", m)
        self.assert_left_nothing()

    def test_paired_default_suggests_the_pairs_a_target_takes(self):
        write(self.repo, "noisy.py", NOISY.replace("[100, 90, 110, 95, 105]", "[100, 98, 102, 99, 101]"))
        git(self.repo, "commit", "-qam", "quieter")
        data, c = self.doctor(*flags("noisy.py", "--runs", "5", "--trial-timeout-seconds", "30", "--protect", "noisy.py"))
        need = data["suggested"]["max_trials"]
        self.assertTrue(10 < need <= 30, data["suggested"])
        self.assertIn(f"--max-trials {need} (up to {2 * need} runs per iteration) to detect 2%",
                      c["detectable effect"]["fix"])
        self.assertNotIn("min_improvement", data["suggested"])
        # the mean rule keeps its own advice on the same benchmark
        data, c = self.doctor(*flags("noisy.py", "--runs", "5", "--trial-timeout-seconds", "30", "--protect", "noisy.py",
                                     "--decision", "mean"))
        self.assertIn("min_improvement", data["suggested"])
        self.assertNotIn("max_trials", data["suggested"])

    def test_no_metric(self):
        data, c = self.doctor(*flags("silent.py", "--runs", "2"), code=2)
        self.assertFalse(data["ok"])
        self.assertEqual(c["run command"]["status"], "ok")
        self.assertEqual(c["metric"]["status"], "fail")
        self.assertIn("no-metric", c["metric"]["detail"])
        self.assertIn("the report ends with: hello, no metric here", c["metric"]["detail"])
        self.assertIn("--metric-pattern", c["metric"]["fix"])
        self.assertNotIn("noise", c)
        self.assert_left_nothing()

    def test_hangs(self):
        data, c = self.doctor(*flags("hangs.py", "--trial-timeout-seconds", "0.5"), code=2)
        self.assertEqual(c["run command"]["status"], "fail")
        self.assertIn("no result within 0.50 s", c["run command"]["detail"])
        self.assertIn("starting", c["run command"]["detail"])
        self.assertIn("--trial-timeout-seconds", c["run command"]["fix"])
        self.assertIsNone(data["measurement"])
        self.assert_left_nothing()

    def test_a_long_run_under_doctors_own_limit_only_warns(self):
        with mock.patch.object(doctor, "DOCTOR_TIMEOUT", 0.5):
            data, c = self.doctor(*flags("hangs.py"))
        self.assertTrue(data["ok"])
        self.assertEqual(c["run command"]["status"], "warn")
        self.assertIn("doctor's own limit of 0.50 s", c["run command"]["detail"])
        self.assertNotIn("metric", c)
        self.assert_left_nothing()

    def test_crash_and_timeout_close_to_the_trial_time(self):
        write(self.repo, "crash.py", "import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
        git(self.repo, "add", "crash.py")
        git(self.repo, "commit", "-qm", "crash")
        data, c = self.doctor(*flags("crash.py"), code=2)
        self.assertIn("exit code 3", c["run command"]["detail"])
        self.assertIn("boom", c["run command"]["detail"])
        write(self.repo, "slow.py", "import time\ntime.sleep(1.0)\nprint('score: 1')\n")
        git(self.repo, "add", "slow.py")
        git(self.repo, "commit", "-qm", "slow")
        data, c = self.doctor(*flags("slow.py", "--runs", "1", "--trial-timeout-seconds", "1.9"))  # under 2x the run, with room for a loaded machine
        self.assertEqual(c["timeout"]["status"], "warn")
        self.assertIn("under twice the slowest run", c["timeout"]["detail"])
        self.assertEqual(c["noise"]["status"], "warn")   # one run: not measured
        self.assertIn("--runs 3", c["noise"]["fix"])

    def test_repository_checks(self):
        self.set_value(11)   # a dirty tracked file
        git(self.repo, "checkout", "-q", "--detach")
        data, c = self.doctor(*flags("bench.py", "--runs", "1", "--protect", "missing.py", "bench.py"), code=2)
        self.assertEqual(c["clean tree"]["status"], "fail")
        self.assertIn("value.txt", c["clean tree"]["detail"])
        self.assertEqual(c["branch"]["status"], "fail")
        self.assertIn("detached", c["branch"]["detail"])
        self.assertEqual(c["protected"]["status"], "fail")
        self.assertIn("missing.py", c["protected"]["detail"])

    def test_leaves_no_trace_and_puts_a_report_file_back(self):
        write(self.repo, "writes.py", "open('out.txt', 'w').write('score: 5\\n')\nopen('junk.log', 'w').write('x')\n")
        git(self.repo, "add", "writes.py")
        git(self.repo, "commit", "-qm", "w")
        write(self.repo, "out.txt", "mine\n")   # the user's own file at the report path
        data, c = self.doctor("doctor", "--run-command", f"{TRIAL_PY} writes.py", "--direction", "min",
                              "--metric-name", "score", "--report-source", "out.txt", "--runs", "2")
        self.assertEqual(c["metric"]["status"], "ok", c["metric"])
        self.assertEqual(read(self.repo, "out.txt"), "mine\n")
        self.assertEqual(c["outputs"]["status"], "warn")
        self.assertIn("junk.log", c["outputs"]["detail"])
        self.assertEqual(os.listdir(self.tmp), [])
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet")))

    def test_side_effects_on_tracked_files_fail(self):
        write(self.repo, "edits.py", "open('value.txt', 'w').write('11\\n')\nprint('score: 1')\n")
        git(self.repo, "add", "edits.py")
        git(self.repo, "commit", "-qm", "e")
        data, c = self.doctor(*flags("edits.py", "--runs", "1"), code=2)
        self.assertEqual(c["side effects"]["status"], "fail")
        self.assertIn("value.txt", c["side effects"]["detail"])

    def test_checks_the_current_run_without_flags(self):
        self.run_ok(*INIT)
        data, c = self.doctor("doctor", "--runs", "1")
        self.assertIn("checking run", c["flags"]["detail"])
        self.assertEqual(c["earlier run"]["status"], "warn")
        self.assertEqual(c["metric"]["status"], "ok")
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "lock")))

    def test_nothing_to_check_and_bad_flags(self):
        data, c = self.doctor("doctor", code=2)
        self.assertIn("no --run-command", c["flags"]["detail"])
        data, c = self.doctor("doctor", "--run-command", "true", "--metric-name", "a b", code=2)
        self.assertEqual(c["flags"]["status"], "fail")
        self.assertEqual(c["direction"]["status"], "warn")
        with tempfile.TemporaryDirectory() as d:
            got, out, _ = cli("doctor", "--json", cwd=d)
            self.assertEqual(got, 2)
            c = {x["name"]: x for x in json.loads(out)["checks"]}
            self.assertIn("not inside a git repository", c["repository"]["detail"])


class FiguresTest(unittest.TestCase):
    def test_formulas(self):
        self.assertAlmostEqual(doctor_figures.mde(1.0, 1), 2.8 * math.sqrt(2))
        self.assertAlmostEqual(doctor_figures.mde(1.0, 4), 1.4 * math.sqrt(2))
        self.assertAlmostEqual(doctor_figures.false_keep_rate(1.0, 2, 0.0), 0.5)
        self.assertAlmostEqual(doctor_figures.false_keep_rate(1.0, 2, 1.645), 0.05, places=3)
        self.assertEqual(doctor_figures.false_keep_rate(0.0, 2, 0.0), 0.0)
        self.assertEqual(doctor_figures.trials_for(1.0, 100.0, 2.0, 1), math.ceil((2.8 * math.sqrt(2) / 2) ** 2))
        self.assertEqual(doctor_figures.noise([1.0])["sd"], None)
        self.assertEqual([doctor_figures.suggest_timeout(x) for x in (0.1, 4.2, 30, 250)], [10, 15, 90, 900])


if __name__ == "__main__":
    unittest.main()
