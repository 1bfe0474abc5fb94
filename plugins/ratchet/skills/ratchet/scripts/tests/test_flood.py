"""Issue 9, part 3: flooded, binary and endless output (bench/flood.py has the 1 GB figures)."""

import os
import shutil
import tempfile
import unittest

from ratchetlib.io import clip
from ratchetlib.measure import metrics
from tests.util import RepoTest

MiB = 1 << 20


class ExtractTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)

    def report(self, data: bytes) -> str:
        path = os.path.join(self.dir, "r")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_metric_only_in_the_middle_of_megabytes_with_binary_noise(self):
        noise = (b"step \xff\xfe\x00 loss=garbage \x1b[31m\xe9t\xe9\n" * 40000)
        ex = metrics.extract(self.report(noise + b"score: 42.5\n" + noise), "score")
        self.assertEqual((ex.status, ex.value), ("ok", 42.5))

    def test_last_line_without_newline(self):
        ex = metrics.extract(self.report(b"warmup\nscore: 1\nscore: 2"), "score")
        self.assertEqual(ex.value, 2.0)

    def test_one_endless_line_is_read_in_pieces_and_a_metric_across_a_boundary_is_found(self):
        for at in (metrics._PIECE - 4, metrics._PIECE - 9, 2 * metrics._PIECE + 100):
            data = bytearray(b"x" * (3 * MiB))
            data[at:at + 12] = b" score: 7.25"
            ex = metrics.extract(self.report(bytes(data) + b"\r progress 99%"), "score")
            self.assertEqual((ex.status, ex.value), ("ok", 7.25), at)

    def test_a_piece_boundary_is_not_a_line_start(self):
        data = bytearray(b"x" * (3 * MiB))
        # `score` begins exactly where the second piece's overlap begins, glued to the x before it
        at = metrics._PIECE - metrics._OVERLAP
        data[at:at + 8] = b"score: 5"
        self.assertEqual(metrics.extract(self.report(bytes(data)), "score").status, "no-metric")

    def test_clip_keeps_head_and_tail_at_line_ends_with_a_note(self):
        lines = b"".join(b"line %07d\n" % i for i in range(800000))  # ~10 MiB
        path = self.report(lines)
        cut = clip.trim(path)
        with open(path, "rb") as f:
            kept = f.read()
        self.assertLessEqual(len(kept), clip.HEAD + clip.TAIL + clip._SLACK)
        self.assertTrue(kept.startswith(b"line 0000000\n"))
        self.assertTrue(kept.endswith(b"line 0799999\n"))
        note = [l for l in kept.split(b"\n") if l.startswith(b"[ratchet:")]
        self.assertEqual(len(note), 1)
        self.assertIn(b"%d bytes cut here; the output was %d bytes" % (cut, len(lines)), note[0])
        self.assertTrue(all(l.startswith(b"line ") or l.startswith(b"[ratchet:") for l in kept.split(b"\n")[:-1]))
        self.assertIsNone(clip.trim(path))  # small now: left alone


# Prints ~7 MiB with binary noise; the metric only in the middle; the last line has no newline.
FLOOD = ("import sys\nw = sys.stdout.buffer.write\nnoise = b'epoch \\xff\\xfe loss=? \\xe9\\n' * 200000\n"
         "w(noise)\nw(('score: ' + open('value.txt').read().strip() + '\\n').encode())\nw(noise)\n"
         "sys.stderr.buffer.write(b'e' * (7 << 20))\nw(b'done, no newline')\n")


class FloodTrialTest(RepoTest):
    files = {"bench.py": FLOOD, "value.txt": "10\n"}

    def test_a_flooded_trial_is_measured_and_its_captures_are_clipped(self):
        self.start()
        self.set_value(12)
        out = self.run_ok("iterate", "--hypothesis", "bigger")
        self.assertIn("iter 1: KEEP", out)
        t = self.records()[-1]["trials"][0]
        self.assertEqual(t["score"], 12.0)
        self.assertEqual(set(t["clipped"]), {"txt", "err"})
        with open(os.path.join(self.repo, ".ratchet", t["report"]), "rb") as f:
            report = f.read()
        self.assertIn(b"bytes cut here", report)
        self.assertTrue(report.endswith(b"done, no newline"))
        for ext in ("txt", "err"):
            size = os.path.getsize(os.path.join(self.repo, ".ratchet", "reports", f"iter-0001-trial-01.{ext}"))
            self.assertLess(size, clip.HEAD + clip.TAIL + clip._SLACK)


    def test_outputs_of_iterations_long_decided_are_cut_again_not_the_baselines(self):
        """io/clip.age: a night of chatty trials stays bounded; the baseline's
        and the incumbent's outputs stay as they were clipped."""
        from unittest import mock
        self.start("--decision", "mean", "--trials", "1")
        reports = os.path.join(self.repo, ".ratchet", "reports")
        size = lambda it, ext: os.path.getsize(os.path.join(reports, f"iter-{it:04d}-trial-01.{ext}"))
        with mock.patch.object(clip, "AGE_AFTER", 2):
            for _ in range(3):
                self.set_value(9)
                self.assertIn("REVERT", self.run_ok("iterate", "--hypothesis", "smaller"))
        old = clip.OLD_HEAD + clip.OLD_TAIL + clip._SLACK
        self.assertLess(size(1, "txt"), old)  # decided 2 iterations before the last
        self.assertLess(size(1, "err"), old)
        with open(os.path.join(reports, "iter-0001-trial-01.txt"), "rb") as f:
            self.assertTrue(f.read().endswith(b"done, no newline"))  # the tail is kept
        for it in (0, 2, 3):
            self.assertGreater(size(it, "err"), old, it)
        with mock.patch.object(clip, "AGE_AFTER", 2):
            self.set_value(12)
            self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))  # iteration 4, the incumbent
            for _ in range(2):
                self.set_value(9)
                self.run_ok("iterate", "--hypothesis", "smaller")
        self.assertGreater(size(4, "err"), old)  # the incumbent's, due at iteration 6, spared
        self.assertLess(size(3, "err"), old)


if __name__ == "__main__":
    unittest.main()
