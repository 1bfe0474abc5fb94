"""The run report: Markdown, the HTML page and its charts, the sparkline, and
one real render of the page in headless Chromium checked pixel by pixel."""

import collections
import itertools
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET
import zlib

from ratchetlib.present import chart as chart_mod, markdown as md_mod, page as page_mod, svg as svg_mod, trend as trend_mod

SVG_NS = "{http://www.w3.org/2000/svg}"


# ------------------------------------------------------------------ runs ---

def _config(direction="max", **extra):
    return {"format": 1, "run_id": "20261123-131500-ab12", "run_command": "python3 bench.py",
            "direction": direction, "metric_name": "throughput", "iterations": 30,
            "trials": 3, **extra}


def _rec(it, decision, scores, incumbent=None, hypothesis="", **extra):
    """A results.jsonl record as FORMATS.md defines it (avg of the valid scores)."""
    valid = [s for s in scores if s is not None]
    avg = sum(valid) / len(valid) if valid else None
    delta = avg - incumbent if avg is not None and incumbent is not None else None
    rec = {"format": 1, "iter": it, "hypothesis": hypothesis, "description": "",
           "trial_scores": list(scores), "avg": avg, "decision": decision,
           "kept": decision in ("keep", "baseline"), "sha": None, "incumbent": incumbent,
           "delta": delta, "reason": f"{decision}: test", "trials": [], "changed": [],
           "patch": None, "critic": None, "seconds": 1.0}
    rec.update(extra)
    return rec


def _state(records, direction="max", **extra):
    kept = [r for r in records if r["kept"] and r["avg"] is not None]
    pick = min if direction == "min" else max
    best = pick(kept, key=lambda r: r["avg"]) if kept else None
    state = {"format": 1, "iteration": records[-1]["iter"] if records else -1,
             "baseline": records[0]["avg"] if records else None,
             "best": best["avg"] if best else None, "best_iter": best["iter"] if best else None,
             "stop": None}
    state.update(extra)
    return state


def run_with_keeps():
    """Baseline 100; keeps at 2 (+5), 5 (+10), 7 (+3); every other outcome once."""
    return [
        _rec(0, "baseline", [99.0, 100.0, 101.0]),
        _rec(1, "revert", [98.0, 99.0, 100.0], 100.0, "inline the hot loop"),
        _rec(2, "keep", [104.0, 105.0, 106.0], 100.0, "cache the parsed config"),
        _rec(3, "crash", [None, None, None], 105.0, "use mmap for the input"),
        _rec(4, "timeout", [None, None, None], 105.0, "parallelise with threads"),
        _rec(5, "keep", [114.0, 115.0, 116.0], 105.0, "precompile the regexes"),
        _rec(6, "invalid", [], 115.0, "edit the benchmark"),
        _rec(7, "keep", [117.0, 118.0, 119.0], 115.0, "avoid a copy in parse()"),
        _rec(8, "no-change", [], 118.0, "nothing"),
        _rec(9, "revert", [110.0, 112.0, 111.0], 118.0, "switch to a heap"),
    ]


def only_reverts():
    return [_rec(0, "baseline", [50.0, 50.5, 49.5])] + [
        _rec(i, "revert", [49.0 + i * 0.1, 49.5, 49.8], 50.0, f"idea {i}") for i in range(1, 6)]


def all_crashes():
    return [_rec(0, "baseline", [None, None, None], decision_note="x")] + [
        _rec(i, "crash", [None, None, None], None, f"try {i}") for i in range(1, 5)]


def two_metrics():
    """A min latency run that also records throughput; frontier = iters 2 and 4."""
    rows = [(0, "baseline", 20.0, 100.0), (1, "revert", 21.0, 104.0), (2, "keep", 18.0, 98.0),
            (3, "revert", 19.0, 90.0), (4, "keep", 17.5, 97.0), (5, "crash", None, None)]
    recs = []
    inc = None
    for it, dec, lat, thr in rows:
        metrics = {"latency": lat, "throughput": thr} if lat is not None else None
        rec = _rec(it, dec, [lat] if lat is not None else [None], inc, f"h{it}", metrics=metrics)
        recs.append(rec)
        if dec in ("baseline", "keep"):
            inc = lat
    config = _config("min", metric_name="latency",
                     metrics=[{"name": "latency", "direction": "min"},
                              {"name": "throughput", "direction": "max"}])
    pareto = [{"iter": 2, "metrics": {"latency": 18.0, "throughput": 98.0}},
              {"iter": 4, "metrics": {"latency": 17.5, "throughput": 97.0}}]
    return config, recs, pareto


