"""Issue 16, points 1 and 2: one honest gain figure, and a --threshold stop
that a re-measure confirms. Driven through the CLI with a benchmark whose
outputs are scripted per run: a lucky first measurement of a change that
does nothing is what a keep decision selects (the winner's curse)."""

import json
import os
import subprocess
import unittest

from tests.util import INIT, RepoTest, TRIAL_PY, read, write

# Prints value.txt times the next factor scripted for that exact text in
# ../luck.json ({"10.0": [2, 2]}: the first two runs of "10.0" read double),
# 1 once the script for it is used up.
SCRIPTED = ("import json, os\n"
            "v = open('value.txt').read().strip()\n"
            "path = os.path.join('..', 'luck.json')\n"
            "luck = json.load(open(path)) if os.path.exists(path) else {}\n"
            "queue = luck.get(v) or []\n"
            "factor = queue.pop(0) if queue else 1.0\n"
            "json.dump(luck, open(path, 'w'))\n"
            "print('score:', float(v) * factor)\n")


class ScriptedTest(RepoTest):
    files = {"bench.py": SCRIPTED, "value.txt": "10\n"}

    def luck(self, **runs):
        """The factors of the next runs of each value.txt text (`v10_0=[2, 2]` for "10.0")."""
        with open(os.path.join(os.path.dirname(self.repo), "luck.json"), "w") as f:
            json.dump({k[1:].replace("_", "."): v for k, v in runs.items()}, f)

    def iterate(self, value, hyp="change"):
        self.set_value(value)
        return self.run_ok("iterate", "--hypothesis", hyp)

    def lucky_keep(self, *flags):
        """Baseline 10, then "10.0" (the same code) kept on two lucky runs of 20."""
        self.start(*flags)
        self.luck(v10_0=[2, 2])
        out = self.iterate("10.0", "a no-op that measured lucky")
        self.assertIn("iter 1: KEEP  score, 2 pairs incumbent|candidate: 10|20 10|20", out)  # kept on luck
        return out


