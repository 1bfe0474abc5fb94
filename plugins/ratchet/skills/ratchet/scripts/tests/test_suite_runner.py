"""The suite's own runner (tests/parallel.py): the order units start in, and
the durations it keeps for the next run's order."""

import importlib
import json
import os
import tempfile
import unittest
from unittest import mock

from tests import parallel


class OrderTest(unittest.TestCase):
    FOUND = {"tests.test_e2e_ray.RayTest": (["a"], True), "tests.test_stats.StudentTTest": (["b"], False),
             "tests.test_report.AxisTest": (["c"], False)}

    def order(self, known):
        for cls in self.FOUND:  # plan reads each class's module, as discovery leaves them imported
            importlib.import_module(cls.rsplit(".", 1)[0])
        return [name for name, _, _ in parallel.plan(self.FOUND, known)]

    def test_a_first_run_starts_the_modules_that_say_they_wait_longest(self):
        self.assertEqual(self.order({})[0], "tests.test_e2e_ray.RayTest")  # EXPECTED_SECONDS

    def test_saved_durations_come_before_the_modules_own_estimate(self):
        known = {"tests.test_e2e_ray.RayTest": 1.0, "tests.test_stats.StudentTTest": 500.0}
        self.assertEqual(self.order(known)[:2], ["tests.test_stats.StudentTTest", "tests.test_e2e_ray.RayTest"])


class SavedTimesTest(unittest.TestCase):
    def setUp(self):
        fd, self.path = tempfile.mkstemp()
        os.close(fd)
        self.addCleanup(os.remove, self.path)
        with open(self.path, "w") as f:
            json.dump({"tests.test_e2e_ray.RayTest": 120.0, "tests.test_stats.StudentTTest": 2.0}, f)

    def saved(self, times, skipped):
        with mock.patch.object(parallel, "TIMES", self.path):
            parallel._save(times, skipped)
        with open(self.path) as f:
            return json.load(f)

    def test_a_run_that_skipped_tests_never_lowers_a_duration(self):
        got = self.saved({"tests.test_e2e_ray.RayTest": 0.3, "tests.test_stats.StudentTTest": 1.0},
                         {"tests.test_e2e_ray.RayTest"})
        self.assertEqual(got, {"tests.test_e2e_ray.RayTest": 120.0, "tests.test_stats.StudentTTest": 1.0})

    def test_a_full_run_saves_what_it_took(self):
        got = self.saved({"tests.test_e2e_ray.RayTest": 90.0}, set())
        self.assertEqual(got["tests.test_e2e_ray.RayTest"], 90.0)


if __name__ == "__main__":
    unittest.main()