def large_run(n=10000):
    recs = [_rec(0, "baseline", [1000.0, 1001.0, 999.0])]
    inc = 1000.0
    for i in range(1, n + 1):
        wobble = math.sin(i * 1.7) * 20
        if i % 37 == 0:
            recs.append(_rec(i, "crash", [None, 990.0, None], inc, f"idea {i}"))
            continue
        scores = [inc + wobble + k for k in (-3.0, 0.5, 2.5)]
        dec = "keep" if i % 50 == 0 else "revert"
        if dec == "keep":
            scores = [inc + 5 + k for k in (-1.0, 0.0, 1.0)]
        recs.append(_rec(i, dec, scores, inc, f"idea {i} " + "x" * 100))
        if dec == "keep":
            inc = sum(scores) / 3
    return recs


def _svg(page, svg_id=chart_mod.CHART_ID):
    """The SVG element with `svg_id`, parsed as XML (so it is well-formed)."""
    m = re.search(rf'<svg id="{svg_id}".*?</svg>', page, re.S)
    if m is None:
        raise AssertionError(f"no <svg id={svg_id}> in the page")
    return ET.fromstring(m.group(0))


def _by_class(svg, tag, cls):
    return [el for el in svg.iter(SVG_NS + tag) if el.get("class") == cls]


# -------------------------------------------------------------- markdown ---

class MarkdownTest(unittest.TestCase):
    def test_run_with_keeps(self):
        recs = run_with_keeps()
        md = md_mod.markdown(_config(), _state(recs), recs)
        self.assertIn("# ratchet report: throughput (higher is better)", md)
        self.assertIn("- start (baseline): 100\n", md)
        self.assertIn("- best: 118 at iter 7 (measured in its own decision, not re-measured)", md)
        self.assertNotIn("+18.0%", md)  # the best's own mean against the start is not a gain anyone re-measured
        self.assertIn("- verified gain: not yet re-measured for HEAD (run `ratchet.py verify`)", md)
        self.assertIn("9 iterations: keep 3 · revert 2 · crash 1 · timeout 1 · invalid 1 · no-change 1", md)
        wins = [line for line in md.splitlines() if line.startswith("| ") and "better" in line]
        self.assertEqual([w.split("|")[1].strip() for w in wins], ["5", "2", "7"])
        self.assertIn("| 5 | +10 (9.5% better) | 115 | precompile the regexes |", md)

    def test_never_sums_per_keep_gains_and_shows_verified(self):
        recs = run_with_keeps()
        md = md_mod.markdown(_config(), _state(recs), recs)
        self.assertNotIn("+18 ", md)   # 5 + 10 + 3 summed would be a lie
        verified = {"gain_pct": 3.14, "interval": [1.2, 5.0], "pairs": 8}
        md = md_mod.markdown(_config(), _state(recs), recs, verified=verified)
        self.assertIn("- verified gain: +3.1% [+1.2%, +5.0%] over 8 pairs", md)
        md = md_mod.markdown(_config(), _state(recs, verified=verified), recs)
        self.assertIn("+3.1% [+1.2%, +5.0%] over 8 pairs", md)

    def test_min_direction_ranks_the_biggest_decrease_first(self):
        recs = [_rec(0, "baseline", [10.0]), _rec(1, "keep", [9.0], 10.0, "a"),
                _rec(2, "keep", [6.0], 9.0, "b"), _rec(3, "revert", [7.0], 6.0, "c")]
        md = md_mod.markdown(_config("min"), _state(recs, "min"), recs)
        self.assertIn("(lower is better)", md)
        self.assertIn("- best: 6 at iter 2 (measured in its own decision, not re-measured)", md)
        rows = [line for line in md.splitlines() if "better)" in line and line.startswith("| ")]
        self.assertTrue(rows[0].startswith("| 2 | -3 (33.3% better) | 6 | b |"), rows)
        self.assertTrue(rows[1].startswith("| 1 | -1 (10.0% better)"), rows)

    def test_effect_interval_from_a_paired_estimate(self):
        # a record's paired estimate and interval are relative improvements
        # (0.031 = 3.1% better) on either scale (FORMATS.md)
        recs = [_rec(0, "baseline", [100.0]),
                _rec(1, "keep", [103.0], 100.0, "a", estimate=0.031, interval=[0.012, 0.05]),
                _rec(2, "keep", [106.0], 103.0, "b", estimate=0.029, interval=[0.005, 0.05],
                     log_scale=False)]
        md = md_mod.markdown(_config(), _state(recs), recs)
        self.assertIn("| 1 | +3 (3.1% better, [+1.2%, +5.0%]) |", md)
        self.assertIn("| 2 | +3 (2.9% better, [+0.5%, +5.0%]) |", md)

    def test_only_reverts(self):
        recs = only_reverts()
        md = md_mod.markdown(_config(), _state(recs), recs)
        self.assertIn("no iteration was kept.", md)
        self.assertIn("keep 0 · revert 5", md)
        self.assertIn("- best: 50 at iter 0\n", md)
        self.assertIn("- verified gain: nothing was kept, so there is nothing to re-measure", md)

    def test_all_crashes_and_unknown_decisions(self):
        recs = all_crashes() + [_rec(5, "constraint", [3.0], None, "x")]
        md = md_mod.markdown(_config(), _state(recs), recs)
        self.assertIn("- start (baseline): –", md)
        self.assertIn("- best: –", md)
        self.assertIn("crash 4", md)
        self.assertIn("constraint 1", md)

    def test_empty_run(self):
        md = md_mod.markdown(_config(), {}, [])
        self.assertIn("0 iterations", md)
        self.assertIn("no iteration was kept.", md)
        md = md_mod.markdown({}, {}, [])
        self.assertIn("# ratchet report: metric (higher is better)", md)

    def test_table_cells_stay_on_one_line(self):
        recs = [_rec(0, "baseline", [1.0]),
                _rec(1, "keep", [2.0], 1.0, "a | b\nsecond line")]
        md = md_mod.markdown(_config(), _state(recs), recs)
        self.assertIn("a \\| b second line |", md)

    def test_pareto_and_holdout(self):
        config, recs, pareto = two_metrics()
        holdout = {"name": "eval.py", "start": 0.81, "best": 0.84, "gain_pct": 3.7, "held": True}
        md = md_mod.markdown(config, _state(recs, "min"), recs, pareto=pareto, holdout=holdout)
        self.assertIn("## Pareto frontier (2 points)", md)
        self.assertIn("| iter | latency (min) | throughput (max) | hypothesis |", md)
        self.assertIn("| 4 | 17.5 | 97 | h4 |", md)
        self.assertIn("holdout `eval.py`: start 0.81 → best 0.84 (+3.7%): the gain held", md)
        md = md_mod.markdown(config, {}, recs, holdout={"start": 1, "best": 1, "held": False})
        self.assertIn("the gain did NOT hold", md)


