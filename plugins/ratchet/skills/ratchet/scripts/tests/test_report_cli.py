"""`report`, the `status` trend line and the terminal habits, through the CLI
on real runs: keeps, only reverts, crashes, two metrics, a holdout."""

import io
import json
import os
import re
import tempfile
import unittest
from unittest import mock

from ratchetlib.present import chart as chart_mod, page as page_mod, trend as trend_mod
from ratchetlib.core import term
from ratchetlib.io.store import Store
from tests.util import INIT, RepoTest, TRIAL_PY, git, read, write

# score from value.txt, mem from mem.txt when it holds a number
BENCH2 = ("import os\nprint('score:', open('value.txt').read().strip())\n"
          "if os.path.exists('mem.txt'):\n    print('mem:', open('mem.txt').read().strip())\n")
HOLDOUT = "print('score:', 2 * float(open('value.txt').read()))\n"


class ReportCliTest(RepoTest):
    def iterate(self, value, hypothesis):
        self.set_value(value)
        return self.run_ok("iterate", "--hypothesis", hypothesis)

    def test_run_with_keeps_reverts_and_crashes(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.iterate(12, "cache the parsed config")
        self.iterate(11, "inline the hot loop")
        self.iterate("x", "use mmap for the input")      # no number: a crash
        self.iterate(15, "precompile the regexes")
        md = self.run_ok("report")
        self.assertIn("# ratchet report: score (higher is better)", md)
        self.assertIn("- start (baseline): 10\n", md)
        self.assertIn("- best: 15 at iter 4 (measured in its own decision, not re-measured)", md)
        self.assertIn("- verified gain: not yet re-measured for HEAD (iter 4)", md)
        self.assertIn("4 iterations: keep 2 · revert 1 · crash 1", md)
        self.assertIn("| 4 | +3 (25.0% better) | 15 | precompile the regexes |", md)
        self.assertIn("| 1 | +2 (20.0% better) | 12 | cache the parsed config |", md)
        self.assertNotIn("HTML report", md)
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        data = json.loads(self.run_ok("report", "--json"))
        self.assertEqual(data["markdown"].rstrip(), md.rstrip())
        s = data["summary"]
        self.assertEqual((s["start"], s["best"], s["best_iter"], s["counts"]["crash"]), (10.0, 15.0, 4, 1))
        self.assertEqual([w["iter"] for w in s["top_wins"]], [4, 1])
        self.assertIsNone(data["html"])

    def test_html_default_path_and_the_page(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.iterate(12, "a <b>bold</b> & risky idea")
        out = self.run_ok("report", "--html")
        path = os.path.join(self.repo, ".ratchet", "report.html")
        self.assertIn(f"HTML report: {path}", out)
        page = read(self.repo, ".ratchet/report.html")
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        self.assertIn(f'<meta name="generator" content="{page_mod.GENERATOR}">', page)
        self.assertIn("a &lt;b&gt;bold&lt;/b&gt; &amp; risky idea", page)
        self.assertIsNone(re.search(r"<script|https?://(?!www\.w3\.org/2000/svg\b)|src=|href=", page))
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")   # .ratchet/ is excluded
        # writing it again replaces our own report atomically
        self.iterate(13, "more")
        data = json.loads(self.run_ok("report", "--html", "--json"))
        self.assertEqual(data["html"]["path"], path)
        self.assertEqual(data["html"]["bytes"], os.path.getsize(path))
        self.assertIn(">more<", read(self.repo, ".ratchet/report.html"))
        self.assertEqual([n for n in os.listdir(os.path.join(self.repo, ".ratchet")) if n.startswith(".tmp")], [])

    def test_html_path_rules(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.iterate(12, "up")
        # inside the work tree while the run is active: it would join the next candidate
        err = self.run_fail("report", "--html", "report.html")
        self.assertIn("inside the repository while the run is active", err)
        self.assertFalse(os.path.exists(os.path.join(self.repo, "report.html")))
        # never over a file that is not a ratchet report
        with tempfile.TemporaryDirectory() as d:
            mine = os.path.join(d, "notes.html")
            with open(mine, "w") as f:
                f.write("<html>my notes</html>")
            self.assertIn("is not a ratchet report", self.run_fail("report", "--html", mine))
            with open(mine) as f:
                self.assertEqual(f.read(), "<html>my notes</html>")
            out = os.path.join(d, "r.html")
            self.run_ok("report", "--html", out)
            self.run_ok("report", "--html", out)   # our own: replaced
            self.assertIn("does not exist", self.run_fail("report", "--html", os.path.join(d, "no", "r.html")))
        # after stop, a path in the tree is fine (nothing is measured any more)
        self.run_ok("stop")
        self.run_ok("report", "--html", "report.html")
        self.assertIn("ratchet report", read(self.repo, "report.html"))

    def test_only_reverts(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        for v, h in ((9, "one"), (8, "two"), (7, "three")):
            self.iterate(v, h)
        md = self.run_ok("report")
        self.assertIn("- best: 10 at iter 0\n", md)
        self.assertIn("3 iterations: keep 0 · revert 3", md)
        self.assertIn("no iteration was kept.", md)
        self.run_ok("report", "--html")
        page = read(self.repo, ".ratchet/report.html")
        self.assertEqual(len(re.findall(r'class="mr"[^>]*><title>', page)), 3)   # one mark per revert
        self.assertNotIn('class="mk"', page)

    def test_crashes_only(self):
        self.start("--max-consecutive-crashes", "2", "--decision", "mean")
        self.iterate("x", "break it")
        out = self.iterate("y", "break it again")
        self.assertIn("crash budget exhausted", out)
        md = self.run_ok("report")
        self.assertIn("2 iterations: keep 0 · revert 0 · crash 2", md)
        self.assertIn("stopped: crash budget exhausted", md)
        self.run_ok("report", "--html")
        page = read(self.repo, ".ratchet/report.html")
        self.assertEqual(len(re.findall(r'class="mf"[^>]*><title>', page)), 2)   # one cross per crash

    def test_status_trend_is_bounded_and_reads_only_a_tail(self):
        self.start("--iterations", "40")
        for i in range(14):   # 15 records: more than the trend shows
            self.iterate(11 + i if i % 3 == 0 else "x" if i == 10 else 5, f"idea {i}")
        calls = []
        real = Store.records

        def spy(store, last=None):
            calls.append(last)
            return real(store, last)
        with mock.patch.object(Store, "records", spy):
            out = self.run_ok("status")
        self.assertTrue(calls and all(c is not None and c <= 10 for c in calls), calls)
        line = next(l for l in out.splitlines() if l.startswith("trend: "))
        spark = line.split()[1]
        self.assertEqual(len(spark), 10)
        self.assertIn("×", spark)
        self.assertIn("last 10 scores, oldest first; lowest 5, highest 23 (× no score)", line)
        self.assertLess(len(out.encode()), 1500)
        data = json.loads(self.run_ok("status", "--json"))
        self.assertEqual(data["trend"], line)
        self.assertEqual(len(data["recent_scores"]), 10)
        self.assertEqual(len(data["recent"]), 5)

    def test_score_has_json(self):
        self.start("--decision", "mean")  # figures below are those of the mean rule
        self.set_value(12)
        self.run_ok("run-trial")
        t = json.loads(self.run_ok("score", "12.5", "--json"))
        self.assertEqual((t["score"], t["status"]), (12.5, "ok"))


class TwoMetricsAndHoldoutTest(RepoTest):
    files = {"bench.py": BENCH2, "value.txt": "10\n", "mem.txt": "50\n", "holdout.py": HOLDOUT}

    def test_pareto_and_holdout(self):
        self.run_ok(*INIT[:-2], "--metric", "mem:min", "--holdout-command", f"{TRIAL_PY} holdout.py")
        self.run_ok("baseline")
        for value, mem, hyp in ((12, 50, "faster"), (12, 40, "leaner"), (11, 60, "worse")):
            self.set_value(value)
            write(self.repo, "mem.txt", f"{mem}\n")
            self.run_ok("iterate", "--hypothesis", hyp)
        md = self.run_ok("report")
        self.assertIn("## Pareto frontier (1 point)", md)
        self.assertIn("| iter | score (max) | mem (min) | hypothesis |", md)
        self.assertIn("| 2 | 12 | 40 | leaner |", md)
        self.assertNotIn("## Holdout", md)   # hidden while the run is active
        self.run_ok("report", "--html")
        page = read(self.repo, ".ratchet/report.html")
        self.assertIn(f'<svg id="{chart_mod.SCATTER_ID}"', page)
        self.assertIn("score against mem", page)
        self.run_ok("stop")
        md = self.run_ok("report")
        self.assertIn("## Holdout", md)
        self.assertIn("start 20 → best 24 (+20.0%): the gain held", md)


class TerminalTest(unittest.TestCase):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    def test_colour_only_on_a_terminal_without_no_color(self):
        self.assertTrue(term.use_color(self.Tty(), {}))
        self.assertFalse(term.use_color(self.Tty(), {"NO_COLOR": ""}))
        self.assertFalse(term.use_color(self.Tty(), {"TERM": "dumb"}))
        self.assertFalse(term.use_color(io.StringIO(), {}))
        self.assertEqual(term.paint("x", "fail", False), "x")
        self.assertEqual(term.paint("x", "fail", True), "\x1b[1;31mx\x1b[0m")

    def test_ascii_sparkline_where_blocks_cannot_print(self):
        stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
        line = trend_mod.trend([{"avg": 1.0}, {"avg": None}, {"avg": 3.0}], stream)
        self.assertEqual(line, "trend: _x#  last 3 scores, oldest first; lowest 1, highest 3 (x no score)")
        self.assertEqual(trend_mod.trend([]), "")

    def test_every_verb_that_prints_state_has_json(self):
        from ratchetlib.cli.flags import build_parser
        parser = build_parser()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        # tail and diff print a log or a patch, demo a walkthrough: text, not state
        text_only = {"tail", "diff", "demo", "loop", "reseal"}  # logs, patches, walkthroughs and a confirmation at a terminal, not state
        for name, sp in sub.choices.items():
            has = any("--json" in a.option_strings for a in sp._actions)
            self.assertEqual(has, name not in text_only, name)


if __name__ == "__main__":
    unittest.main()
