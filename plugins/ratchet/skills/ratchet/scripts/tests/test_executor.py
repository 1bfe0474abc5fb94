"""The executor seam's pure parts (the real engines are in test_e2e_slurm.py and test_e2e_ray.py)."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from ratchetlib.core import config as configmod
from ratchetlib.io import exec_ray, exec_slurm, executor
from ratchetlib.core.errors import UsageError
from tests.util import INIT, RepoTest


class Lanes(unittest.TestCase):
    """Concurrent candidates (loop --parallel on a cluster): which node a lane's next job pins or avoids,
    and the wait every remote executor polls with."""

    def in_lane(self, key, fn):
        import threading
        got = []

        def body():
            with executor.lane(key):
                try:
                    got.append(fn())
                except executor.Halted as e:
                    got.append(e)
        t = threading.Thread(target=body)
        t.start()
        t.join()
        return got[0]

    def test_a_lane_avoids_the_nodes_other_lanes_hold_then_pins_to_its_own(self):
        self.addCleanup(executor._LANES.clear)
        executor._LANES.update({"a": "n1", "b": None, "c": "n3"})
        self.assertEqual(self.in_lane("new", lambda: executor._lane_node("pair-pin")), (None, ["n1", "n3"]))
        def placed_then_next():
            executor._hold("new", "n2")
            executor._hold("new", "n9")  # the first placement is kept
            return executor._lane_node(None)
        self.assertEqual(self.in_lane("new", placed_then_next), ("n2", []))
        self.assertNotIn("new", executor._LANES, "a lane is forgotten when its candidate is measured")
        self.assertEqual(executor._lane_node("pair-pin"), ("pair-pin", []), "outside a lane: the pair's pin")

    def test_a_halted_lane_submits_nothing(self):
        self.addCleanup(executor.halt, False)
        executor.halt()
        self.assertIsInstance(self.in_lane("x", lambda: executor._lane_node(None)), executor.Halted)
        self.assertEqual(executor._lane_node(None), (None, []), "a trial outside a round is not halted")

    def test_wait_polls_until_done_or_the_deadline_ticking_progress(self):
        import time

        class Beat:
            interval = 0.05

            def __init__(self):
                self.ticks, self.ended = [], 0

            def tick(self, elapsed):
                self.ticks.append(elapsed)

            def done(self):
                self.ended += 1
        calls = []
        t0 = time.monotonic()
        self.assertTrue(executor.wait(lambda: calls.append(1) or len(calls) >= 4, t0 + 10, None, t0, first=0.01))
        self.assertEqual(len(calls), 4)
        beat = Beat()
        self.assertFalse(executor.wait(lambda: False, time.monotonic() + 0.3, beat, time.monotonic(), first=0.02,
                                       most=0.05))
        self.assertTrue(beat.ticks, "the heartbeat ticked while waiting")
        self.assertEqual(beat.ended, 1, "and was told the wait ended")


class Options(unittest.TestCase):
    def test_split_like_a_shell_line(self):
        self.assertEqual(executor.options("slurm", "--partition=gpu --comment='two words'"),
                         ["--partition=gpu", "--comment=two words"])

    def test_owned_slurm_options_are_refused_long_short_and_glued(self):
        for opt in ("--job-name=x", "-J", "-Jx", "--output=o", "-o", "--wait", "--parsable", "--chdir=/", "--array=1-3"):
            with self.subTest(opt=opt), self.assertRaises(UsageError):
                executor.options("slurm", opt)
        executor.options("slurm", "--gres=gpu:1 -p gpu --time=1:00:00")  # the user's own choices pass

    def test_ray_options(self):
        for opt in ("--submission-id=x", "--working-dir=/", "--no-wait", "--runtime-env=env.yaml",
                    "--entrypoint-resources={}", "--address=ray://h:10001", "--runtime-env-json=[1]",
                    "--runtime-env-json={bad", "--headers={}", "--verify=False", "-v", "extra",
                    "--entrypoint-memory=1.5", "--entrypoint-num-cpus=two", "--metadata-json={\"a\": 1}",
                    "--entrypoint-num-gpus", "--runtime-env-json={\"working_dir\": \"/x\"}",
                    "--runtime-env-json={\"pip\": \"requirements.txt\"}",
                    "--runtime-env-json={\"py_modules\": [\"./mod\"]}",
                    "--runtime-env-json={\"conda\": \"env.yaml\"}",
                    "--runtime-env-json={\"env_vars\": {\"A\": 1}}", "--runtime-env-json={\"excludes\": \"x\"}"):
            with self.subTest(opt=opt), self.assertRaises(UsageError):
                executor.options("ray", opt)
        executor.options("ray", "--address=http://127.0.0.1:8265 --entrypoint-num-gpus=1")

    def test_ray_options_become_the_jobs_api_fields(self):
        opts = executor.options("ray", "--address http://h:1 --entrypoint-num-cpus=0.5 --entrypoint-num-gpus 1 "
                                       "--entrypoint-memory=1000 --metadata-json='{\"who\": \"me\"}' "
                                       "--entrypoint-label-selector='{\"zone\": \"a\"}' "
                                       "--runtime-env-json='{\"pip\": [\"x\"], \"py_modules\": [\"s3://b/m.zip\"]}'")
        self.assertEqual(exec_ray.translate(opts),
                         {"address": "http://h:1", "entrypoint_num_cpus": 0.5, "entrypoint_num_gpus": 1.0,
                          "entrypoint_memory": 1000, "metadata": {"who": "me"},
                          "entrypoint_label_selector": {"zone": "a"},
                          "runtime_env": {"pip": ["x"], "py_modules": ["s3://b/m.zip"]}})
        self.assertEqual(exec_ray.translate([]), {})

    def test_ray_runtime_env_keeps_the_users_and_adds_ratchets(self):
        env = exec_ray._runtime_env({"pip": ["x"], "env_vars": {"A": "1"}, "excludes": ["data/"]},
                                    {"RATCHET_TRIAL_ID": "t", "SEED": "7"})
        self.assertEqual(env, {"pip": ["x"], "env_vars": {"A": "1", "RATCHET_TRIAL_ID": "t", "SEED": "7"},
                               "excludes": ["data/", ".ratchet/", ".git/"]})
        self.assertEqual(exec_ray.address(["--address", "http://h:1/"]), "http://h:1")

    def test_ray_needs_no_command_on_path(self):
        self.assertEqual(exec_ray.COMMANDS, ())
        self.assertEqual(executor.missing_commands("ray"), [])

    def test_slurm_exit_code(self):
        self.assertEqual([exec_slurm.exit_code(x) for x in ("0:0", "3:0", "0:15", "0:9", "?")], [0, 3, 143, 137, None])

    def test_job_names_carry_the_run_id_and_never_repeat(self):
        a, b = executor.job_name("20261206-1-ab", 3, 2), executor.job_name("20261206-1-ab", 3, 2)
        self.assertTrue(a.startswith(executor.prefix("20261206-1-ab") + "i3-t2-"))
        self.assertNotEqual(a, b)


class Config(RepoTest):
    def test_a_config_without_the_keys_loads_as_local(self):
        self.run_ok(*INIT)
        with open(os.path.join(self.repo, ".ratchet", "config.json")) as f:
            stored = json.load(f)
        self.assertEqual((stored["executor"], stored["executor_options"]), ("local", ""))
        old = {k: v for k, v in stored.items() if not k.startswith("executor")}
        cfg = configmod.from_dict(old)
        self.assertEqual((cfg.executor, cfg.executor_options), ("local", ""))

    def test_local_run_goes_through_the_seam_unchanged(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        t = self.records()[0]["trials"][0]
        self.assertNotIn("job", t)
        self.assertEqual(t["status"], "ok")


if __name__ == "__main__":
    unittest.main()


class InFlightSubmitters(unittest.TestCase):
    """cancel_run waits for a killed ratchet's sbatch still submitting (it may create a job after
    the listing), and leaves the run's other marked processes (a job's own, on a one-node cluster)
    to the scheduler."""

    def setUp(self):
        self.bin = tempfile.mkdtemp(prefix="ratchet-fake-sbatch-")
        self.addCleanup(shutil.rmtree, self.bin, True)
        self.sbatch = os.path.join(self.bin, "sbatch")  # a binary named sbatch (as the real one is): sleep
        shutil.copy(shutil.which("sleep"), self.sbatch)

    def start(self, argv, run_id):
        env = {**os.environ, "RATCHET_TRIAL_ID": executor.prefix(run_id) + "i1-t1-abc123"}
        p = subprocess.Popen(argv, env=env)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        return p

    def test_waits_for_the_runs_submitter_and_not_for_a_jobs_process(self):
        sbatch = self.start([self.sbatch, "0.6"], "20261207-000000-aaaa")
        job_proc = self.start(["sleep", "30"], "20261207-000000-aaaa")
        other_run = self.start([self.sbatch, "30"], "20261207-000000-bbbb")
        time.sleep(0.1)
        t0 = time.monotonic()
        executor._await_submitters(executor.ENGINES["slurm"], "20261207-000000-aaaa")
        self.assertIsNotNone(sbatch.poll(), "returned only once the run's sbatch had ended")
        self.assertGreater(time.monotonic() - t0, 0.2)
        self.assertIsNone(job_proc.poll(), "a job's own process is the scheduler's to end")
        self.assertIsNone(other_run.poll(), "another run's submission is not this run's")

    def test_engines_recognise_their_own_submit_command(self):
        self.assertTrue(exec_slurm.is_submitter(["/usr/bin/sbatch", "--parsable"]))
        self.assertFalse(exec_slurm.is_submitter(["sh", "-c", "sbatch"]))
        # a ray trial is an HTTP request from ratchet itself: no submit process of its own to wait for
        self.assertFalse(exec_ray.is_submitter(["/venv/bin/python3", "/venv/bin/ray", "job", "submit", "--no-wait"]))
        self.assertFalse(exec_ray.is_submitter([]))
