"""The headless loop's pure parts: agent output, budgets, the prompt."""

import json
import unittest

from ratchetlib.verbs.loop import agent, prompt
from ratchetlib.core import budget
from ratchetlib.core.state import RunState
from ratchetlib.core.config import Config, Margin


class ParseTest(unittest.TestCase):
    def test_plain_text_lines_last_one_wins_and_markdown_is_tolerated(self):
        r = agent.parse_report("thinking...\nHYPOTHESIS: first\n\n**Hypothesis:** `fewer allocations help`\n"
                        "- DESCRIPTION: reuse the buffer in parse()\n")
        self.assertEqual((r.hypothesis, r.description, r.reported), ("fewer allocations help",
                                                                     "reuse the buffer in parse()", True))
        self.assertIsNone(r.cost_usd)
        self.assertFalse(r.is_error)

    def test_claude_json_result_cost_and_tokens(self):
        out = json.dumps({"type": "result", "subtype": "success", "is_error": False,
                          "result": "Done.\nHYPOTHESIS: h\nDESCRIPTION: d", "total_cost_usd": 0.0123,
                          "usage": {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 5,
                                    "cache_read_input_tokens": 1000, "service_tier": "standard"}})
        r = agent.parse_report(out)
        self.assertEqual((r.hypothesis, r.description, r.cost_usd, r.tokens), ("h", "d", 0.0123, 1125))
        self.assertEqual(r.usage, {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 5,
                                   "cache_read_input_tokens": 1000})

    def test_stream_json_uses_the_last_result_line(self):
        lines = [json.dumps({"type": "system"}), json.dumps({"type": "assistant", "message": {}}),
                 json.dumps({"type": "result", "subtype": "success", "result": "HYPOTHESIS: s", "total_cost_usd": 1})]
        r = agent.parse_report("\n".join(lines) + "\n")
        self.assertEqual((r.hypothesis, r.cost_usd), ("s", 1.0))

    def test_errors_and_missing_hypothesis(self):
        r = agent.parse_report(json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": False, "result": ""}))
        self.assertTrue(r.is_error)
        self.assertEqual(r.hypothesis, "(the agent reported no hypothesis)")
        r = agent.parse_report("I changed the loop order.\n")
        self.assertEqual((r.hypothesis, r.reported), ("(no HYPOTHESIS line) I changed the loop order.", False))
        self.assertEqual(len(agent.parse_report("HYPOTHESIS: " + "x" * 5000).hypothesis), 300)

    def test_command_placeholder(self):
        self.assertEqual(agent.command("claude -p", "/a b/p.md"), ("claude -p", True))
        self.assertEqual(agent.command("my-agent --in {prompt_file}", "/a b/p.md"), ("my-agent --in '/a b/p.md'", False))


class BudgetTest(unittest.TestCase):
    def test_fold_counts_alternatives_and_ignores_records_without_agents(self):
        self.assertIsNone(budget.fold(None, {"agent": None}))
        rec = {"agent": {"seconds": 2.0, "cost_usd": 0.5, "tokens": 100},
               "alternatives": [{"agent": {"seconds": 1.0, "cost_usd": None, "tokens": 50}}, {"agent": None}]}
        t = budget.fold(None, rec)
        self.assertEqual(t, {"calls": 2, "seconds": 3.0, "cost_usd": 0.5, "tokens": 150})
        self.assertEqual(budget.fold(t, {"agent": None}), t)
        self.assertEqual(budget.fold(t, rec)["calls"], 4)

    def test_exhausted(self):
        t = {"calls": 3, "seconds": 1, "cost_usd": 2.0, "tokens": 5000}
        self.assertIsNone(budget.exhausted(t, None, None))
        self.assertIsNone(budget.exhausted(t, 2.5, 6000))
        self.assertIn("cost budget", budget.exhausted(t, 2.0, None))
        self.assertIn("token budget", budget.exhausted(t, None, 5000))
        self.assertIsNone(budget.exhausted(None, 1.0, 1))


CFG = Config(run_command="python3 bench.py", direction="min", metric_name="ms", trials=3,
             min_improvement=Margin(2.0, True), protect=(".ratchet", "bench.py"), editable=("src",),
             instructions="Keep the public API.", iterations=50)


class PromptTest(unittest.TestCase):
    def render(self, **kw):
        args = dict(integrity="### Forbidden\n- gaming", diff="", recent=[], program=None)
        args.update(kw)
        return prompt.render(CFG, RunState(iteration=4, baseline=100.0, incumbent_score=90.0, best=90.0,
                                            best_iter=2), 5, **args)

    def test_sections(self):
        text = self.render(diff="diff --git a/src/a.py b/src/a.py\n+fast", program="# ratchet program\n- hint",
                           recent=[{"iter": 4, "decision": "crash", "hypothesis": "h4", "reason": "trial 1: exit code 1",
                                    "avg": None}], extra=[("Escalation", "PIVOT: try another mechanism")],
                           slot=(2, 3))
        for needle in ("# ratchet iteration 5", "lower `ms`", "Minimize `ms`", "3 trial(s)", "more than 2%",
                       "incumbent 90", "iteration 4/50", "`src`", "`bench.py`", "Forbidden", "Keep the public API.",
                       "+fast", "- iter 4 crash: h4 — trial 1: exit code 1", "## Program (.ratchet/program.md)",
                       "- hint", "## Escalation", "PIVOT", "proposer 2 of 3", "HYPOTHESIS:", "DESCRIPTION:"):
            self.assertIn(needle, text)
        self.assertIn("Nothing kept yet", self.render())
        self.assertNotIn("## Program", self.render())

    def test_size_is_bounded_whatever_the_inputs(self):
        big = [{"iter": i, "decision": "revert", "hypothesis": "h" * 2000, "description": "d" * 2000, "avg": 1.0,
                "delta": 0.5} for i in range(500)]
        text = self.render(diff="+" + "x" * 100000, recent=big, program="p" * 100000, integrity="i" * 100000,
                           extra=[("More", "m" * 100000)])
        self.assertLess(len(text.encode()), 24000)
        self.assertIn("iter 499", text)
        self.assertNotIn("iter 491", text)

    def test_integrity_rules_drop_title_and_in_session_part(self):
        with open(prompt.INTEGRITY_FILE) as f:
            rules = prompt.integrity_rules(f.read())
        self.assertNotIn("# Integrity", rules.splitlines()[0])
        self.assertIn("### Forbidden moves", rules)
        self.assertNotIn("Run-specific", rules)


if __name__ == "__main__":
    unittest.main()
