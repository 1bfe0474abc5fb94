"""Metric extraction from captured reports."""

import os
import tempfile
import unittest

from ratchetlib.measure import metrics


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


class BackwardScanTest(unittest.TestCase):
    """`extract` reads rule 1 from the end; it must agree with the forward scan
    (`_scan`, every line in order) on any input. Small pieces make every
    boundary case (a line as long as a piece, a match across pieces, a long
    line across blocks) cheap to reach."""

    WORDS = [b"score: 1", b"score=2.5", b"val_score: 9", b"METRIC score=3", b"x", b" ", b"\xff\x00",
             b"score", b":", b"7", b"score: nan", b",score=4e1", b"\r", b"loss=0.1", b"scorescore: 5",
             b"{\"score\": 6}", b"score :  8_0"] + [b"filler text", b"step 12", b"sc", b"ore"] * 8

    def test_agrees_with_the_forward_scan(self):
        import random
        rng = random.Random(20261123)
        old = (metrics._PIECE, metrics._OVERLAP)
        self.addCleanup(setattr, metrics, "_PIECE", old[0])
        self.addCleanup(setattr, metrics, "_OVERLAP", old[1])
        fd, path = tempfile.mkstemp()
        os.close(fd)
        self.addCleanup(os.unlink, path)
        for case in range(1500):
            metrics._PIECE, metrics._OVERLAP = rng.choice([(32, 4), (64, 8), (100, 16), (1 << 20, 4096)])
            lines = []
            for _ in range(rng.randrange(0, 40)):
                n = rng.choice([0, 1, 3, 10, 40, 200])
                lines.append(b"".join(rng.choice(self.WORDS) + rng.choice([b"", b" ", b"; ", b"|"])
                                      for _ in range(rng.randrange(0, n + 1))))
            data = b"\n".join(lines) + rng.choice([b"", b"\n", b"\n\n"])
            with open(path, "wb") as f:
                f.write(data)
            pattern = rng.choice([None, r"([0-9]+)"])
            with open(path, "rb") as f:
                want = metrics._scan(f, "score", pattern)
            self.assertEqual(metrics.extract(path, "score", pattern), want, (case, data[:300]))


if __name__ == "__main__":
    unittest.main()