# ------------------------------------------------------------- sparkline ---

class SparklineTest(unittest.TestCase):
    def test_levels_and_crashes(self):
        self.assertEqual(trend_mod.sparkline([1, 2, 3, 4, 5, 6, 7, 8]), "▁▂▃▄▅▆▇█")
        self.assertEqual(trend_mod.sparkline([1.0, None, 3.0, float("nan")]), "▁×█×")
        self.assertEqual(trend_mod.sparkline([1, 2, 3, 4, 5, 6, 7, 8], ascii=True), "_.-:=+*#")
        self.assertEqual(trend_mod.sparkline([1, 3, None], ascii=True), "_#x")

    def test_width_keeps_the_most_recent(self):
        self.assertEqual(trend_mod.sparkline(list(range(100)), width=3), "▁▅█")
        self.assertEqual(len(trend_mod.sparkline(list(range(100)))), 20)

    def test_edge_cases(self):
        self.assertEqual(trend_mod.sparkline([]), "")
        self.assertEqual(trend_mod.sparkline([None, None]), "××")
        self.assertEqual(trend_mod.sparkline([5.0, 5.0, 5.0]), "▄▄▄")
        self.assertEqual(trend_mod.sparkline([1e300, -1e300]), "█▁")
        self.assertEqual(trend_mod.sparkline([1, 2], width=0), "")


# ------------------------------------------------------------------ axes ---

