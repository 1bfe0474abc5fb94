"""Metric extraction from captured reports."""

import os
import tempfile
import unittest

from ratchetlib import metrics


class ExtractTest(unittest.TestCase):
    def report(self, data):
        fd, path = tempfile.mkstemp()
        with os.fdopen(fd, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        self.addCleanup(os.unlink, path)
        return path

    def value(self, data, name="score", pattern=None):
        return metrics.extract(self.report(data), name, pattern)

    def test_line_forms(self):
        for text in ("score: 1.5\n", "score=1.5", "METRIC score=1.5\n", "  score = 1.5 ms\n",
                     "epoch 3, loss=0.2, score=1.5\n", "score: 1.5e0\n", "score: +1.5"):
            self.assertEqual(self.value(text).value, 1.5, text)

    def test_last_line_wins(self):
        self.assertEqual(self.value("score: 1\nwarmup\nscore: 2\nscore: 3\n").value, 3.0)

    def test_name_must_be_whole_word(self):
        self.assertEqual(self.value("val_score: 9\nscore: 2\n").value, 2.0)
        self.assertEqual(self.value("val_score: 9\n").status, metrics.MISSING)

    def test_nan_inf_are_not_finite(self):
        for text in ("score: nan", "score: NaN", "score: inf", "score=-Infinity"):
            ex = self.value(text)
            self.assertEqual((ex.value, ex.status), (None, metrics.NOT_FINITE), text)

    def test_missing_and_empty(self):
        self.assertEqual(self.value("nothing here\n").status, metrics.MISSING)
        self.assertEqual(self.value("").detail, "report is empty")
        self.assertEqual(metrics.extract("/nonexistent/x", "score").status, metrics.MISSING)

    def test_json_report_and_dotted_paths(self):
        self.assertEqual(self.value('{"score": 4.25}').value, 4.25)
        self.assertEqual(self.value('{"eval": {"acc": [0.1, 0.9]}}', "eval.acc.1").value, 0.9)
        self.assertEqual(self.value('{"a.b": 7}', "a.b").value, 7.0)
        self.assertEqual(self.value('log line\n{"score": 8}\n').value, 8.0)
        self.assertEqual(self.value('{"score": "NaN"}').status, metrics.NOT_FINITE)
        self.assertEqual(self.value('{"score": true}').status, metrics.MISSING)

    def test_pattern_is_last_resort(self):
        self.assertEqual(self.value("took 12.5 ms\ntook 11 ms\n", pattern=r"took ([0-9.]+) ms").value, 11.0)
        self.assertEqual(self.value("score: 3\ntook 12 ms", pattern=r"took ([0-9.]+)").value, 3.0)

    def test_binary_and_unterminated_output(self):
        self.assertEqual(self.value(b"\xff\xfe garbage\x00\nscore: 6").value, 6.0)

    def test_metric_in_the_middle_of_megabytes(self):
        blob = ("x" * 1000 + "\n") * 3000
        self.assertEqual(self.value(blob + "score: 42\n" + blob).value, 42.0)


if __name__ == "__main__":
    unittest.main()