class HonestHeadlineTest(ScriptedTest):
    def test_a_lucky_keep_is_never_shown_as_the_gain(self):
        self.lucky_keep()
        status = self.run_ok("status")
        self.assertIn("baseline 10 · best 20 at iter 1 (measured in its own decision, not re-measured) · last 20 · "
                      "iteration 1/20", status)
        self.assertIn("gain over the start: not yet re-measured for HEAD (iter 1)", status)
        self.assertNotIn("+100", "\n".join(status.splitlines()[:4]))  # (a hint may name the decision's own effect)
        self.assertTrue(json.loads(self.run_ok("status", "--json"))["gain"].startswith(
            "gain over the start: not yet re-measured for HEAD (iter 1)"))
        md = self.run_ok("report")
        self.assertIn("- verified gain: not yet re-measured for HEAD (iter 1)", md)
        self.assertNotIn("+100", md.split("## Top wins")[0])
        for value in ("9", "8", "9.5"):  # three reverts: the keep has stood SETTLED decisions
            out = self.iterate(value)
            self.assertIn("REVERT", out)
        self.assertIn("verified gain over the start: +0.0% [+0.0%, +0.0%] (2 pairs, HEAD at iter 1 vs the start)",
                      out)  # the verdict of the iteration that ran the verify
        st = self.state()
        self.assertEqual((st["verified"]["sha"], st["verified"]["iter"], st["verified"]["value"]),
                         (st["incumbent_sha"], 1, 10.0))
        status = self.run_ok("status")
        lines = status.splitlines()
        self.assertEqual(lines[2], "verified gain over the start: +0.0% [+0.0%, +0.0%] (2 pairs, HEAD at iter 1 "
                                   "vs the start)")
        self.assertIn("best 20 at iter 1 (measured in its own decision, not re-measured)", lines[1])
        md = self.run_ok("report")
        self.assertIn("- verified gain: +0.0% [+0.0%, +0.0%] over 2 pairs (HEAD at iter 1 vs the start)", md)
        page = os.path.join(os.path.dirname(self.repo), "r.html")
        self.run_ok("report", "--html", page)
        html = read(os.path.dirname(self.repo), "r.html")
        self.assertIn("<b>verified gain</b><span>+0.0% [+0.0%, +0.0%]</span><small>2 pairs, HEAD at iter 1 vs the "
                      "start</small>", html)
        self.assertIn("<b>best measured</b><span>20</span><small>iter 1, its own decision&#x27;s mean</small>", html)
        self.assertNotIn("+100", html.split("<h2>")[0])

    def test_a_later_keep_makes_the_last_verify_an_earlier_bests(self):
        self.lucky_keep()
        self.run_ok("verify")
        self.iterate("12")  # a real gain, kept: HEAD moves, the verify above measured iter 1
        status = self.run_ok("status")
        self.assertIn("gain over the start: not yet re-measured for HEAD (iter 2); the last re-measure, of an "
                      "earlier best: +0.0% [+0.0%, +0.0%] (2 pairs, HEAD at iter 1 vs the start)", status)
        self.assertNotIn("verified gain over the start", status)
        self.assertIn("not yet re-measured for HEAD (iter 2); the last re-measure, of an earlier best",
                      self.run_ok("report"))

    def test_the_final_summary_finalize_and_stop_show_the_re_measured_gain(self):
        self.lucky_keep("--iterations", "2")
        out = self.iterate("12")  # the cap: the run stops and re-measures HEAD
        self.assertIn("next: stop (iteration cap reached (2))", out)
        self.assertIn("verified gain over the start: +20.0% [+20.0%, +20.0%] (2 pairs, HEAD at iter 2 vs the start)",
                      out)
        self.assertIn("verified gain over the start: +20.0%", self.run_ok("stop"))
        self.run_ok("finalize", "--branch", "done")
        msg = subprocess.run(["git", "log", "-1", "--format=%B", "done"], cwd=self.repo, stdout=subprocess.PIPE,
                             text=True, check=True).stdout
        self.assertTrue(msg.startswith("Improve score by 20.0% (re-measured against the start)\n"), msg)
        self.assertIn("start 10, best 12 (measured in its own decision, not re-measured).", msg)
        self.assertIn("Verified gain (paired re-run): +20.0% [+20.0%, +20.0%] over 2 pairs (HEAD at iter 2 vs the "
                      "start).", msg)

    def test_the_holdout_compares_with_the_re_measured_gain(self):
        write(self.repo, "holdout.py", "print('score:', float(open('value.txt').read()))\n")
        subprocess.run(["git", "add", "holdout.py"], cwd=self.repo, check=True)
        subprocess.run(["git", "commit", "-qm", "holdout"], cwd=self.repo, check=True)
        self.lucky_keep("--holdout-command", f"{TRIAL_PY} holdout.py", "--iterations", "1")
        st = self.state()
        self.assertEqual(st["verified"]["sha"], st["incumbent_sha"])  # re-measured before the holdout ran
        doc = json.loads(read(self.repo, ".ratchet/holdout.json"))
        self.assertEqual((doc["benchmark"]["gain_pct"], doc["benchmark"]["re_measured"]), (0.0, True))
        self.assertIn("score start 10 -> final 10 (+0.00%) vs +0.00% re-measured on the benchmark", doc["summary"])


class ConfirmedThresholdTest(ScriptedTest):
    def test_a_threshold_crossed_only_by_luck_does_not_stop_the_run(self):
        out = self.lucky_keep("--threshold", "15")
        self.assertIn("threshold 15 not confirmed: HEAD re-measured against the start reads 10 (+0.0% [+0.0%, "
                      "+0.0%]), not the best's own 20; the run goes on", out)
        self.assertTrue(out.rstrip().endswith("next: continue"), out)
        st = self.state()
        self.assertIsNone(st.get("stop"))
        self.assertEqual((st["verified"]["sha"], st["verified"]["value"]), (st["incumbent_sha"], 10.0))
        out = self.iterate("9")  # a revert: HEAD was re-measured already, nothing is re-run
        self.assertIn("REVERT", out)
        self.assertNotIn("verified gain", out)
        self.assertTrue(out.rstrip().endswith("next: continue"), out)
        self.assertIn("threshold 15 not confirmed: HEAD re-measured against the start reads 10", self.run_ok("status"))
        out = self.iterate("16")  # a real change past the threshold: confirmed, the run stops
        self.assertIn("iter 3: KEEP", out)
        self.assertIn("verified gain over the start: +60.0%", out)
        self.assertIn("next: stop (threshold reached (16 vs 15, confirmed: HEAD re-measured against the start))", out)
        self.assertNotIn("not confirmed", out)
        self.assertEqual(self.state()["verified"]["value"], 16.0)

    def test_a_verify_that_confirms_the_threshold_stops_the_run(self):
        self.start("--threshold", "15")
        self.luck(v16=[0.9, 0.9])  # the keep's own runs read 14.4: short of the threshold, nothing to confirm
        out = self.iterate("16")
        self.assertIn("KEEP", out)
        self.assertTrue(out.rstrip().endswith("next: continue"), out)
        out = self.run_ok("verify")
        self.assertIn("verified gain over the start: +60.0%", out)
        self.assertIn("next: stop (threshold reached (16 vs 15, confirmed: HEAD re-measured against the start))", out)
        self.assertIn("stopped", self.run_fail("iterate", "--hypothesis", "more"))

    def test_min_direction_and_the_mean_rule_confirm_too(self):
        self.run_ok(*[a if a != "max" else "min" for a in INIT], "--threshold", "6", "--decision", "mean",
                    "--trials", "1")
        self.run_ok("baseline")
        self.luck(v10_0=[0.5])  # one lucky run reads 5, past the threshold 6
        out = self.iterate("10.0")
        self.assertIn("KEEP", out)
        self.assertIn("threshold 6 not confirmed: HEAD re-measured against the start reads 10", out)
        self.assertTrue(out.rstrip().endswith("next: continue"), out)
        out = self.iterate("4")  # the mean rule compares with the lucky 5 (its own winner's curse): 4 beats it
        self.assertIn("KEEP", out)
        self.assertIn("next: stop (threshold reached (4 vs 6, confirmed", out)