class AxisTest(unittest.TestCase):
    def check(self, lo, hi):
        d0, d1, ticks, step = svg_mod.axis(lo, hi)
        self.assertLessEqual(d0, min(lo, hi))
        self.assertGreaterEqual(d1, max(lo, hi))
        self.assertTrue(3 <= len(ticks) <= 12, (lo, hi, ticks))
        for t in ticks:
            self.assertTrue(d0 <= t <= d1)
            self.assertAlmostEqual(t / step, round(t / step), places=6)
        labels = [svg_mod.tick_label(t, step, max(abs(d0), abs(d1))) for t in ticks]
        self.assertEqual(len(set(labels)), len(labels), labels)
        return labels

    def test_round_ticks_over_many_ranges(self):
        self.assertEqual(self.check(97.0, 222.0), ["100", "125", "150", "175", "200", "225"])
        self.check(-5e6, 3e6)
        self.check(1e12, 1.0000001e12)
        self.check(1e-9, 3e-9)
        self.check(0.1, 0.35)
        self.check(-0.02, -0.01)

    def test_zero_range_and_integers(self):
        self.assertEqual(self.check(42.0, 42.0), ["40", "41", "42", "43", "44"])
        self.check(0.0, 0.0)
        d0, d1, ticks, step = svg_mod.axis(0, 0, 10, integer=True)
        self.assertTrue(all(float(t).is_integer() for t in ticks))
        d0, d1, ticks, step = svg_mod.axis(0, 10000, 10, integer=True)
        self.assertEqual(step, 1000)

    def test_big_numbers_use_an_exponent(self):
        labels = self.check(1e12, 3e12)
        self.assertTrue(all("e+12" in label for label in labels), labels)


# ------------------------------------------------------------------ html ---

