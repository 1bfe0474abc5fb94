import copy
import json
import unittest

from ratchetlib.core import memory as mem_mod
from ratchetlib.core.state import RunState
from ratchetlib.learn import hints
from ratchetlib.core.errors import UsageError

CONFIG = {"direction": "max"}


def record(i, decision, hypothesis="", delta=None, incumbent=100.0, **extra):
    return {"iter": i, "decision": decision, "hypothesis": hypothesis,
            "delta": delta, "incumbent": incumbent, **extra}


def fold(records, config=CONFIG, memory=None):
    for r in records:
        memory = mem_mod.update_memory(memory, r, config)
    return memory


class EffectTest(unittest.TestCase):
    def test_estimate_is_preferred_over_delta(self):
        r = record(1, "keep", delta=5.0, estimate=0.031)
        self.assertEqual(mem_mod.effect(r, "max"), 0.031)

    def test_delta_is_relative_to_the_incumbent_and_oriented(self):
        self.assertAlmostEqual(mem_mod.effect(record(1, "keep", delta=2.0), "max"), 0.02)
        self.assertAlmostEqual(mem_mod.effect(record(1, "keep", delta=-2.0), "min"), 0.02)
        self.assertAlmostEqual(mem_mod.effect(record(1, "keep", delta=2.0, incumbent=-50.0), "max"), 0.04)

    def test_unknown_when_figures_are_missing(self):
        self.assertIsNone(mem_mod.effect(record(1, "crash"), "max"))
        self.assertIsNone(mem_mod.effect(record(1, "keep", delta=1.0, incumbent=0.0), "max"))
        self.assertIsNone(mem_mod.effect(record(1, "keep", delta=float("nan")), "max"))


class UpdateMemoryTest(unittest.TestCase):
    def test_input_is_not_modified_and_baseline_is_not_counted(self):
        mem = fold([record(1, "revert", "a", -1.0)])
        before = copy.deepcopy(mem)
        after = mem_mod.update_memory(mem, record(2, "keep", "b", 1.0), CONFIG)
        self.assertEqual(mem, before)
        self.assertEqual(after["records"], 2)
        self.assertEqual(mem_mod.update_memory(after, record(0, "baseline"), CONFIG), after)

    def test_counters(self):
        mem = fold([record(1, "keep", "a", 1.0), record(2, "revert", "b", -1.0),
                    record(3, "crash", "c"), record(4, "timeout", "d")])
        self.assertEqual(mem["since_keep"], 3)
        self.assertEqual(mem["failure_streak"], 2)
        self.assertEqual(mem["last_failure"], "timeout")
        self.assertEqual([r["iter"] for r in mem["recent"]], [1, 2, 3, 4])
        self.assertEqual(mem["reverted"], [{"iter": 2, "hypothesis": "b"}])

    def test_memory_is_bounded_whatever_the_history(self):
        records = [record(i, ("keep", "revert", "crash")[i % 3], "x" * 1000, 0.5)
                   for i in range(1, 10001)]
        mem = fold(records)
        self.assertEqual(mem["records"], 10000)
        self.assertEqual(len(mem["reverted"]), mem_mod.REVERTED_CAP)
        self.assertEqual(len(mem["recent"]), mem_mod.RECENT)
        self.assertLess(len(json.dumps(mem)), 6000)
        self.assertEqual(mem["reverted"][-1]["iter"], 10000)  # 10000 % 3 == 1: a revert


