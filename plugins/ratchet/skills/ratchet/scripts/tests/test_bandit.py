import json
import math
import os
import random
import tempfile
import unittest

from ratchetlib.learn import bandit
from ratchetlib.core.errors import UsageError


class RewardTest(unittest.TestCase):
    def test_non_keeps_earn_nothing(self):
        for outcome in ("revert", "crash", "timeout", "invalid", "no-change"):
            self.assertEqual(bandit.reward(outcome, 0.5), 0.0)

    def test_a_keep_earns_half_plus_a_bounded_effect_bonus(self):
        self.assertEqual(bandit.reward("keep"), 0.5)
        self.assertEqual(bandit.reward("keep", float("nan")), 0.5)
        self.assertEqual(bandit.reward("keep", -0.01), 0.5)
        self.assertAlmostEqual(bandit.reward("keep", 0.05), 0.75)
        self.assertEqual(bandit.reward("keep", 0.10), 1.0)
        self.assertEqual(bandit.reward("keep", 3.0), 1.0)

    def test_unknown_outcome(self):
        with self.assertRaisesRegex(UsageError, "^unknown outcome 'baseline'; outcomes: keep, "):
            bandit.reward("baseline")


class SelectionTest(unittest.TestCase):
    def test_untried_arms_first_in_configured_order(self):
        state = bandit.new_state()
        seen = []
        for _ in bandit.DEFAULT_ARMS:
            arm = bandit.suggest(state)
            seen.append(arm)
            state = bandit.update(state, arm, "revert")
        self.assertEqual(seen, list(bandit.DEFAULT_ARMS))

    def test_ucb1_after_every_arm_is_tried(self):
        state = bandit.new_state(["a", "b", "c"])
        state = bandit.update(state, "a", "keep", 0.10)      # reward 1
        state = bandit.update(state, "b", "revert")          # reward 0
        state = bandit.update(state, "c", "keep")            # reward 0.5
        bonus = math.sqrt(2 * math.log(3) / 1)
        self.assertAlmostEqual(bandit.ucb(state, "a"), 1 + bonus)
        self.assertAlmostEqual(bandit.ucb(state, "c"), 0.5 + bonus)
        self.assertEqual(bandit.suggest(state), "a")
        # Pulling "a" again without reward shrinks its bonus and mean: "c" wins.
        state = bandit.update(state, "a", "crash")
        self.assertAlmostEqual(bandit.ucb(state, "a"), 0.5 + math.sqrt(2 * math.log(4) / 2))
        self.assertEqual(bandit.suggest(state), "c")

    def test_ties_go_to_the_earlier_arm(self):
        state = bandit.new_state(["x", "y"])
        state = bandit.update(bandit.update(state, "y", "revert"), "x", "revert")
        self.assertEqual(bandit.suggest(state), "x")

    def test_the_paying_arm_gets_most_pulls(self):
        rng = random.Random(5)
        keep_rate = {"algorithm": 0.5, "rewrite": 0.05, "parallelism": 0.1}
        state = bandit.new_state(list(keep_rate))
        for _ in range(300):
            arm = bandit.suggest(state)
            kept = rng.random() < keep_rate[arm]
            state = bandit.update(state, arm, "keep" if kept else "revert", 0.03 if kept else None)
        pulls = {a: s["n"] for a, s in state["stats"].items()}
        self.assertEqual(state["total"], 300)
        self.assertGreater(pulls["algorithm"], pulls["rewrite"] + pulls["parallelism"])

    def test_every_outcome_counts_as_a_pull(self):
        state = bandit.new_state(["a"])
        for outcome in bandit.OUTCOMES:
            state = bandit.update(state, "a", outcome, 0.02)
        self.assertEqual(state["stats"]["a"]["n"], len(bandit.OUTCOMES))
        self.assertEqual(state["stats"]["a"]["keeps"], 1)
        self.assertAlmostEqual(state["stats"]["a"]["reward"], 0.6)
        self.assertEqual(state["total"], len(bandit.OUTCOMES))

    def test_replaying_an_iteration_counts_it_once(self):
        state = bandit.new_state(["a", "b"])
        state = bandit.update(state, "a", "keep", 0.05, iteration=1)
        again = bandit.update(state, "a", "keep", 0.05, iteration=1)
        self.assertIs(again, state)
        state = bandit.update(state, "b", "crash", iteration=2)
        self.assertEqual((state["total"], state["last_iter"]), (2, 2))
        self.assertEqual(bandit.update(state, "a", "revert", iteration=1), state)

    def test_check_arm(self):
        state = bandit.new_state(["a", "b"])
        bandit.require_arm(state, "b")
        with self.assertRaisesRegex(UsageError, r"^unknown arm 'c'; arms: a, b$"):
            bandit.require_arm(state, "c")

    def test_update_does_not_modify_its_input(self):
        state = bandit.new_state(["a", "b"])
        before = json.dumps(state, sort_keys=True)
        bandit.update(state, "a", "keep", 0.05)
        self.assertEqual(json.dumps(state, sort_keys=True), before)

    def test_unknown_arm_lists_the_arms(self):
        state = bandit.new_state()
        with self.assertRaisesRegex(UsageError, "^unknown arm 'magic'; arms: algorithm, "
                                                "data-structure, micro-optimization, "
                                                "parallelism, memory-layout, rewrite$"):
            bandit.update(state, "magic", "keep")

    def test_bad_arm_lists(self):
        with self.assertRaisesRegex(UsageError, "at least one arm"):
            bandit.new_state([])
        with self.assertRaisesRegex(UsageError, "arm names repeat"):
            bandit.new_state(["a", "a"])
        with self.assertRaisesRegex(UsageError, "bad arm name 'two words'"):
            bandit.new_state(["two words"])

    def test_explain(self):
        state = bandit.new_state(["a"])
        self.assertEqual(bandit.explain(state, "a"), "a (untried)")
        state = bandit.update(bandit.update(state, "a", "keep", 0.1), "a", "revert")
        self.assertEqual(bandit.explain(state, "a"), "a (2 tries, 1 kept, mean reward 0.50)")


class PersistenceTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "bandit.json")

    def tearDown(self):
        self.tmp.cleanup()

    def test_missing_file_is_a_fresh_bandit(self):
        self.assertEqual(bandit.load(self.path), bandit.new_state())
        self.assertEqual(bandit.load(self.path, ["p", "q"])["arms"], ["p", "q"])

    def test_round_trip_keeps_the_same_choices(self):
        state = bandit.new_state()
        rng = random.Random(1)
        for _ in range(20):
            arm = bandit.suggest(state)
            state = bandit.update(state, arm, rng.choice(bandit.OUTCOMES), rng.random() / 10)
        bandit.save(self.path, state)
        with open(self.path, encoding="utf-8") as handle:
            self.assertEqual(json.load(handle)["format"], 1)
        loaded = bandit.load(self.path)
        self.assertEqual(loaded, state)
        self.assertEqual(bandit.suggest(loaded), bandit.suggest(state))
        self.assertEqual(os.listdir(self.tmp.name), ["bandit.json"])

    def test_a_changed_arm_list_keeps_known_statistics(self):
        state = bandit.update(bandit.new_state(["a", "b"]), "a", "keep", 0.1)
        state = bandit.update(state, "b", "revert")
        bandit.save(self.path, state)
        loaded = bandit.load(self.path, ["a", "c"])
        self.assertEqual(loaded["arms"], ["a", "c"])
        self.assertEqual(loaded["stats"]["a"], {"n": 1, "reward": 1.0, "keeps": 1})
        self.assertEqual(loaded["stats"]["c"]["n"], 0)
        self.assertEqual(loaded["total"], 1)
        self.assertEqual(bandit.suggest(loaded), "c")

    def test_the_replay_guard_survives_a_reload(self):
        state = bandit.update(bandit.new_state(["a"]), "a", "keep", 0.1, iteration=7)
        bandit.save(self.path, state)
        loaded = bandit.load(self.path)
        self.assertEqual(loaded["last_iter"], 7)
        self.assertEqual(bandit.update(loaded, "a", "keep", 0.1, iteration=7), loaded)

    def test_damaged_or_newer_files_are_one_line_errors(self):
        with open(self.path, "w", encoding="utf-8") as handle:
            json.dump({"format": 1, "arms": ["a"]}, handle)
        with self.assertRaisesRegex(UsageError, "not a bandit state"):
            bandit.load(self.path)
        with open(self.path, "w", encoding="utf-8") as handle:
            json.dump({"format": 2}, handle)
        with self.assertRaisesRegex(UsageError, "format 2, newer than this ratchet"):
            bandit.load(self.path)


if __name__ == "__main__":
    unittest.main()