class HtmlTest(unittest.TestCase):
    def test_self_contained_and_escaped(self):
        recs = run_with_keeps()
        recs[2]["hypothesis"] = '<script>alert("x")</script> & <img src=x onerror=1>'
        recs[2]["reason"] = '"quoted" <b>'
        config = _config(metric_name="t<put>", run_command="bench --x '<y>'")
        page = page_mod.html(config, _state(recs), recs, title="<title>")
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        lowered = page.lower()
        for banned in ("<script", "<img", "<link", "<iframe", "<object", "<embed", "url(", "@import"):
            self.assertNotIn(banned, lowered)
        self.assertNotRegex(lowered, r"<[^>]*\s(src|href|on\w+)=")
        self.assertEqual(re.findall(r"https?://[^\"']+", page), ["http://www.w3.org/2000/svg"])
        self.assertIn("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img", page)
        self.assertIn("&quot;quoted&quot; &lt;b&gt;", page)
        self.assertIn("t&lt;put&gt;", page)
        self.assertIn("<title>&lt;title&gt;</title>", page)

    def test_chart_marks_every_kind_with_a_legend(self):
        recs = run_with_keeps()
        page = page_mod.html(_config(), _state(recs), recs)
        svg = _svg(page)
        self.assertEqual((svg.get("width"), svg.get("height")), tuple(str(v) for v in chart_mod.CHART_SIZE))
        kept = _by_class(svg, "circle", "mk")
        self.assertEqual(len(kept), 3 + 1)                    # 3 keeps + the legend swatch
        self.assertEqual(len(_by_class(svg, "circle", "mr")), 2 + 1)
        self.assertEqual(len(_by_class(svg, "path", "mf")), 2 + 1)  # crash + timeout, in the lane
        self.assertEqual(len(_by_class(svg, "circle", "ms")), 2 + 1)  # invalid + no-change
        self.assertEqual(len(_by_class(svg, "rect", "mb")), 1 + 1)
        texts = " ".join(t.text or "" for t in svg.iter(SVG_NS + "text"))
        for label in ("baseline", "kept", "reverted", "crash / timeout", "each trial",
                      "best so far", "↑ higher is better", "iteration",
                      "throughput (higher is better)", "no score"):
            self.assertIn(label, texts)
        titles = [t.text for t in svg.iter(SVG_NS + "title")]
        self.assertIn("iter 5 · keep · 115 — precompile the regexes", titles)

    def test_points_are_placed_by_value(self):
        recs = run_with_keeps()
        svg = _svg(page_mod.html(_config(), _state(recs), recs))
        plotted = [c for c in _by_class(svg, "circle", "mk") if c.find(SVG_NS + "title") is not None]
        ys = [float(c.get("cy")) for c in plotted]   # iter 2 (105), 5 (115), 7 (118)
        xs = [float(c.get("cx")) for c in plotted]
        self.assertEqual(ys, sorted(ys, reverse=True))
        self.assertEqual(xs, sorted(xs))
        left, top, right, bottom = svg_mod.PLOT_MARGINS
        for x, y in zip(xs, ys):
            self.assertTrue(left < x < chart_mod.CHART_SIZE[0] - right)
            self.assertTrue(top < y < chart_mod.CHART_SIZE[1] - bottom)
        best = _by_class(svg, "path", "bl")[0].get("d")
        steps = [float(v) for v in re.findall(r"V([-\d.]+)", best)]
        self.assertEqual(steps, sorted(steps, reverse=True))   # best so far only rises
        self.assertEqual(len(steps), 3)

    def test_min_direction_and_whiskers(self):
        recs = [_rec(0, "baseline", [10.0, 10.2, 9.8]),
                _rec(1, "keep", [9.0, 9.1, 8.9], 10.0, "metric-unit interval", interval=[8.5, 9.5]),
                _rec(2, "keep", [8.0, 8.1, 7.9], 9.0, "paired", estimate=0.11, interval=[0.05, 0.2]),
                _rec(3, "keep", [7.0, 7.1, 6.9], 8.0, "paired, units", estimate=0.125,
                     interval=[0.0625, 0.1875], log_scale=False)]
        page = page_mod.html(_config("min"), _state(recs, "min"), recs)
        svg = _svg(page)
        texts = " ".join(t.text or "" for t in svg.iter(SVG_NS + "text"))
        self.assertIn("↓ lower is better", texts)
        self.assertIn("interval", texts)
        whiskers = _by_class(svg, "path", "wk")[0].get("d")
        spans = re.findall(r"M([-\d.]+) ([-\d.]+)V([-\d.]+)", whiskers)
        self.assertEqual(len(spans), 3)
        # a relative improvement r of a min metric on the ratio scale means
        # incumbent / (1 + r); on the difference scale incumbent - r * |incumbent|
        ends = [(8.5, 9.5), (9.0 / 1.05, 9.0 / 1.2), (8.0 - 0.5, 8.0 - 1.5)]
        scores = [6.9, 10.2] + [v for pair in ends for v in pair]
        f = svg_mod.Frame(chart_mod.CHART_SIZE, [0, 3], scores, lane=0, x_integer=True)
        for (x, y_lo, y_hi), (a, b) in zip(spans, ends):
            want = sorted([f.y(a), f.y(b)], reverse=True)
            self.assertAlmostEqual(float(y_lo), want[0], delta=0.1)
            self.assertAlmostEqual(float(y_hi), want[1], delta=0.1)

    def test_edge_cases_render(self):
        cases = {
            "empty": ({}, []),
            "baseline only": (None, [_rec(0, "baseline", [5.0, 5.0])]),
            "one iteration": (None, [_rec(0, "baseline", [5.0]), _rec(1, "keep", [6.0], 5.0, "a")]),
            "identical": (None, [_rec(i, "revert" if i else "baseline", [7.0, 7.0], 7.0) for i in range(5)]),
            "all crashes": (None, all_crashes()),
            "huge and negative": (None, [_rec(0, "baseline", [-3e14, -2.9e14]),
                                         _rec(1, "keep", [2e14], -2.95e14, "big"),
                                         _rec(2, "revert", [-1e-3, 1e301], 2e14, "off scale")]),
            "nan and junk": ({"best": float("nan"), "stop": "x"}, [_rec(0, "baseline", [1.0]),
                                    {"iter": "x", "decision": "keep"}, {"decision": None},
                                    _rec(1, "revert", [float("nan"), 2.0], 1.0, avg=float("inf"))]),
        }
        for name, (state, recs) in cases.items():
            with self.subTest(name):
                page = page_mod.html(_config(), state if state is not None else _state(recs), recs)
                svg = _svg(page)
                self.assertEqual(svg.get("width"), str(chart_mod.CHART_SIZE[0]))
                self.assertNotIn("nan", svg.get("viewBox"))
                for el in svg.iter():
                    for attr in ("cx", "cy", "x", "y", "d"):
                        value = el.get(attr) or ""
                        self.assertNotRegex(value, r"nan|inf", (name, el.tag, attr))
                md_mod.markdown(_config(), state or {}, recs)
        page = page_mod.html(_config(), {}, [])
        self.assertIn("no iterations recorded yet", page)

    def test_crashes_without_scores_sit_in_the_lane(self):
        recs = all_crashes()
        svg = _svg(page_mod.html(_config(), _state(recs), recs))
        lane_y = chart_mod.CHART_SIZE[1] - svg_mod.PLOT_MARGINS[3] - chart_mod.LANE / 2
        marks = [m for m in _by_class(svg, "path", "mf") if m.find(SVG_NS + "title") is not None]
        self.assertEqual(len(marks), 4)
        for m in marks:
            y = float(re.match(r"M[-\d.]+ ([-\d.]+)", m.get("d")).group(1))
            self.assertAlmostEqual(y, lane_y, delta=0.1)

    def test_two_metrics_get_a_scatter_with_the_frontier(self):
        config, recs, pareto = two_metrics()
        page = page_mod.html(config, _state(recs, "min"), recs, pareto=pareto)
        svg = _svg(page, chart_mod.SCATTER_ID)
        self.assertEqual(len(_by_class(svg, "circle", "pf")), len(pareto) + 1)
        texts = " ".join(t.text or "" for t in svg.iter(SVG_NS + "text"))
        self.assertIn("latency (lower is better)", texts)
        self.assertIn("throughput (higher is better)", texts)
        self.assertIn("#4", texts)
        self.assertIn("<h2>Pareto frontier</h2>", page)
        # metrics only in the records (no pareto, no declared metrics): still a scatter
        page = page_mod.html(_config("min", metric_name="latency"), {}, recs)
        self.assertIsNotNone(_svg(page, chart_mod.SCATTER_ID))
        # one metric: no scatter
        recs = run_with_keeps()
        self.assertNotIn(chart_mod.SCATTER_ID, page_mod.html(_config(), _state(recs), recs))

    def test_holdout_and_verified_in_the_page(self):
        recs = run_with_keeps()
        page = page_mod.html(_config(), _state(recs), recs,
                           verified={"gain_pct": 12.3, "interval": [9.1, 15.0], "pairs": 8},
                           holdout={"name": "<eval>", "start": 1.0, "best": 1.1, "held": True})
        self.assertIn("+12.3% [+9.1%, +15.0%]", page)
        self.assertIn("8 pairs", page)
        self.assertIn("holdout &lt;eval&gt;: start 1 → best 1.1: the gain held", page)
        self.assertIn("not yet", page_mod.html(_config(), _state(recs), recs))

    def test_ten_thousand_records_stay_small(self):
        recs = large_run()
        page = page_mod.html(_config(), _state(recs), recs)
        self.assertLess(len(page.encode()), 2_000_000)
        svg = _svg(page)
        self.assertLess(len(ET.tostring(svg)), 1_000_000)
        rows = page.count("<tr><td")
        self.assertEqual(rows, page_mod.TABLE_ROWS)
        self.assertIn(f"{len(recs) - page_mod.TABLE_ROWS:,} of {len(recs):,} rows left out", page)
        self.assertIn(f">{len(recs) - 1}</td>", page)    # the latest row is shown
        self.assertIn(">10000</text>", page)             # the x axis reaches the end
        self.assertIsNone(svg.find(f".//{SVG_NS}title"))  # no per-point tooltips at this size
        md = md_mod.markdown(_config(), _state(recs), recs)
        self.assertLess(len(md), 4000)


