"""Issue 14 point 6: the numbers a benchmark prints are read or refused,
never guessed, by one reader (metrics.number) for printed lines, JSON, CSV
and tracker values; an overflowing value is a crash with one line, and the
run goes on. The rules are FORMATS.md's metric rules."""

import json
import os
import tempfile
import unittest

from ratchetlib.core import sourcespec
from ratchetlib.measure import metrics, sources
from tests.util import RepoTest

READ = [("1e5", 1e5), ("-0", 0.0), ("+3", 3.0), ("1_000", 1000.0), ("\u22123", -3.0), ("12.3ms", 12.3),
        ("45%", 45.0), ("0x10", 16.0), ("0o17", 15.0), ("0b101", 5.0), (".5", 0.5), ("5.", 5.0), ("12)", 12.0),
        ("12.3\u00b5s", 12.3), ("7", 7.0)]
REFUSED = [("1,234", "comma between digits"), ("1 234", "grouped by spaces"), ("1\u00a0234", "grouped by spaces"),
           ("12.3.4", "not a number"), ("1e", "not a number"), ("12/100", "not a number"),
           ("1__0", "not a number"), ("--3", "not a number"), ("1,5", "comma between digits"),
           ("1.7e308", "too large to compare safely"), ("1e400", "overflows a float")]


def extract(text, name="score"):
    with tempfile.NamedTemporaryFile("wb", delete=False, suffix=".txt") as f:
        f.write(text.encode())
    try:
        return metrics.extract(f.name, name)
    finally:
        os.unlink(f.name)


class NumberTest(unittest.TestCase):
    def test_each_accepted_form(self):
        for text, want in READ:
            self.assertEqual(metrics.number(text), want, text)
        self.assertEqual(str(metrics.number("-0")), "0.0")  # never -0.0

    def test_each_refused_form_says_why(self):
        for text, why in REFUSED:
            with self.assertRaises((ValueError, OverflowError), msg=text) as cm:
                metrics.number(text)
            self.assertIn(why, str(cm.exception), text)

    def test_a_printed_line_is_read_whole(self):
        for text, want in READ:
            got = extract(f"warmup\nscore: {text}\n")
            self.assertEqual((got.status, got.value), ("ok", want), text)
        for text, why in REFUSED:
            if text == "--3":  # no number starts there: no `score:` line at all, also a refusal
                why = "no 'score: value' line"
            got = extract(f"score: {text}\n")
            self.assertEqual(got.value, None, text)
            self.assertIn(why, got.detail, text)
        self.assertEqual(extract("score: 12 (best 15)\n").value, 12.0)
        self.assertEqual(extract("acc=0.9, score=3, loss=1\n").value, 3.0)
        self.assertEqual(extract("score: nan\n").status, metrics.NOT_FINITE)
        self.assertEqual(extract("score: info\nscore: 4\n").value, 4.0)
        self.assertEqual(extract("score: 4\nscore: information\n").value, 4.0)  # a word is no value

    def test_json_and_csv_values_follow_the_same_rules(self):
        root = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, root, True)
        cases = [({"score": "1,234"}, None, "comma between digits"), ({"score": 1.7e308}, None, "too large"),
                 ({"score": "0x10"}, 16.0, ""), ({"score": "\u22123"}, -3.0, ""), ({"score": 10 ** 400}, None, "")]
        for doc, want, why in cases:
            with open(os.path.join(root, "r.json"), "w") as f:
                f.write(json.dumps(doc))
            got = sources.read_metric(sourcespec.parse_source("json:r.json"), root, "score", since=0.0, direction="max")
            self.assertEqual(got.value, want, doc)
            self.assertIn(why, got.detail, doc)
        with open(os.path.join(root, "log.csv"), "w") as f:
            f.write('step,score\n1,"1,234"\n')
        got = sources.read_metric(sourcespec.parse_source("csv:log.csv"), root, "score", since=0.0, direction="max")
        self.assertIsNone(got.value)
        self.assertIn("comma between digits", got.detail)


class OverflowCliTest(RepoTest):
    def test_an_overflowing_value_is_a_crash_in_one_line_and_the_run_goes_on(self):
        for rule in ("paired", "mean"):
            with self.subTest(rule=rule):
                self.repo = __import__("tests.util", fromlist=["make_repo"]).make_repo(self)
                self.start("--trials", "2", "--decision", rule)
                self.set_value("1.7e308")     # two of these would overflow any mean
                out = self.run_ok("iterate", "--hypothesis", "huge")
                self.assertIn("iter 1: CRASH", out)
                self.assertIn("too large to compare safely", out)
                self.set_value("1,234")
                out = self.run_ok("iterate", "--hypothesis", "grouped")
                self.assertIn("iter 2: CRASH", out)
                self.assertIn("comma between digits", out)
                self.set_value("0x10")
                out = self.run_ok("iterate", "--hypothesis", "hex")
                self.assertIn("iter 3: KEEP", out)
                self.assertEqual(self.records()[-1]["avg"], 16.0)


if __name__ == "__main__":
    unittest.main()
