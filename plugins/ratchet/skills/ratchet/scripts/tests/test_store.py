"""The .ratchet/ store: atomic writes, records, repair, archive, lock, formats."""

import json
import os
import shutil
import tempfile
import unittest

from ratchetlib.io import store, store_lock
from ratchetlib.core.state import RunState
from ratchetlib.core.errors import UsageError


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.repo = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.repo, True)
        self.s = store.Store(self.repo)
        self.s.ensure_dirs()

    def test_atomic_write_leaves_no_temp_files(self):
        p = self.s.path("x.json")
        store.write_json(p, {"a": 1})
        store.write_json(p, {"a": 2})
        self.assertEqual(store.read_json(p, "x")["a"], 2)
        self.assertEqual([n for n in os.listdir(self.s.root) if n.startswith(".tmp")], [])

    def test_records_ignore_torn_line_and_repair_cuts_it(self):
        for i in range(5):
            self.s.append_record({"iter": i})
        with open(self.s.path("results.jsonl"), "ab") as f:
            f.write(b'{"iter": 5, "dec')
        self.assertEqual([r["iter"] for r in self.s.records()], [0, 1, 2, 3, 4])
        self.assertEqual([r["iter"] for r in self.s.records(last=2)], [3, 4])
        self.assertIn("torn", self.s.repair())
        self.assertIsNone(self.s.repair())
        self.s.append_record({"iter": 5})
        self.assertEqual([r["iter"] for r in self.s.records()], [0, 1, 2, 3, 4, 5])

    def test_tail_read_of_a_long_history(self):
        for i in range(3000):
            self.s.append_record({"iter": i, "pad": "x" * 100})
        self.assertEqual([r["iter"] for r in self.s.records(last=3)], [2997, 2998, 2999])

    def test_state_round_trip_and_format_checks(self):
        self.s.write_state(RunState(iteration=3))
        self.assertEqual(self.s.read_state().iteration, 3)
        with open(self.s.path("state.json"), "w") as f:
            f.write('{"format": 7}')
        with self.assertRaises(UsageError):
            self.s.read_state()
        with open(self.s.path("state.json"), "w") as f:
            f.write('{"iteration": 3')
        with self.assertRaises(UsageError) as cm:
            self.s.read_state()
        self.assertIn("corrupt", str(cm.exception))

    def test_archive_moves_the_run(self):
        self.s.write_config({"run_id": "r1"})
        self.s.append_record({"iter": 0})
        self.assertEqual(self.s.archive(), "r1")
        self.assertTrue(os.path.exists(self.s.path("runs", "r1", "results.jsonl")))
        self.assertFalse(os.path.exists(self.s.path("config.json")))

    def test_lock(self):
        with store_lock.Lock(self.s, "a"):
            with self.assertRaises(UsageError):
                with store_lock.Lock(self.s, "b"):
                    pass
        self.assertFalse(os.path.exists(self.s.path("lock")))
        with open(self.s.path("lock"), "w") as f:
            json.dump({"pid": 2 ** 22 + 999, "host": __import__("socket").gethostname()}, f)
        with store_lock.Lock(self.s, "c"):
            self.assertEqual(self.s.taken_over["pid"], 2 ** 22 + 999)


if __name__ == "__main__":
    unittest.main()