# --------------------------------------------------------------- browser ---

def _find_browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def decode_png(data):
    """(width, height, rows of RGB tuples) of an 8-bit RGB/RGBA, non-interlaced PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {color}, interlace {interlace}")
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ftype == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        elif ftype != 0:
            raise ValueError(f"bad PNG filter type {ftype}")
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def _hex_rgb(color):
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def _close(pixel, rgb, tol=12):
    return all(abs(p - c) <= tol for p, c in zip(pixel, rgb))


def _colour_counts(rows, x0, y0, x1, y1):
    """How many pixels of each colour the box [x0, x1) x [y0, y1) holds."""
    counts = collections.Counter()
    for row in rows[y0:y1]:
        counts.update(row[x0:x1])
    return counts


def _count_close(counts, rgb, tol=12):
    return sum(n for colour, n in counts.items() if _close(colour, rgb, tol))


class DecodePngTest(unittest.TestCase):
    def _png(self, width, height, bpp, filtered_rows):
        color = 2 if bpp == 3 else 6
        raw = b"".join(bytes([f]) + bytes(row) for f, row in filtered_rows)

        def chunk(kind, body):
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    def test_every_filter_type(self):
        # 2x2 RGB image whose rows use filters 0..4 against a hand-computed truth
        truth = [[(10, 20, 30), (40, 50, 60)], [(15, 25, 35), (100, 0, 255)],
                 [(1, 2, 3), (4, 5, 6)], [(200, 100, 50), (7, 8, 9)], [(9, 9, 9), (250, 1, 128)]]
        flat = [bytes(itertools.chain(*row)) for row in truth]

        def paeth(a, b, c):
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            return a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        filtered = []
        for y, row in enumerate(flat):
            prev = flat[y - 1] if y else bytes(6)
            ftype = y
            out = []
            for i, v in enumerate(row):
                a = row[i - 3] if i >= 3 else 0
                b, c = prev[i], prev[i - 3] if i >= 3 else 0
                pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][ftype]
                out.append((v - pred) & 255)
            filtered.append((ftype, out))
        w, h, rows = decode_png(self._png(2, 5, 3, filtered))
        self.assertEqual((w, h), (2, 5))
        self.assertEqual(rows, truth)

    def test_rgba_drops_alpha(self):
        w, h, rows = decode_png(self._png(1, 1, 4, [(0, [1, 2, 3, 4])]))
        self.assertEqual(rows, [[(1, 2, 3)]])


class BrowserRenderTest(unittest.TestCase):
    """Renders the page in real headless Chromium and reads the screenshot."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-default-apps", "--no-pings",
             "--disable-domain-reliability", "--disable-breakpad",
             # no name resolution and no direct connection: the page is a local file
             "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
             "--hide-scrollbars", "--force-device-scale-factor=1"]

    @classmethod
    def setUpClass(cls):
        cls.browser = _find_browser()
        if cls.browser is None:
            if os.environ.get("CI") == "true":
                raise AssertionError("CI=true but no Chromium/Chrome binary was found: "
                                     "install Debian's `chromium` package in .ci/run")
            raise unittest.SkipTest("no Chromium/Chrome binary on PATH or at /usr/bin/chromium "
                                    "(apt-get install chromium); set CI=true to make this a failure")
        cls.tmp = tempfile.mkdtemp(prefix="ratchet-report-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def render(self, name, page, window=(1200, 900)):
        html_path = os.path.join(self.tmp, f"{name}.html")
        png_path = os.path.join(self.tmp, f"{name}.png")
        with open(html_path, "w", encoding="utf-8") as fh:
            fh.write(page)
        profile = tempfile.mkdtemp(prefix="profile-", dir=self.tmp)
        cmd = [self.browser, *self.FLAGS, f"--user-data-dir={profile}", f"--screenshot={png_path}",
               f"--window-size={window[0]},{window[1]}", "file://" + html_path]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)   # the browser's own process group only
            proc.communicate()
            self.fail(f"{self.browser} did not finish the screenshot within 90 s")
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        if not os.path.exists(png_path):
            self.fail(f"{self.browser} wrote no screenshot (exit {proc.returncode}): "
                      f"{err.decode(errors='replace')[-800:]}")
        with open(png_path, "rb") as fh:
            decoded = decode_png(fh.read())
        # the screenshot stays for a person to look at, in one folder that each
        # run overwrites: $RATCHET_SCREENSHOT_DIR, else <tmp>/ratchet-report-screenshots
        keep_dir = os.environ.get("RATCHET_SCREENSHOT_DIR") or os.path.join(
            tempfile.gettempdir(), "ratchet-report-screenshots")
        os.makedirs(keep_dir, exist_ok=True)
        kept = shutil.copy(png_path, os.path.join(keep_dir, os.path.basename(png_path)))
        print(f"\n  screenshot: {kept}")
        return decoded

    def assert_not_blank(self, width, rows):
        pixels = [p for row in rows for p in row[::3]]
        inked = sum(1 for p in pixels if min(p) < 235)
        self.assertGreater(inked / len(pixels), 0.02, "the screenshot is (almost) blank")
        self.assertGreater(len(set(pixels)), 50, "the screenshot has almost no colours")

    def assert_marks_at(self, rows, svg, offset, tag, cls, color):
        """Every titled mark of `cls` shows `color` at its page position."""
        ox, oy = offset
        found = 0
        for el in _by_class(svg, tag, cls):
            if el.find(SVG_NS + "title") is None:
                continue
            if tag == "circle":
                cx, cy = float(el.get("cx")), float(el.get("cy"))
            elif tag == "rect":
                cx = float(el.get("x")) + float(el.get("width")) / 2
                cy = float(el.get("y")) + float(el.get("height")) / 2
            else:  # the crash cross: its path starts at its centre
                x, y = re.match(r"M([-\d.]+) ([-\d.]+)", el.get("d")).groups()
                cx, cy = float(x), float(y)
            px, py = round(ox + cx), round(oy + cy)
            near = [rows[py + dy][px + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            self.assertTrue(any(_close(p, _hex_rgb(color)) for p in near),
                            f"{cls} mark expected at page ({px}, {py}) in {color}, saw {near[4]}")
            found += 1
        return found

    def test_metric_chart_renders_where_the_page_says(self):
        recs = run_with_keeps()
        page = page_mod.html(_config(), _state(recs), recs,
                           verified={"gain_pct": 17.2, "interval": [15.0, 19.5], "pairs": 6})
        width, height, rows = self.render("report", page)
        self.assertEqual((width, height), (1200, 900))
        self.assert_not_blank(width, rows)
        svg = _svg(page)
        c = svg_mod.COLORS
        self.assertEqual(self.assert_marks_at(rows, svg, page_mod.CHART_OFFSET, "circle", "mk", c["kept"]), 3)
        self.assertEqual(self.assert_marks_at(rows, svg, page_mod.CHART_OFFSET, "circle", "mr", c["reverted"]), 2)
        self.assertEqual(self.assert_marks_at(rows, svg, page_mod.CHART_OFFSET, "rect", "mb", c["baseline"]), 1)
        self.assertEqual(self.assert_marks_at(rows, svg, page_mod.CHART_OFFSET, "path", "mf", c["failed"]), 2)
        # the plotted colours live inside the chart's box, and nothing of it above the chart
        ox, oy = page_mod.CHART_OFFSET
        w, h = chart_mod.CHART_SIZE
        inside = _colour_counts(rows, ox, oy, ox + w, oy + h)
        above = _colour_counts(rows, 0, 0, width, oy)
        for name in ("kept", "reverted", "failed", "best"):
            rgb = _hex_rgb(c[name])
            self.assertGreater(_count_close(inside, rgb), 20, f"too few {name} pixels in the chart")
            self.assertEqual(_count_close(above, rgb, 6), 0, f"{name} pixels above the chart: the layout moved")

    def test_the_file_the_cli_writes_renders(self):
        """A real run through the CLI (keeps, a revert, a crash), `report --html`,
        then the very file it wrote rendered and checked like the page above."""
        from tests.util import INIT, cli, make_repo, write
        repo = make_repo(self)

        def ok(*argv):
            code, out, err = cli(*argv, cwd=repo)
            self.assertEqual(code, 0, f"{argv}: {err}{out}")
            return out
        ok(*INIT, "--trials", "2")
        ok("baseline")
        for value, hypothesis in (("12", "raise it"), ("11", "lower it"), ("x", "break it"), ("15", "raise more")):
            write(repo, "value.txt", value + "\n")
            ok("iterate", "--hypothesis", hypothesis)
        target = os.path.join(self.tmp, "cli-report.html")
        self.assertIn(f"HTML report: {target}", ok("report", "--html", target))
        with open(target, encoding="utf-8") as fh:
            page = fh.read()
        width, height, rows = self.render("cli-report", page)
        self.assert_not_blank(width, rows)
        svg = _svg(page)
        c = svg_mod.COLORS
        at = page_mod.CHART_OFFSET
        self.assertEqual(self.assert_marks_at(rows, svg, at, "circle", "mk", c["kept"]), 2)
        self.assertEqual(self.assert_marks_at(rows, svg, at, "circle", "mr", c["reverted"]), 1)
        self.assertEqual(self.assert_marks_at(rows, svg, at, "rect", "mb", c["baseline"]), 1)
        self.assertEqual(self.assert_marks_at(rows, svg, at, "path", "mf", c["failed"]), 1)
        ox, oy = at
        inside = _colour_counts(rows, ox, oy, ox + chart_mod.CHART_SIZE[0], oy + chart_mod.CHART_SIZE[1])
        self.assertGreater(_count_close(inside, _hex_rgb(c["best"])), 20, "no best-so-far line in the chart")

    def test_pareto_scatter_renders(self):
        config, recs, pareto = two_metrics()
        page = page_mod.html(config, _state(recs, "min"), recs, pareto=pareto)
        width, height, rows = self.render("pareto", page, window=(1200, 1200))
        self.assert_not_blank(width, rows)
        chart_bottom = page_mod.CHART_OFFSET[1] + chart_mod.CHART_SIZE[1]
        below = _colour_counts(rows, 0, chart_bottom + 40, page_mod.CHART_OFFSET[0] + chart_mod.SCATTER_SIZE[0], height)
        self.assertGreater(_count_close(below, _hex_rgb(svg_mod.COLORS["best"]), 8), 100,
                           "no Pareto frontier ring drawn under the metric chart")
        self.assertGreater(_count_close(below, _hex_rgb(svg_mod.COLORS["kept"])), 50,
                           "no kept points in the scatter")


if __name__ == "__main__":
    unittest.main()
