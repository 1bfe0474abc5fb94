import json
import os
import tempfile
import unittest

from ratchetlib.learn import ideas
from ratchetlib.core.errors import UsageError


def revert(i, hypothesis, **figures):
    return {"iter": i, "decision": "revert", "hypothesis": hypothesis, "incumbent": 100.0,
            "avg": None, "delta": None, **figures}


class Backlog(unittest.TestCase):
    """Each test gets its own empty folder for ideas.json."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "ideas.json")

    def tearDown(self):
        self.tmp.cleanup()


class IdeasTest(Backlog):
    def stored(self):
        with open(self.path, encoding="utf-8") as handle:
            return json.load(handle)

    def test_missing_file_is_an_empty_backlog(self):
        self.assertEqual(ideas.load(self.path), {"format": 1, "next_id": 1, "ideas": []})
        self.assertEqual(ideas.list_open(self.path), [])
        self.assertFalse(os.path.exists(self.path))

    def test_add_list_and_done(self):
        first = ideas.add(self.path, "  try   a trie\nfor lookups ")
        second = ideas.add(self.path, "batch the writes")
        self.assertEqual((first["id"], first["text"], first["source"], first["status"]),
                         (1, "try a trie for lookups", "agent", "open"))
        self.assertEqual([i["id"] for i in ideas.list_open(self.path)], [1, 2])
        self.assertEqual([i["id"] for i in ideas.list_open(self.path, limit=1)], [1])
        closed = ideas.done(self.path, 1)
        self.assertEqual((closed["id"], closed["status"]), (1, "done"))
        self.assertIsNotNone(closed["closed"])
        self.assertEqual([i["text"] for i in ideas.list_open(self.path)], [second["text"]])
        self.assertEqual(self.stored()["format"], 1)
        self.assertEqual([n for n in os.listdir(self.tmp.name)], ["ideas.json"])

    def test_ids_never_change_or_repeat(self):
        for text in ("a", "b", "c"):
            ideas.add(self.path, text)
        ideas.done(self.path, 2)
        self.assertEqual(ideas.add(self.path, "d")["id"], 4)
        self.assertEqual([(i["id"], i["text"]) for i in ideas.list_open(self.path)],
                         [(1, "a"), (3, "c"), (4, "d")])

    def test_adding_an_open_idea_again_returns_it(self):
        ideas.add(self.path, "use mmap")
        self.assertEqual(ideas.add(self.path, "use  mmap")["id"], 1)
        self.assertEqual(len(ideas.list_open(self.path)), 1)

    def test_bad_input_is_a_one_line_error(self):
        with self.assertRaisesRegex(UsageError, "^an idea needs some text$"):
            ideas.add(self.path, "   ")
        with self.assertRaisesRegex(UsageError, "^unknown idea source"):
            ideas.add(self.path, "x", source="robot")
        ideas.add(self.path, "x")
        ideas.add(self.path, "y")
        ideas.done(self.path, 1)
        with self.assertRaisesRegex(UsageError, r"^no open idea #1 \(open: 2\)$"):
            ideas.done(self.path, 1)
        with self.assertRaisesRegex(UsageError, r"^no open idea #9 \(open: 2\)$"):
            ideas.done(self.path, "9")
        with self.assertRaisesRegex(UsageError, "^an idea number is a whole number"):
            ideas.done(self.path, "two")
        self.assertEqual(ideas.done(self.path, "#2")["id"], 2)

    def test_a_newer_format_is_refused(self):
        with open(self.path, "w", encoding="utf-8") as handle:
            json.dump({"format": 2, "ideas": []}, handle)
        with self.assertRaisesRegex(UsageError, "format 2, newer than this ratchet"):
            ideas.load(self.path)

    def test_corrupt_file_is_a_one_line_error(self):
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write("{not json")
        with self.assertRaisesRegex(UsageError, "is corrupt"):
            ideas.list_open(self.path)


class NearMissTest(Backlog):
    def test_positive_estimate_not_significant_is_added_with_its_figures(self):
        record = revert(7, "inline the hot helper", estimate=0.012, interval=[-0.004, 0.028],
                        patch="patches/iter-0007.patch")
        idea = ideas.auto_add_near_miss(self.path, record, {"direction": "max"})
        self.assertEqual(idea["source"], "near-miss")
        self.assertEqual(idea["text"], "near miss from iter 7 (+1.2% [-0.4%, +2.8%]): "
                                       "inline the hot helper")
        self.assertEqual(idea["figures"], {"iter": 7, "estimate": 0.012,
                                           "interval": [-0.004, 0.028], "incumbent": 100.0,
                                           "patch": "patches/iter-0007.patch"})
        self.assertEqual(ideas.list_open(self.path), [idea])

    def test_delta_is_the_fallback_and_respects_direction(self):
        up = revert(3, "smaller buffer", delta=0.4, avg=100.4)
        self.assertIsNotNone(ideas.auto_add_near_miss(self.path, up, {"direction": "max"}))
        self.assertIsNone(ideas.auto_add_near_miss(
            self.path, revert(4, "bigger buffer", delta=0.4), {"direction": "min"}))
        down = ideas.auto_add_near_miss(self.path, revert(5, "bigger buffer", delta=-0.4),
                                        {"direction": "min"})
        self.assertIn("delta -0.4", down["text"])

    def test_only_reverted_near_misses_count(self):
        for record in (revert(1, "worse", estimate=-0.01),
                       revert(2, "no figures"),
                       {**revert(3, "kept", estimate=0.05), "decision": "keep"},
                       {**revert(4, "crashed", delta=1.0), "decision": "crash"},
                       revert(5, "flat", estimate=0.0)):
            self.assertIsNone(ideas.auto_add_near_miss(self.path, record))
        self.assertEqual(ideas.list_open(self.path), [])

    def test_deduplicated_by_iteration_and_by_hypothesis(self):
        record = revert(7, "Inline the hot helper", estimate=0.01)
        self.assertIsNotNone(ideas.auto_add_near_miss(self.path, record))
        self.assertIsNone(ideas.auto_add_near_miss(self.path, record))
        self.assertIsNone(ideas.auto_add_near_miss(
            self.path, revert(12, "inline the hot helper.", estimate=0.02)))
        # Still deduplicated once the agent has tried it and marked it done.
        ideas.done(self.path, 1)
        self.assertIsNone(ideas.auto_add_near_miss(
            self.path, revert(15, "inline the  hot helper", estimate=0.02)))
        self.assertEqual(ideas.load(self.path)["next_id"], 2)

    def test_the_backlog_stays_bounded(self):
        ideas.add(self.path, "agent idea")
        for i in range(1, 61):
            ideas.auto_add_near_miss(self.path, revert(i, f"variant number {i}", estimate=0.01))
        opened = ideas.list_open(self.path)
        self.assertEqual(len(opened), 1 + ideas.NEAR_MISS_CAP)
        self.assertEqual(opened[0]["text"], "agent idea")
        self.assertEqual(opened[1]["figures"]["iter"], 61 - ideas.NEAR_MISS_CAP)
        self.assertEqual(opened[-1]["id"], 61)


if __name__ == "__main__":
    unittest.main()
