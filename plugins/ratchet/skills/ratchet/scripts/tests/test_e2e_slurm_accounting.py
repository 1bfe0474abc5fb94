"""End to end on a REAL Slurm cluster that keeps accounting (slurmdbd on
MariaDB, tests/slurm_cluster.py): the final state of each trial's job is
read back with `sacct`, the path a production cluster takes. A job that
fails is a crash named by what sacct says, although `sbatch` itself
returned a job id and squeue showed it running.

Under CI=true a missing package or daemon fails the module (.ci/run installs
slurmdbd, slurm-wlm-mysql-plugin and mariadb-server); elsewhere it skips.
"""

import os
import unittest

from tests import slurm_cluster
from tests.test_e2e_slurm import INIT
from tests.util import RepoTest, write

MISSING = slurm_cluster.missing(accounting=True)
CLUSTER = None


def setUpModule():
    global CLUSTER
    if MISSING:
        return
    CLUSTER = slurm_cluster.Cluster(accounting=True)
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


class SlurmAccountingEndToEnd(RepoTest):
    files = {"bench.py": "print('score:', open('value.txt').read().strip())\n", "value.txt": "10\n"}

    def setUp(self):
        if MISSING:
            if os.environ.get("CI") == "true":
                self.fail(f"CI=true but no Slurm cluster with accounting can start: {MISSING}")
            self.skipTest(f"no Slurm accounting here: {MISSING}")
        self.assertIsNotNone(CLUSTER, "the test cluster did not start")
        super().setUp()

    def sacct(self, job_id):
        r = CLUSTER.run("sacct", "--noheader", "--parsable2", "--allocations", "-j", job_id,
                        "--format=State,ExitCode")
        return r.stdout.strip()

    def test_keep_revert_and_a_failed_job_all_read_from_sacct(self):
        self.run_ok(*INIT)
        self.run_ok("baseline")
        write(self.repo, "value.txt", "12\n")
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))
        os.unlink(os.path.join(self.repo, "value.txt"))  # bench.py now exits 1 inside its job
        self.run_ok("iterate", "--hypothesis", "delete the input")
        recs = self.records()
        self.assertEqual([r["decision"] for r in recs], ["baseline", "keep", "crash"])
        for rec in recs[:2]:
            job = rec["trials"][0]["job"]
            self.assertEqual((job["state"], self.sacct(job["id"])), ("COMPLETED", "COMPLETED|0:0"))
        t = recs[2]["trials"][0]
        self.assertEqual(t["job"]["state"], "FAILED")
        self.assertIn("ended FAILED (exit 1:0, read from sacct)", t["detail"])
        self.assertEqual(self.sacct(t["job"]["id"]), "FAILED|1:0", "the cluster's own accounting says so")
        self.assertTrue(os.path.exists(os.path.join(self.repo, "value.txt")), "the revert restored the input")


if __name__ == "__main__":
    unittest.main()
