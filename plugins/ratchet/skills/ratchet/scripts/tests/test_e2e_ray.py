"""End to end on a REAL local Ray head: `init --executor ray`.

tests/ray_head.py starts `ray start --head --num-cpus=1` (dashboard on
127.0.0.1, usage stats off) from the test-only venv for this module and
stops it afterwards. Every trial is a real job submitted over Ray's Jobs
REST API (no `ray` CLI); the assertions read the jobs back from Ray's Jobs
API, not from ratchet's account.

Without ray the module skips, except under CI=true, where it fails
(.ci/run installs it), like test_e2e_claude.py.
"""

import json
import os
import subprocess
import time
import unittest
import urllib.request

from tests import overlap, ray_head
from tests.util import PY, RATCHET, RepoTest, cli, wait_for, write

MISSING = ray_head.missing()
HEAD = None
EXPECTED_SECONDS = 120  # mostly waiting on a real Ray head and its jobs: tests/parallel.py starts it first
_SAVED = {}


def setUpModule():
    global HEAD
    if MISSING:
        return
    HEAD = ray_head.Head().start()
    for key in ("PATH", "RAY_ADDRESS", "RAY_USAGE_STATS_ENABLED"):
        _SAVED[key] = os.environ.get(key)
    os.environ.update(PATH=HEAD.env["PATH"], RAY_ADDRESS=HEAD.address, RAY_USAGE_STATS_ENABLED="0")


def tearDownModule():
    for key, value in _SAVED.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if HEAD is not None:
        HEAD.stop()


INIT = ["init", "--run-command", "python3 bench.py", "--direction", "max", "--metric-name", "score",
        "--protect", "bench.py", "--executor", "ray", "--decision", "mean"]


