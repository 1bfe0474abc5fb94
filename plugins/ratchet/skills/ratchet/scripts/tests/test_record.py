"""core/record: the frozen value classes that replace dataclasses (issue 18:
`import dataclasses` and building the 60-field Config cost ~11 ms of every
verb). What ratchet relied on from a frozen dataclass holds here."""

import copy
import os
import pickle
import subprocess
import sys
import unittest

from ratchetlib.core import record
from ratchetlib.core.config import Config, Margin
from ratchetlib.core.state import RunState
from tests.util import RATCHET, RepoTest


class Point(record.Record):
    x: int
    y: int = 0
    tags: list = record.Factory(list)


class Point3(Point):
    z: int = 7


class Box(record.Record, frozen=False):
    inner: Point
    items: tuple = ()


class RecordTest(unittest.TestCase):
    def test_construction_by_keyword_or_position_with_defaults(self):
        self.assertEqual(Point(1), Point(x=1, y=0, tags=[]))
        self.assertEqual(Point(1, 2).y, 2)
        self.assertEqual(record.fields(Point), ("x", "y", "tags"))
        self.assertEqual(record.fields(Point3(1)), ("x", "y", "tags", "z"))  # a subclass's fields after its base's
        self.assertEqual(Point3(1, z=3).z, 3)

    def test_a_factory_default_is_fresh_per_instance(self):
        a, b = Point(1), Point(2)
        a.tags.append("t")
        self.assertEqual(b.tags, [])
        self.assertFalse(hasattr(Point, "tags"))  # no shared list on the class

    def test_wrong_fields_are_a_type_error(self):
        for build in (lambda: Point(), lambda: Point(1, nope=2), lambda: Point(1, x=2), lambda: Point(1, 2, [], 4)):
            with self.assertRaises(TypeError):
                build()

    def test_frozen_equal_hashable_and_readable(self):
        p = Point(1, 2, ())
        with self.assertRaises(record.FrozenError):
            p.x = 5
        with self.assertRaises(AttributeError):
            del p.y
        self.assertEqual(p, Point(1, 2, ()))
        self.assertNotEqual(p, Point3(1, 2, ()))  # another class is never equal
        self.assertEqual(hash(p), hash(Point(1, 2, ())))
        self.assertEqual(len({Margin(1.0, True), Margin(1.0, True)}), 1)
        self.assertEqual(repr(p), "Point(x=1, y=2, tags=())")

    def test_an_unfrozen_record_can_change_and_is_not_hashable(self):
        b = Box(Point(1))
        b.items = (1,)
        self.assertEqual(b.items, (1,))
        with self.assertRaises(TypeError):
            hash(b)

    def test_replace_asdict_copy_and_pickle(self):
        p = Point(1, tags=[{"a": [1]}])
        q = record.replace(p, y=9)
        self.assertEqual((q.x, q.y, p.y), (1, 9, 0))
        with self.assertRaises(TypeError):
            record.replace(p, nope=1)
        d = record.asdict(Box(p, (Point(2),)))
        self.assertEqual(d, {"inner": {"x": 1, "y": 0, "tags": [{"a": [1]}]}, "items": ({"x": 2, "y": 0, "tags": []},)})
        d["inner"]["tags"][0]["a"].append(2)
        self.assertEqual(p.tags, [{"a": [1]}])  # copied deeply
        self.assertEqual(copy.deepcopy(p), p)
        self.assertEqual(pickle.loads(pickle.dumps(p)), p)

    def test_the_run_types_round_trip(self):
        cfg = Config(run_command="true", direction="min", metric_name="t", min_improvement=Margin(2.0, True))
        self.assertEqual(record.asdict(cfg)["min_improvement"], {"value": 2.0, "relative": True})
        self.assertEqual(RunState().counts, {})
        self.assertIsNot(RunState().counts, RunState().counts)



class ReadPathTest(RepoTest):
    def test_the_read_verbs_load_no_dataclasses_typing_shutil_or_tempfile(self):
        """The point of the module: a real `status`, `history`, `tail` on a real
        run, as a user starts them (bytecode on), import none of these."""
        self.start("--calibration-runs", "2")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
        for verb in (["status"], ["history", "--last", "10"], ["tail"]):
            p = subprocess.run([sys.executable, "-S", "-X", "importtime", RATCHET, *verb], cwd=self.repo, env=env,
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            loaded = {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
            self.assertIn("ratchetlib.io.workspace", loaded)  # the run was read
            self.assertEqual(loaded & {"dataclasses", "inspect", "typing", "shutil", "tempfile", "argparse"}, set(), verb)


if __name__ == "__main__":
    unittest.main()
