"""End to end on a REAL Slurm cluster: `init --executor slurm`.

tests/slurm_cluster.py starts a single-node cluster from Debian's slurm-wlm
and munge (slurmctld, slurmd, munged as the munge user, on loopback) for
this module and stops it afterwards, even when a test fails. Every trial is
a real sbatch job; the assertions read the jobs back from the cluster
(squeue, scontrol), not from ratchet's own account of them.

Without the packages (or root to start the daemons) the module skips,
except under CI=true, where it fails: .ci/run installs them, so CI must run
it (the same rule as test_e2e_claude.py).
"""

import json
import os
import signal
import subprocess
import time
import unittest

from ratchetlib.io import exec_slurm, executor, procs
from tests import overlap, slurm_cluster
from tests.util import PY, RATCHET, RepoTest, TRIAL_PY, cli, git, make_repo, slurp, wait_for, write

MISSING = slurm_cluster.missing()
CLUSTER = None
EXPECTED_SECONDS = 60  # mostly waiting on a real Slurm cluster and its jobs: tests/parallel.py starts it first


def setUpModule():
    global CLUSTER
    if MISSING:
        return
    CLUSTER = slurm_cluster.Cluster()
    try:
        CLUSTER.start()
    except BaseException:
        CLUSTER = None
        raise
    os.environ["SLURM_CONF"] = CLUSTER.conf


def tearDownModule():
    os.environ.pop("SLURM_CONF", None)
    if CLUSTER is not None:
        CLUSTER.stop()


INIT = ["init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
        "--protect", "bench.py", "--executor", "slurm", "--decision", "mean"]


