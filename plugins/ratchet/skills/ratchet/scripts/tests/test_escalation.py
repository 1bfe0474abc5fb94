import json
import unittest

from ratchetlib.core import escalation
from ratchetlib.core.errors import UsageError


def run(outcomes, config=None, esc=None):
    """Levels after each outcome (True = kept)."""
    esc = esc or escalation.initial()
    levels = []
    for kept in outcomes:
        esc = escalation.advance(esc, kept, config or {})
        levels.append(esc["level"])
    return levels, esc


class TransitionsTest(unittest.TestCase):
    def test_default_ladder(self):
        levels, esc = run([False] * 8)
        self.assertEqual(levels, ["NORMAL", "NORMAL", "REFINE", "REFINE", "PIVOT",
                                  "PIVOT", "SEARCH", "HALT"])
        self.assertEqual(esc["stop"], "escalation halt: 3 pivots without progress "
                                      "(8 iterations without a keep)")

    def test_only_halt_carries_a_stop_reason(self):
        esc = escalation.initial()
        for _ in range(7):
            esc = escalation.advance(esc, False, {})
            self.assertIsNone(esc["stop"])

    def test_a_keep_resets_from_any_level(self):
        for misses in range(1, 9):
            _, esc = run([False] * misses)
            after = escalation.advance(esc, True, {})
            self.assertEqual(after, escalation.initial())
        levels, _ = run([False] * 4 + [True] + [False] * 3)
        self.assertEqual(levels, ["NORMAL", "NORMAL", "REFINE", "REFINE", "NORMAL",
                                  "NORMAL", "NORMAL", "REFINE"])

    def test_counts_are_configurable(self):
        config = {"escalation": {"refine": 1, "pivot": 2, "search_pivots": 1, "halt_pivots": 2}}
        levels, esc = run([False] * 4, config)
        self.assertEqual(levels, ["REFINE", "PIVOT", "SEARCH", "HALT"])
        self.assertIsNotNone(esc["stop"])
        levels, _ = run([False] * 11, {"escalation": {"halt_pivots": 6}})
        self.assertEqual(levels[4:], ["PIVOT", "PIVOT", "SEARCH", "SEARCH", "SEARCH", "SEARCH",
                                      "HALT"])

    def test_step_does_not_modify_its_input(self):
        esc = escalation.initial()
        escalation.advance(esc, False, {})
        self.assertEqual(esc, escalation.initial())

    def test_bad_settings_are_one_line_errors(self):
        with self.assertRaisesRegex(UsageError, r"^escalation.refine must be a whole number >= 1"):
            escalation.advance(None, False, {"escalation": {"refine": 0}})
        with self.assertRaisesRegex(UsageError, r"^escalation.pivot must be"):
            escalation.advance(None, False, {"escalation": {"pivot": "5"}})
        with self.assertRaisesRegex(UsageError, r"^unknown escalation setting 'halt'; known: "):
            escalation.advance(None, False, {"escalation": {"halt": 2}})
        with self.assertRaisesRegex(UsageError, r"^unknown escalation level 'PANIC'"):
            escalation.directive({"level": "PANIC"})


class PersistenceTest(unittest.TestCase):
    def test_a_restart_continues_where_it_was(self):
        outcomes = [False] * 6 + [True] + [False] * 8
        straight, _ = run(outcomes)
        for cut in range(len(outcomes)):
            _, esc = run(outcomes[:cut])
            restored = json.loads(json.dumps(esc))
            resumed, _ = run(outcomes[cut:], esc=restored)
            self.assertEqual(straight[:cut] + resumed, straight, f"restart after {cut}")

    def test_missing_state_starts_at_normal(self):
        self.assertEqual(escalation.advance(None, False, {})["level"], "NORMAL")
        self.assertEqual(escalation.directive(None), escalation.directive(escalation.initial()))


class DirectiveTest(unittest.TestCase):
    def test_each_level_has_a_short_concrete_directive(self):
        states = []
        esc = escalation.initial()
        states.append(esc)
        for _ in range(8):
            esc = escalation.advance(esc, False, {})
            states.append(esc)
        texts = {}
        for s in states:  # the directive on entering each level
            texts.setdefault(s["level"], escalation.directive(s))
        self.assertEqual(set(texts), set(escalation.LEVELS))
        expect = {"NORMAL": "one focused change", "REFINE": "smaller steps",
                  "PIVOT": "different mechanism", "SEARCH": "list 3 untried directions",
                  "HALT": "stop"}
        for level, text in texts.items():
            self.assertTrue(text.startswith(level), text)
            self.assertIn(expect[level], text)
            self.assertNotIn("\n", text)
            self.assertLess(len(text), 160)
        self.assertIn("(3 without a keep)", texts["REFINE"])
        self.assertIn("(2 pivots failed)", texts["SEARCH"])


if __name__ == "__main__":
    unittest.main()