class RayTest(RepoTest):
    # with $BARRIER a job first waits until another job of its iteration has started (tests/overlap.py)
    files = {"bench.py": overlap.PRELUDE +
                         "if os.path.exists('slow'):\n    time.sleep(120)\n"
                         "print('score:', open('value.txt').read().strip())\n"
                         "print('seen trial id', os.environ.get('RATCHET_TRIAL_ID'))\n",
             "value.txt": "10\n"}

    def setUp(self):
        if MISSING:
            if os.environ.get("CI") == "true":
                self.fail(f"CI=true but no Ray head can start: {MISSING}")
            self.skipTest(MISSING)
        self.assertIsNotNone(HEAD, "the Ray head did not start")
        super().setUp()

    def ray_job(self, job_id):
        with urllib.request.urlopen(f"{HEAD.address}/api/jobs/{job_id}", timeout=10) as r:
            return json.loads(r.read())

    def test_keep_then_revert_each_trial_a_ray_job(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "value.txt", "12\n")
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))
        write(self.repo, "value.txt", "11\n")
        self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "smaller"))
        recs = self.records()
        self.assertEqual([r["decision"] for r in recs], ["baseline", "keep", "revert"])
        for rec, want in zip(recs, ("10", "12", "11")):
            t = rec["trials"][0]
            self.assertEqual((t["job"]["executor"], t["job"]["state"]), ("ray", "SUCCEEDED"))
            seen = self.ray_job(t["job"]["id"])
            self.assertEqual(seen["status"], "SUCCEEDED")
            self.assertEqual(seen["runtime_env"]["env_vars"]["RATCHET_TRIAL_ID"], t["job"]["name"])
            with open(os.path.join(self.repo, ".ratchet", t["report"])) as f:
                log = f.read()
            self.assertIn(f"score: {want}", log, "the job ran the tree's files, uploaded by --working-dir .")
            self.assertIn(f"seen trial id {t['job']['name']}", log)
        self.assertEqual(self.state()["incumbent_score"], 12.0)

    def test_non_zero_exit_is_a_crash_named_by_the_status(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        os.unlink(os.path.join(self.repo, "value.txt"))
        self.run_ok("iterate", "--hypothesis", "no input")
        t = self.records()[-1]["trials"][0]
        self.assertEqual(self.records()[-1]["decision"], "crash")
        self.assertEqual(t["job"]["state"], "FAILED")
        self.assertIn("ended FAILED (exit 1", t["detail"])
        self.assertEqual(self.ray_job(t["job"]["id"])["status"], "FAILED")

    def test_timed_out_trial_is_stopped_on_the_cluster(self):
        self.run_ok(*INIT, "--trial-timeout-seconds", "15")
        self.run_ok("baseline")
        write(self.repo, "value.txt", "11\n")
        write(self.repo, "slow", "")
        t0 = time.monotonic()
        self.run_ok("iterate", "--hypothesis", "slow")
        self.assertLess(time.monotonic() - t0, 90)
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "timeout")
        t = rec["trials"][0]
        self.assertEqual(t["job"]["state"], "STOPPED")
        self.assertEqual(self.ray_job(t["job"]["id"])["status"], "STOPPED", "ray job stop ended it")

    def test_paired_second_run_is_pinned_to_the_first_runs_node(self):
        init = [a for a in INIT if a not in ("--decision", "mean")]
        self.run_ok(*init, "--decision", "paired", "--calibration-runs", "2", "--max-trials", "2")
        self.run_ok("baseline")
        write(self.repo, "value.txt", "20\n")
        self.run_ok("iterate", "--hypothesis", "double")
        rec = self.records()[-1]
        trials = sorted(rec["trials"] + rec["incumbent_trials"], key=lambda t: t["trial"])
        self.assertEqual(len(trials), 4)
        for t in trials:
            seen = self.ray_job(t["job"]["id"])
            self.assertEqual(t["job"]["node"], seen["driver_agent_http_address"].split("//")[1].rsplit(":", 1)[0])
            if t["trial"] % 2 == 0:
                self.assertEqual(t["job"]["pinned"], trials[t["trial"] - 2]["job"]["node"])
            else:
                self.assertNotIn("pinned", t["job"])

    def test_the_pin_is_a_real_constraint_a_job_pinned_to_an_absent_node_never_starts(self):
        # Ray's REST API does not show entrypoint resources; this shows they reach the scheduler:
        # pinned to a node the cluster lacks (a resource name, nothing is contacted), it never starts. Ray 2.60
        # cannot stop a job still pending for its entrypoint's resources either: ratchet says so (`left`,
        # which the engine writes to UNCLEAN) instead of claiming it stopped
        from ratchetlib.io import exec_ray
        out, err = os.path.join(self.repo, "o.txt"), os.path.join(self.repo, "e.txt")
        got = exec_ray.run([f"--address={HEAD.address}"], "echo ran", self.repo, out, err, 8, dict(os.environ),
                           None, f"ratchet-pin-{os.getpid()}", "203.0.113.9", {})
        self.assertTrue(got["timed_out"])
        with open(out) as f:
            self.assertNotIn("ran", f.read())
        self.assertEqual(self.ray_job(got["job"])["status"], "PENDING")
        self.assertEqual(got["left"], [got["job"]])

    def test_a_job_ray_cannot_stop_blocks_trials_in_unclean_until_it_is_gone(self):
        # one GPU asked of a head that has none: the entrypoint never starts, and Ray cannot stop it
        self.run_ok(*INIT, "--executor-options", "--entrypoint-num-gpus=1", "--trial-timeout-seconds", "3")
        code, out, err = cli("baseline", cwd=self.repo)
        self.assertEqual(code, 1, out + err)
        self.assertIn("1 job(s) are still listed after the cancel (job ray:", err)
        with open(os.path.join(self.repo, ".ratchet", "UNCLEAN")) as f:
            marker = json.load(f)
        (entry,) = marker["processes"]
        job = entry["job"].split(":", 1)[1]
        self.assertEqual((entry["job"], entry["where"]), (f"ray:{job}", HEAD.address))
        self.assertEqual(self.ray_job(job)["status"], "PENDING")
        code, out, err = cli("clean", cwd=self.repo)
        self.assertEqual(code, 2, out + err)
        self.assertIn(f"ray:{job}", err)
        self.assertIn("no trial runs until they are gone", cli("baseline", cwd=self.repo)[2])

    def run_jobs(self, status=("PENDING", "RUNNING")):
        with open(os.path.join(self.repo, ".ratchet", "config.json")) as f:
            prefix = f"ratchet-{json.load(f)['run_id']}-"
        with urllib.request.urlopen(f"{HEAD.address}/api/jobs/", timeout=10) as r:
            jobs = json.loads(r.read())
        return [j["submission_id"] for j in jobs
                if (j.get("submission_id") or "").startswith(prefix) and j["status"] in status]

    def test_sigkilled_ratchet_then_the_next_command_stops_its_job(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "value.txt", "11\n")
        write(self.repo, "slow", "")
        p = subprocess.run([PY, RATCHET, "iterate", "--hypothesis", "slow"], cwd=self.repo,
                           env={**os.environ, "RATCHET_FAULT": "kill:trial"}, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, -9, p.stderr)  # the kill point `trial`: right after the submit
        (job,) = self.run_jobs()
        self.assertTrue(wait_for(lambda: self.ray_job(job)["status"] == "RUNNING", 60), "the job runs on alone")
        self.assertIn("cancelled 1 job(s)", self.run_ok("status"))
        self.assertEqual(self.run_jobs(), [])
        self.assertEqual(self.ray_job(job)["status"], "STOPPED")

    def test_loop_parallel_2_measures_the_proposals_at_once_each_as_ray_jobs(self):
        import shlex
        import tempfile
        agent = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin_agent.py")
        plan_dir = tempfile.mkdtemp(prefix="ratchet-agent-")
        self.addCleanup(__import__("shutil").rmtree, plan_dir, True)
        plan = os.path.join(plan_dir, "plan.json")
        with open(plan, "w") as f:
            json.dump({"1:1": {"write": {"value.txt": "12\n"}}, "1:2": {"write": {"value.txt": "15\n"}},
                       "2:1": {"write": {"value.txt": "14\n"}}, "2:2": {"write": {"value.txt": "13\n"}}}, f)
        barrier = tempfile.mkdtemp(prefix="ratchet-barrier-")
        self.addCleanup(__import__("shutil").rmtree, barrier, True)
        # a Ray job gets no environment from ratchet's shell: the barrier reaches it as the user's runtime env
        self.run_ok(*INIT, "--iterations", "2", "--executor-options",
                    "--runtime-env-json=" + shlex.quote(json.dumps({"env_vars": {"BARRIER": barrier}})))
        self.run_ok("baseline")
        out = self.run_ok("loop", "--agent-command", f"{shlex.quote(PY)} -S {shlex.quote(agent)} {shlex.quote(plan)}",
                          "--parallel", "2")
        self.assertIn("iter 1 (proposal 2): KEEP", out)
        recs = self.records()
        self.assertEqual([r["decision"] for r in recs], ["baseline", "keep", "revert"], out)
        one, two = recs[1], recs[2]
        self.assertEqual((one["slot"], one["avg"], one["alternatives"][0]["decision"], one["alternatives"][0]["avg"]),
                         (2, 15.0, "revert", 12.0))
        self.assertEqual((two["slot"], two["avg"], two["alternatives"][0]["avg"]), (1, 14.0, 13.0))
        self.assertEqual(self.state()["incumbent_score"], 15.0)
        for rec in (one, two):
            seen = [self.ray_job(t["job"]["id"]) for s in [rec] + rec["alternatives"] for t in s["trials"]]
            self.assertEqual([j["status"] for j in seen], ["SUCCEEDED", "SUCCEEDED"])
            (s1, e1), (s2, e2) = [(j["start_time"], j["end_time"]) for j in seen]
            self.assertTrue(s1 <= e2 and s2 <= e1, f"the proposals' jobs ran at the same time: {seen}")
        self.assertEqual(self.run_jobs(), [])

    def test_doctor_runs_a_test_job_through_ray(self):
        code, out, err = cli("doctor", *INIT[1:], "--runs", "1", cwd=self.repo)
        self.assertEqual(code, 0, out + err)
        self.assertIn("a 1 s test job", next(ln for ln in out.splitlines() if "executor" in ln))


if __name__ == "__main__":
    unittest.main()