class HintsTest(unittest.TestCase):
    def test_no_history_no_hints(self):
        self.assertEqual(hints.hints(None, CONFIG, RunState()), [])
        self.assertEqual(hints.hints(mem_mod.new_memory(), CONFIG, RunState()), [])

    def test_failure_streak(self):
        mem = fold([record(1, "crash", "a")])
        self.assertFalse(any("failure streak" in h for h in hints.hints(mem, CONFIG, RunState())))
        mem = fold([record(2, "timeout", "b")], memory=mem)
        found = [h for h in hints.hints(mem, CONFIG, RunState()) if h.startswith("failure streak")]
        self.assertEqual(len(found), 1)
        self.assertIn("2 crashes/timeouts in a row (last: timeout)", found[0])
        mem = fold([record(3, "revert", "c", -1.0)], memory=mem)
        self.assertFalse(any("failure streak" in h for h in hints.hints(mem, CONFIG, RunState())))

    def test_plateau_after_k_iterations_without_a_keep(self):
        config = {"direction": "max", "hints": {"plateau_after": 3}}
        mem = fold([record(1, "keep", "a", 1.0), record(2, "revert", "b", -1.0),
                    record(3, "revert", "c", -1.0)], config)
        self.assertFalse(any(h.startswith("plateau") for h in hints.hints(mem, config, RunState())))
        mem = fold([record(4, "no-change", "d")], config, mem)
        self.assertIn("plateau: no keep in the last 3 iterations; stop tuning this direction "
                      "and try a different mechanism.", hints.hints(mem, config, RunState()))

    def test_plateau_when_recent_keeps_are_below_the_detectable_effect(self):
        mem = fold([record(1, "keep", "a", 0.5), record(2, "keep", "b", 0.8)])
        plateau = [h for h in hints.hints(mem, CONFIG, RunState(detectable_effect=0.02))
                   if h.startswith("plateau")]
        self.assertEqual(plateau, ["plateau: the last 2 keeps were each below the detectable "
                                   "effect (2.0%); aim for a bigger change."])
        # Without the noise calibration there is nothing to compare against.
        self.assertFalse(any(h.startswith("plateau") for h in hints.hints(mem, CONFIG, RunState())))
        # One keep at or above the detectable effect ends it.
        mem = fold([record(3, "keep", "c", 3.0)], memory=mem)
        self.assertFalse(any(h.startswith("plateau")
                             for h in hints.hints(mem, CONFIG, RunState(detectable_effect=0.02))))

    def test_biggest_win_names_its_hypothesis(self):
        mem = fold([record(1, "keep", "small tweak", 1.0), record(2, "keep", "use a heap", 4.0),
                    record(3, "keep", "another tweak", 2.0)])
        self.assertIn('biggest win so far: iter 2 (+4.0%): "use a heap"; build on that mechanism.',
                      hints.hints(mem, CONFIG, RunState()))

    def test_biggest_win_respects_a_min_metric(self):
        config = {"direction": "min"}
        mem = fold([record(1, "keep", "faster parse", -3.0), record(2, "keep", "slower?", -1.0)],
                   config)
        self.assertEqual(mem["best_win"]["hypothesis"], "faster parse")

    def test_recently_reverted_to_avoid_newest_first(self):
        mem = fold([record(i, "revert", f"idea {i}", -1.0) for i in range(1, 6)])
        avoid = [h for h in hints.hints(mem, CONFIG, RunState()) if h.startswith("recently reverted")]
        self.assertEqual(avoid, ['recently reverted, do not repeat: "idea 5"; "idea 4"; "idea 3"'])

    def test_a_retried_reverted_idea_is_named_once(self):
        mem = fold([record(1, "revert", "idea a", -1.0), record(2, "revert", "idea b", -1.0),
                    record(3, "revert", "idea a", -1.0)])
        avoid = [h for h in hints.hints(mem, CONFIG, RunState()) if h.startswith("recently reverted")]
        self.assertEqual(avoid, ['recently reverted, do not repeat: "idea a"; "idea b"'])

    def test_at_most_four_one_line_hints_most_urgent_first(self):
        config = {"direction": "max", "hints": {"plateau_after": 2}}
        mem = fold([record(1, "keep", "win", 5.0), record(2, "revert", "loss\nwith newline", -1.0),
                    record(3, "crash", "c"), record(4, "crash", "d")], config)
        found = hints.hints(mem, config, RunState())
        self.assertEqual([h.split(":")[0] for h in found],
                         ["failure streak", "plateau", "recently reverted, do not repeat",
                          "biggest win so far"])
        self.assertTrue(all("\n" not in h and len(h) < 200 for h in found))

    def test_bad_settings_are_a_one_line_error(self):
        with self.assertRaisesRegex(UsageError, r"^hints.plateau_after must be a whole number"):
            hints.hints(None, {"hints": {"plateau_after": 0}}, RunState())


class SimilarRevertedTest(unittest.TestCase):
    def setUp(self):
        self.mem = fold([record(1, "revert", "Cache the parsed config in a dict", -1.0),
                         record(2, "revert", "Unroll the inner loop of matmul", -1.0)])

    def test_case_whitespace_and_punctuation_do_not_matter(self):
        self.assertEqual(hints.similar_reverted("  cache THE parsed   config in a dict!", self.mem),
                         ("Cache the parsed config in a dict", 1.0))

    def test_a_close_variant_is_caught_with_its_ratio(self):
        text, ratio = hints.similar_reverted("cache the parsed configs in a dictionary", self.mem)
        self.assertEqual(text, "Cache the parsed config in a dict")
        self.assertGreaterEqual(ratio, 0.75)
        self.assertLess(ratio, 1.0)

    def test_a_different_idea_is_not(self):
        self.assertIsNone(hints.similar_reverted("vectorize the tokenizer with numpy", self.mem))
        self.assertIsNone(hints.similar_reverted("", self.mem))
        self.assertIsNone(hints.similar_reverted("anything", mem_mod.new_memory()))

    def test_threshold_is_respected(self):
        query = "unroll the outer loop of matmul twice"
        _, ratio = hints.similar_reverted(query, self.mem, threshold=0.5)
        self.assertIsNone(hints.similar_reverted(query, self.mem, threshold=ratio + 0.01))

    def test_warning_line(self):
        warning = hints.similarity_warning("unroll the inner loop of matmul", self.mem)
        self.assertEqual(warning, 'warning: this hypothesis is 100% similar to one already '
                                  'reverted: "Unroll the inner loop of matmul"')
        self.assertIsNone(hints.similarity_warning("switch to mmap", self.mem))


if __name__ == "__main__":
    unittest.main()
