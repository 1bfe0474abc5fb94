import random
import unittest

from ratchetlib.core import escalation
from ratchetlib.core import memory as mem_mod
from ratchetlib.core.state import RunState
from ratchetlib.learn import bandit, hints, program

CONFIG = {"format": 1, "run_command": "python3 bench.py", "direction": "max",
          "metric_name": "throughput", "report_source": "stdout", "iterations": 30,
          "instructions": "Do not weaken any assertion.", "instructions_file": None,
          "editable": ["src/"], "protect": [".ratchet/", "bench.py"]}
STATE = {"format": 1, "iteration": 4, "baseline": 100.0, "best": 123.4, "best_iter": 3,
         "incumbent_score": 123.4, "since_keep": 1, "keeps": 2, "reverts": 1, "crashes": 1,
         "stop": None}


def records(n, seed=0, hypothesis_length=60):
    rng = random.Random(seed)
    for i in range(1, n + 1):
        decision = rng.choice(("keep", "revert", "revert", "crash", "timeout", "no-change"))
        yield {"iter": i, "decision": decision, "delta": rng.uniform(-3, 3), "incumbent": 100.0,
               "hypothesis": f"idea {i}: " + "x" * rng.randint(0, hypothesis_length),
               "arm": "algorithm"}


def inputs(n, config=CONFIG, state=STATE, **overrides):
    memory, esc, band = None, escalation.initial(), bandit.new_state()
    for record in records(n, **overrides):
        memory = mem_mod.update_memory(memory, record, config)
        esc = escalation.advance(esc, record["decision"] == "keep", config)
        band = bandit.update(band, record["arm"], record["decision"],
                             mem_mod.effect(record, config["direction"]))
    arm = bandit.explain(band, bandit.suggest(band))
    return memory, esc, arm


class RenderTest(unittest.TestCase):
    def test_the_document_holds_what_a_resume_needs(self):
        memory, esc, arm = inputs(4)
        state = {**STATE, "verified": {"gain_pct": 3.1, "interval": [1.2, 5.0], "pairs": 8}}
        ideas = [{"id": 3, "text": "try a trie"}, {"id": 5, "text": "batch the writes"}]
        doc = program.render(CONFIG, state, memory, ["plateau: x", "biggest win so far: y"],
                             esc, arm, ideas, None)
        for expected in ("Maximize `throughput` from `python3 bench.py` (read from stdout).",
                         "Iteration 4 of 30: 2 kept, 1 reverted, 1 crashed; 1 since the last keep.",
                         "Run instructions: Do not weaken any assertion.",
                         "- editable: src/", "- protected: .ratchet/, bench.py",
                         "Baseline 100; best 123.4 at iter 3; incumbent 123.4.",
                         "Verified gain: +3.1% [+1.2%, +5.0%] (8 pairs).",
                         "- plateau: x", escalation.directive(esc), "## Suggested strategy arm",
                         "- #3 try a trie", "- #5 batch the writes", "- iter 4 "):
            self.assertIn(expected, doc)

    def test_min_metric_unverified_stopped_and_no_bandit(self):
        config = {**CONFIG, "direction": "min", "editable": []}
        doc = program.render(config, {**STATE, "stop": "patience exhausted"}, None, [], None,
                             None, [], [])
        self.assertIn("Minimize `throughput`", doc)
        self.assertIn("STOPPED: patience exhausted.", doc)
        self.assertIn("Verified gain: not measured yet.", doc)
        self.assertIn("- editable: every path not protected", doc)
        self.assertIn("- (none yet)", doc)
        self.assertNotIn("## Suggested strategy arm", doc)
        self.assertNotIn("## Ideas", doc)

    def test_recent_history_is_the_last_eight(self):
        recs = list(records(30))
        doc = program.render(CONFIG, STATE, None, [], None, None, [], recs)
        shown = [line for line in doc.splitlines() if line.startswith("- iter ")]
        self.assertEqual([line.split()[2] for line in shown], [str(i) for i in range(23, 31)])
        # memory["recent"] renders the same way as full records.
        memory = None
        for record in recs:
            memory = mem_mod.update_memory(memory, record, CONFIG)
        from_memory = program.render(CONFIG, STATE, memory, [], None, None, [], None)
        self.assertEqual(from_memory, doc)

    def test_size_is_bounded_with_ten_thousand_records(self):
        memory, esc, arm = inputs(10000, hypothesis_length=400)
        state = {**STATE, "iteration": 10000, "detectable_effect": 0.02}
        ideas = [{"id": i, "text": "an idea " * 40} for i in range(50)]
        doc = program.render(CONFIG, state, memory, hints.hints(memory, CONFIG, RunState(detectable_effect=0.02)), esc,
                             arm, ideas, None)
        self.assertLessEqual(len(doc.encode("utf-8")), program.MAX_BYTES)
        self.assertEqual(sum(line.startswith("- iter ") for line in doc.splitlines()), 8)
        self.assertIn("## Ideas", doc)

    def test_size_is_bounded_for_adversarial_inputs(self):
        config = {**CONFIG, "run_command": "r" * 5000, "metric_name": "m" * 500,
                  "instructions": "Ü" * 5000, "instructions_file": "f" * 500,
                  "editable": [f"src/{'d' * 40}/{i}" for i in range(1000)],
                  "protect": ["p" * 1000]}
        state = {**STATE, "stop": "s" * 5000}
        recs = [{"iter": i, "decision": "revert", "hypothesis": "雪" * 2000, "delta": -1.0,
                 "incumbent": 1.0} for i in range(100)]
        doc = program.render(config, state, None, ["h" * 5000] * 10, {"level": "PIVOT"},
                             "a" * 500, [{"id": 1, "text": "i" * 5000}] * 10, recs)
        self.assertLessEqual(len(doc.encode("utf-8")), program.MAX_BYTES)
        self.assertIn("## Goal", doc)
        self.assertIn("(+", doc)  # long path lists are summarised, not dumped

    def test_multibyte_text_everywhere_is_cut_cleanly(self):
        wide = "雪" * 5000  # 3 bytes each: every clipped field is still 3x its budget
        config = {**CONFIG, "run_command": wide, "metric_name": wide, "instructions": wide,
                  "instructions_file": wide, "editable": [wide], "protect": [wide]}
        recs = [{"iter": i, "decision": "revert", "hypothesis": wide} for i in range(20)]
        doc = program.render(config, {**STATE, "stop": wide}, None, [wide] * 4,
                             {"level": "SEARCH", "pivots": 2}, wide,
                             [{"id": 1, "text": wide}] * 3, recs)
        data = doc.encode("utf-8")
        self.assertLessEqual(len(data), program.MAX_BYTES)
        self.assertGreater(len(data), program.MAX_BYTES - 8)
        self.assertTrue(doc.startswith("# ratchet program\n"))
        self.assertTrue(doc.endswith("\n…\n"))
        self.assertNotIn("- iter", doc)  # history is given up before anything else


if __name__ == "__main__":
    unittest.main()