class SlurmEndToEnd(RepoTest):
    """One class, so the suite's runner (a process per class) starts one cluster.
    bench.py sleeps before printing when `slow` exists (or while the file $HOLD does), after it
    when `cancel-me` does; with $BARRIER it first waits until a second job of the same iteration has
    started (concurrent proposals)."""

    files = {"bench.py": overlap.PRELUDE +
                         "if os.path.exists('slow'):\n    time.sleep(120)\n"
                         "while os.environ.get('HOLD') and os.path.exists(os.environ['HOLD']):\n    time.sleep(0.2)\n"
                         "print('score:', open('value.txt').read().strip(), flush=True)\n"
                         "if os.path.exists('cancel-me'):\n    time.sleep(60)\n",
             "value.txt": "10\n"}

    def setUp(self):
        if MISSING:
            if os.environ.get("CI") == "true":
                self.fail(f"CI=true but no Slurm test cluster can start: {MISSING}; .ci/run installs slurm-wlm and munge")
            self.skipTest(f"no Slurm here: {MISSING}")
        self.assertIsNotNone(CLUSTER, "the test cluster did not start")
        super().setUp()
        self.addCleanup(self.cancel_leftovers)

    def cancel_leftovers(self):
        for job, name, _ in CLUSTER.jobs():
            CLUSTER.run("scancel", job)

    def reap(self, child):
        if child.poll() is None:
            child.kill()
        child.communicate()

    def run_id(self):
        with open(os.path.join(self.repo, ".ratchet", "config.json")) as f:
            return json.load(f)["run_id"]

    def job(self, job_id):
        r = CLUSTER.run("scontrol", "show", "job", "-o", job_id)
        return dict(w.split("=", 1) for w in r.stdout.split() if "=" in w)

    def run_jobs(self):
        return [j for j in CLUSTER.jobs() if j[1].startswith(f"ratchet-{self.run_id()}-")]

    def test_keep_then_revert_each_trial_a_real_job_of_the_run(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "value.txt", "12\n")
        out = self.run_ok("iterate", "--hypothesis", "bigger")
        self.assertIn("KEEP", out)
        write(self.repo, "value.txt", "11\n")
        out = self.run_ok("iterate", "--hypothesis", "smaller")
        self.assertIn("REVERT", out)
        recs = self.records()
        self.assertEqual([r["decision"] for r in recs], ["baseline", "keep", "revert"])
        for rec in recs:
            t = rec["trials"][0]
            job = t["job"]
            self.assertEqual((job["executor"], job["state"], job["node"]), ("slurm", "COMPLETED", CLUSTER.host))
            self.assertGreaterEqual(job["queued"], 0.0)
            self.assertTrue(job["name"].startswith(f"ratchet-{self.run_id()}-i{rec['iter']}-t1-"), job)
            # the cluster itself says so: the job of that name ran in the repo and completed
            seen = self.job(job["id"])
            self.assertEqual((seen["JobName"], seen["JobState"], seen["WorkDir"]),
                             (job["name"], "COMPLETED", os.path.realpath(self.repo)))
        self.assertEqual(self.state()["incumbent_score"], 12.0)
        self.assertEqual(self.run_jobs(), [])

    def test_non_zero_exit_is_a_crash_named_by_the_final_state(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        # the command itself fails: bench.py reads value.txt, so without it Python exits 1
        os.unlink(os.path.join(self.repo, "value.txt"))
        out = self.run_ok("iterate", "--hypothesis", "delete the input")
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "crash", out)
        t = rec["trials"][0]
        self.assertEqual(t["job"]["state"], "FAILED")
        self.assertIn("ended FAILED (exit 1:0", t["detail"])
        with open(os.path.join(self.repo, ".ratchet", t["report"].replace(".txt", ".err"))) as f:
            self.assertIn("FileNotFoundError", f.read(), "the job's own stderr file is the trial's")
        self.assertTrue(os.path.exists(os.path.join(self.repo, "value.txt")), "the revert restored the input")

    def test_a_job_cancelled_on_the_cluster_is_a_crash_not_a_score(self):
        # sbatch accepted it and the command printed the metric: the final state still decides
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "value.txt", "99\n")
        write(self.repo, "cancel-me", "")
        child = subprocess.Popen([PY, RATCHET, "iterate", "--hypothesis", "h"], cwd=self.repo, env=os.environ,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, child)
        self.assertTrue(wait_for(lambda: self.run_jobs() and self.run_jobs()[0][2] == "RUNNING", 30), CLUSTER.jobs())
        out_file = os.path.join(self.repo, ".ratchet", "reports", "iter-0001-trial-01.out")
        self.assertTrue(wait_for(lambda: "score: 99" in slurp(out_file), 30))
        job = self.run_jobs()[0][0]
        CLUSTER.run("scancel", job)  # an operator, a pre-emption, a node drain: not ratchet
        out, err = child.communicate(timeout=60)
        self.assertEqual(child.returncode, 0, err)
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "crash", out)
        t = rec["trials"][0]
        self.assertIsNone(t["score"])
        self.assertEqual(t["job"]["state"], "CANCELLED")
        self.assertIn(f"slurm job {job} ended CANCELLED", t["detail"])
        self.assertEqual(self.state()["incumbent_score"], 10.0)

    def test_a_controller_restart_mid_trial_is_waited_out_not_taken_for_the_end(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "value.txt", "12\n")
        hold = os.path.join(CLUSTER.dir, f"hold-{os.getpid()}")
        write(CLUSTER.dir, os.path.basename(hold), "")
        child = subprocess.Popen([PY, RATCHET, "iterate", "--hypothesis", "h"], cwd=self.repo,
                                 env={**os.environ, "HOLD": hold}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        self.addCleanup(self.reap, child)
        self.assertTrue(wait_for(lambda: [j for j in self.run_jobs() if j[2] == "RUNNING"], 30), CLUSTER.jobs())
        job = self.run_jobs()[0][0]
        CLUSTER.stop_controller()
        try:
            # a client call retries for a while (8 s with the test cluster's MessageTimeout=5), then fails:
            # once ours has, and ratchet's next poll (at most a few seconds apart) too, ratchet has seen it
            r = CLUSTER.run("scontrol", "show", "job", "-o", job)
            self.assertIn("Unable to contact", r.stderr)
            time.sleep(4)
            self.assertIsNone(child.poll(), "ratchet must not take an unreachable controller for the job's end")
        finally:
            CLUSTER.start_controller()
        self.assertTrue(wait_for(lambda: CLUSTER.run("scontrol", "ping").returncode == 0, 30))
        os.unlink(hold)  # the job goes on: prints 12 and completes
        out, err = child.communicate(timeout=90)
        self.assertEqual(child.returncode, 0, err)
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["trials"][0]["job"]["state"]), ("keep", "COMPLETED"), out + err)
        self.assertEqual(rec["trials"][0]["job"]["id"], job)

    def test_timed_out_trial_is_scancelled_and_gone_from_squeue(self):
        self.run_ok(*INIT, "--trial-timeout-seconds", "4")
        self.run_ok("baseline")
        write(self.repo, "value.txt", "11\n")
        write(self.repo, "slow", "")
        t0 = time.monotonic()
        self.run_ok("iterate", "--hypothesis", "slow")
        took = time.monotonic() - t0
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "timeout")
        t = rec["trials"][0]
        self.assertEqual(t["job"]["state"], "CANCELLED")
        self.assertLess(took, 60)
        self.assertEqual(self.run_jobs(), [], "the timed-out job is gone from squeue when iterate returns")
        self.assertEqual(self.job(t["job"]["id"])["JobState"], "CANCELLED")

    def start_slow_iterate(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "value.txt", "11\n")
        write(self.repo, "slow", "")
        child = subprocess.Popen([PY, RATCHET, "iterate", "--hypothesis", "slow"], cwd=self.repo, env=os.environ,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, child)
        self.assertTrue(wait_for(lambda: [j for j in self.run_jobs() if j[2] == "RUNNING"], 30), CLUSTER.jobs())
        return child, self.run_jobs()[0][0]

    def test_sigkilled_ratchet_then_the_next_command_cancels_its_job(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "value.txt", "11\n")
        write(self.repo, "slow", "")
        # the kill point `trial`: ratchet SIGKILLs itself once the trial's job is submitted
        p = subprocess.run([PY, RATCHET, "iterate", "--hypothesis", "slow"], cwd=self.repo,
                           env={**os.environ, "RATCHET_FAULT": "kill:trial"}, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, -signal.SIGKILL, p.stderr)
        (job,) = [j[0] for j in self.run_jobs()]  # a SIGKILLed ratchet cannot cancel its job
        out = self.run_ok("status")
        self.assertIn("cancelled 1 job(s)", out)
        self.assertEqual(self.run_jobs(), [])
        self.assertEqual(self.job(job)["JobState"], "CANCELLED")

    def test_sigterm_and_ctrl_c_cancel_the_job_before_ratchet_exits(self):
        for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
            with self.subTest(signal=sig.name):
                child, job = self.start_slow_iterate()
                child.send_signal(sig)
                child.communicate(timeout=90)
                self.assertEqual(child.returncode, code)
                self.assertEqual(self.run_jobs(), [], "cancelled and gone from squeue before ratchet exited")
                self.assertEqual(self.job(job)["JobState"], "CANCELLED")
                self.repo = make_repo(self, self.files)  # a fresh run for the next signal

    def test_stop_cancels_jobs_of_the_run(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        # a job of this run still queued or running when `stop` comes (no killed command to recover)
        r = CLUSTER.run("sbatch", "--parsable", f"--job-name=ratchet-{self.run_id()}-i1-t1-abcdef",
                        f"--output={CLUSTER.path('stray.out')}", "--wrap", "sleep 120")
        job = r.stdout.strip()
        self.assertTrue(wait_for(lambda: self.run_jobs(), 30), r.stderr)
        other = CLUSTER.run("sbatch", "--parsable", "--job-name=ratchet-someotherrun-i1-t1-abcdef",
                            f"--output={CLUSTER.path('other.out')}", "--wrap", "sleep 120").stdout.strip()
        out = self.run_ok("stop")
        self.assertIn("cancelled 1 job(s) of this run", out)
        self.assertEqual(self.run_jobs(), [])
        self.assertEqual(self.job(job)["JobState"], "CANCELLED")
        self.assertIn(self.job(other)["JobState"], ("PENDING", "RUNNING"), "another run's job is left alone")

    def test_paired_runs_record_their_node_and_the_second_is_pinned_to_the_first(self):
        init = [a for a in INIT if a not in ("--decision", "mean")]
        self.run_ok(*init, "--decision", "paired", "--calibration-runs", "2", "--max-trials", "2")
        self.run_ok("baseline")
        write(self.repo, "value.txt", "20\n")
        self.run_ok("iterate", "--hypothesis", "double")
        rec = self.records()[-1]
        trials = sorted(rec["trials"] + rec["incumbent_trials"], key=lambda t: t["trial"])
        self.assertEqual(len(trials), 4)
        for t in trials:
            self.assertEqual(t["job"]["node"], CLUSTER.host)
            if t["trial"] % 2 == 0:
                self.assertEqual(t["job"]["pinned"], CLUSTER.host)
                self.assertEqual(self.job(t["job"]["id"])["ReqNodeList"], CLUSTER.host)
            else:
                self.assertNotIn("pinned", t["job"])

    def test_loop_parallel_2_measures_the_proposals_at_once_each_as_jobs(self):
        import shlex
        import tempfile
        AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin_agent.py")
        plan_dir = tempfile.mkdtemp(prefix="ratchet-agent-")
        self.addCleanup(__import__("shutil").rmtree, plan_dir, True)
        plan = os.path.join(plan_dir, "plan.json")
        with open(plan, "w") as f:
            json.dump({"1:1": {"write": {"value.txt": "12\n"}}, "1:2": {"write": {"value.txt": "15\n"}},
                       "2:1": {"write": {"value.txt": "14\n"}}, "2:2": {"write": {"value.txt": "13\n"}}}, f)
        self.run_ok(*INIT, "--iterations", "2")
        self.run_ok("baseline")
        # each proposal's job waits (bench.py, $BARRIER) until the round's other job has started: measured one
        # after the other, the first would wait alone, exit 3 and be a crash
        barrier = os.path.join(CLUSTER.dir, f"barrier-{os.getpid()}-{self.id().rsplit('.', 1)[1][:20]}")
        os.makedirs(barrier)
        p = subprocess.run([PY, RATCHET, "loop", "--agent-command",
                            f"{shlex.quote(PY)} -S {shlex.quote(AGENT)} {shlex.quote(plan)}", "--parallel", "2"],
                           cwd=self.repo, env={**os.environ, "BARRIER": barrier}, capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("iter 1 (proposal 2): KEEP", p.stdout)
        recs = self.records()
        self.assertEqual([r["decision"] for r in recs], ["baseline", "keep", "revert"])
        one, two = recs[1], recs[2]
        self.assertEqual((one["slot"], one["avg"]), (2, 15.0))
        alt = one["alternatives"][0]
        self.assertEqual((alt["slot"], alt["decision"], alt["avg"]), (1, "revert", 12.0))
        self.assertEqual((two["slot"], two["avg"], two["alternatives"][0]["avg"]), (1, 14.0, 13.0))
        self.assertEqual(self.state()["incumbent_score"], 15.0)
        self.assertEqual(git(self.repo, "show", "HEAD:value.txt").strip(), "15")
        for rec in (one, two):
            trials = {s["slot"]: s["trials"] for s in [rec] + rec["alternatives"]}
            self.assertEqual(sorted(t["trial"] for ts in trials.values() for t in ts), [1, 2], "one report each")
            windows = []
            for t in trials[1] + trials[2]:
                seen = self.job(t["job"]["id"])
                self.assertEqual((t["job"]["state"], seen["JobState"]), ("COMPLETED", "COMPLETED"))
                self.assertIn("/.ratchet/worktrees/slot-", seen["WorkDir"], "measured in its own tree")
                windows.append((seen["StartTime"], seen["EndTime"]))
            (s1, e1), (s2, e2) = windows
            self.assertTrue(s1 <= e2 and s2 <= e1, f"the two proposals' jobs ran at the same time: {windows}")
        self.assertEqual(self.run_jobs(), [])
        self.assertEqual(git(self.repo, "status", "--porcelain"), "", "the main tree was never touched")

    def start_parallel_loop(self, plan_steps: dict, env=None):
        import shlex
        import tempfile
        agent = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin_agent.py")
        plan_dir = tempfile.mkdtemp(prefix="ratchet-agent-")
        self.addCleanup(__import__("shutil").rmtree, plan_dir, True)
        plan = os.path.join(plan_dir, "plan.json")
        with open(plan, "w") as f:
            json.dump(plan_steps, f)
        self.run_ok(*INIT, "--iterations", "1")
        self.run_ok("baseline")
        argv = [PY, RATCHET, "loop", "--agent-command", f"{shlex.quote(PY)} -S {shlex.quote(agent)} {shlex.quote(plan)}",
                "--parallel", "2"]
        return subprocess.Popen(argv, cwd=self.repo, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    SLOW_ROUND = {"1:1": {"write": {"value.txt": "12\n", "slow": ""}}, "1:2": {"write": {"value.txt": "15\n", "slow": ""}}}

    def test_loop_parallel_sigterm_and_ctrl_c_cancel_every_job_of_the_round(self):
        for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
            with self.subTest(signal=sig.name):
                child = self.start_parallel_loop(self.SLOW_ROUND)
                self.addCleanup(self.reap, child)
                running = lambda: [j for j in self.run_jobs() if j[2] == "RUNNING"]  # noqa: E731
                self.assertTrue(wait_for(lambda: len(running()) == 2, 60), CLUSTER.jobs())
                jobs = [j[0] for j in running()]
                child.send_signal(sig)
                out, err = child.communicate(timeout=120)
                self.assertEqual(child.returncode, code, out + err)
                self.assertEqual(self.run_jobs(), [], "both jobs cancelled and gone before ratchet exited")
                self.assertEqual([self.job(j)["JobState"] for j in jobs], ["CANCELLED", "CANCELLED"])
                rec = self.records()[-1]
                self.assertEqual((rec["iter"], rec["decision"]), (1, "interrupted"), out + err)
                self.assertEqual(self.state()["incumbent_score"], 10.0)
                self.assertEqual(git(self.repo, "status", "--porcelain"), "")
                self.repo = make_repo(self, self.files)

    def test_loop_parallel_sigkilled_mid_round_then_the_next_command_cancels_the_jobs(self):
        # the kill point `trial`: the first proposal's thread SIGKILLs ratchet once its job is submitted
        child = self.start_parallel_loop(self.SLOW_ROUND, {"RATCHET_FAULT": "kill:trial"})
        self.addCleanup(self.reap, child)
        out, err = child.communicate(timeout=120)
        self.assertEqual(child.returncode, -signal.SIGKILL, out + err)
        # the other lane's sbatch outlives the kill and may create its job now: count once it is done
        submitting = lambda: [p for p in procs.find_marked(executor.prefix(self.run_id()), prefix=True)  # noqa: E731
                              if exec_slurm.is_submitter(procs.argv_of(p))]
        self.assertTrue(wait_for(lambda: not submitting(), 30))
        jobs = [j[0] for j in self.run_jobs()]
        self.assertTrue(jobs, "a SIGKILLed ratchet cannot cancel its jobs")
        self.assertIn(f"cancelled {len(jobs)} job(s)", self.run_ok("status"))
        self.assertEqual(self.run_jobs(), [])
        self.assertEqual({self.job(j)["JobState"] for j in jobs}, {"CANCELLED"})
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")

    def test_a_candidate_avoids_the_nodes_others_hold_unless_no_other_node_can_take_it(self):
        # one node here: sbatch refuses `--exclude=<it>`, so the job is submitted again without and runs
        from ratchetlib.io import exec_slurm
        out, err = os.path.join(self.repo, "o.txt"), os.path.join(self.repo, "e.txt")
        seen = []
        got = exec_slurm.run([], "echo ran", self.repo, out, err, 60, dict(os.environ), None,
                             f"ratchet-avoid-{os.getpid()}", None, {}, avoid=[CLUSTER.host], placed=seen.append)
        self.assertEqual((got["state"], got["node"], got["avoided"]), ("COMPLETED", CLUSTER.host, []))
        self.assertEqual(self.job(got["job"])["ExcNodeList"], "(null)")
        self.assertIn(CLUSTER.host, seen, "placed() was told the node")
        got = exec_slurm.run([], "echo ran", self.repo, out, err, 60, dict(os.environ), None,
                             f"ratchet-avoid-{os.getpid()}", None, {}, avoid=["othernode"])
        self.assertEqual(got["state"], "COMPLETED")

    def test_doctor_runs_a_test_job_through_the_cluster(self):
        code, out, err = cli("doctor", *INIT[1:], "--runs", "2", cwd=self.repo)
        self.assertEqual(code, 0, out + err)
        line = next(ln for ln in out.splitlines() if "executor" in ln)
        self.assertIn("a 1 s test job", line)
        self.assertIn(f"ran on {CLUSTER.host} and reported back", line)
        self.assertEqual([ln for ln in out.splitlines() if ln.startswith("FAIL")], [])
        self.assertEqual(git(self.repo, "status", "--porcelain", "--untracked-files=all"), "", "doctor left nothing")

    def test_doctor_says_the_fix_when_the_test_job_is_refused(self):
        code, out, err = cli("doctor", *INIT[1:], "--executor-options", "--partition=nosuchpartition", "--runs", "1",
                             cwd=self.repo)
        self.assertEqual(code, 2, out + err)
        self.assertIn("the test job was not accepted: sbatch refused the job", out)
        self.assertIn("invalid partition", out.lower(), "sbatch's own reason is shown")
        self.assertIn("fix: correct --executor-options", out)


if __name__ == "__main__":
    unittest.main()