class PureTest(unittest.TestCase):
    """The pure pieces: what is current, what a threshold is compared with."""

    def test_confirmed_value_on_both_scales_and_directions(self):
        import math
        from ratchetlib.core.gain import Gain
        from ratchetlib.keep.recheck import at_baseline
        up = Gain(math.log(1.6), (math.log(1.5), math.log(1.7)), 4, True, 0.95)
        self.assertEqual(at_baseline(up, 10.0, "max"), (16.0, [15.0, 17.0]))
        self.assertEqual(at_baseline(up, 10.0, "min"), (6.25, [5.88235294118, 6.66666666667]))  # 1.6x faster
        diff = Gain(2.0, (1.0, 3.0), 4, False, 0.95)  # metric units, positive = better
        self.assertEqual(at_baseline(diff, -5.0, "max"), (-3.0, [-4.0, -2.0]))
        self.assertEqual(at_baseline(diff, -5.0, "min"), (-7.0, [-8.0, -6.0]))
        self.assertEqual(at_baseline(up, None, "max"), (None, None))

    def test_what_counts_as_the_current_heads_verify(self):
        from ratchetlib.core import config, headline
        from ratchetlib.core.state import from_json
        cfg = config.Config(run_command="x", direction="max", metric_name="m", threshold=15.0, start_commit="s" * 40)
        st = from_json({"iteration": 3, "best": 20.0, "incumbent_sha": "h" * 40, "counts": {"keep": 1}, "incumbent_iter": 3})
        self.assertTrue(headline.threshold_to_confirm(st, cfg))
        self.assertFalse(headline.threshold_to_confirm(from_json({**st.to_json(), "best": 14.0}), cfg))
        self.assertFalse(headline.threshold_to_confirm(from_json({**st.to_json(), "incumbent_sha": "s" * 40}), cfg))  # nothing kept
        old = {"sha": "o" * 40, "gain_pct": 5.0, "change_pct": 5.0, "iter": 1, "pairs": 4, "value": 10.5}
        self.assertTrue(headline.threshold_to_confirm(from_json({**st.to_json(), "verified": old}), cfg))  # an earlier best's verify
        self.assertEqual(headline.gain_line(from_json({**st.to_json(), "verified": old})),
                         "gain over the start: not yet re-measured for HEAD (iter 3); the last re-measure, of an "
                         "earlier best: +5.0% (4 pairs, HEAD at iter 1 vs the start)")
        now = {**old, "sha": "h" * 40, "iter": 3}
        self.assertFalse(headline.threshold_to_confirm(from_json({**st.to_json(), "verified": now}), cfg))
        self.assertIn("threshold 15 not confirmed: HEAD re-measured against the start reads 10.5",
                      headline.threshold_line(from_json({**st.to_json(), "verified": now}), cfg))
        self.assertIsNone(headline.gain_line(from_json({"iteration": 0, "counts": {}})))
        self.assertIn("run `ratchet.py verify`", headline.gain_line(st, paired=False))
