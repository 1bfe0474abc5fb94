"""The learning loop through the real CLI: hints, similarity warning, ideas,
escalation, bandit, critic statistics, program.md, and crash recovery."""

import json
import os
import subprocess
import unittest
from unittest import mock

from ratchetlib.learn import program
from ratchetlib.io.store import Store
from ratchetlib.core.state import from_json as state_from_json
from tests.util import INIT, PY, RATCHET, RepoTest, cli


class Base(RepoTest):
    def it(self, value, hypothesis, *extra):
        self.set_value(value)
        return self.run_ok("iterate", "--hypothesis", hypothesis, *extra)

    def status_json(self):
        return json.loads(self.run_ok("status", "--json"))

    def ratchet_file(self, name):
        with open(os.path.join(self.repo, ".ratchet", name)) as f:
            return json.load(f) if name.endswith(".json") else f.read()


class HintsTest(Base):
    def test_biggest_win_and_recently_reverted_in_verdict_and_status(self):
        self.start()
        self.it(12, "unroll the inner loop")
        self.assertIn('hint: biggest win so far: iter 1 (+20.0%): "unroll the inner loop"', self.run_ok("status"))
        out = self.it(9, "switch to a linked list")
        self.assertNotIn("hint:", out)  # the verdict repeats only the urgent hints
        status = self.run_ok("status")
        self.assertIn('hint: recently reverted, do not repeat: "switch to a linked list"', status)
        self.assertIn("hint: biggest win so far", status)
        self.assertEqual(len(self.status_json()["hints"]), 2)

    def test_failure_streak(self):
        self.start()
        self.it("x", "first crash")
        out = self.it("y", "second crash")
        self.assertIn("hint: failure streak: 2 crashes/timeouts in a row (last: crash)", out)
        self.assertIn("failure streak", self.run_ok("status"))

    def test_plateau_after_k_iterations_without_a_keep(self):
        self.start()
        for i in range(5):
            out = self.it(9, f"idea number {i} " + "xyz"[i % 3] * (i * 7))
        self.assertIn("hint: plateau: no keep in the last 5 iterations", out)
        self.assertIn("hint: plateau: no keep in the last 5 iterations", self.run_ok("status"))

    def test_plateau_when_keeps_are_below_the_detectable_effect(self):
        self.start()
        self.it(10.1, "tiny gain one")
        self.it(10.2, "tiny gain two")
        st = self.state()
        st["detectable_effect"] = 0.05  # what noise calibration would provide
        Store(self.repo).write_state(state_from_json(st))  # through the writer that seals it
        self.assertIn("below the detectable effect (5.0%)", self.run_ok("status"))

    def test_similarity_warning_names_the_reverted_iteration(self):
        self.start()
        self.it(9, "Use a hash map for the lookups.")
        out = self.it(8, "use a hashmap for lookups")
        self.assertRegex(out, r'warning: \d+% similar to reverted iter 1 \("Use a hash map for the lookups\."\); '
                              r'change the mechanism')
        sim = self.records()[-1]["similar"]
        self.assertEqual(sim["iter"], 1)
        self.assertGreaterEqual(sim["ratio"], 0.75)
        out = self.it(7, "vectorize the scoring with numpy")
        self.assertNotIn("warning:", out)
        self.assertIsNone(self.records()[-1]["similar"])


class IdeasTest(Base):
    def test_a_reverted_near_miss_is_added_with_its_figures(self):
        self.start("--min-improvement", "10%")
        out = self.it(10.5, "cache the parsed config")
        self.assertIn("REVERT", out)
        self.assertIn("near miss saved as idea #1", out)
        [idea] = self.ratchet_file("ideas.json")["ideas"]
        self.assertEqual((idea["source"], idea["status"]), ("near-miss", "open"))
        self.assertEqual(idea["figures"]["iter"], 1)
        self.assertAlmostEqual(idea["figures"]["delta"], 0.5)
        self.assertIn("cache the parsed config", idea["text"])
        self.assertIn("ideas (1 open): #1 near miss from iter 1", self.run_ok("status"))
        self.assertIn("#1 [near-miss]", self.run_ok("ideas", "list"))
        self.assertIn("#1 near miss", self.ratchet_file("program.md"))
        out = self.it(9, "a plain regression")
        self.assertNotIn("near miss", out)
        self.assertEqual(len(self.ratchet_file("ideas.json")["ideas"]), 1)

    def test_add_list_done_and_errors(self):
        self.start()
        self.assertIn("idea #1: try a trie", self.run_ok("ideas", "add", "try", "a", "trie"))
        self.run_ok("ideas", "add", "batch the writes")
        listed = json.loads(self.run_ok("ideas", "list", "--json"))
        self.assertEqual([i["id"] for i in listed], [1, 2])
        self.assertIn("#1 try a trie", self.ratchet_file("program.md"))
        self.assertIn("idea #1 done", self.run_ok("ideas", "done", "1"))
        self.assertNotIn("try a trie", self.run_ok("ideas", "list"))
        self.assertIn("no open idea #1", self.run_fail("ideas", "done", "1"))
        self.assertIn("needs some text", self.run_fail("ideas", "add"))
        self.run_fail("ideas", "list", "extra")
        self.run_fail("ideas", "frobnicate")
        self.assertIn("ideas (1 open): #2 batch the writes", self.run_ok("status"))

    def test_ideas_need_a_run(self):
        self.assertIn("no ratchet run", self.run_fail("ideas", "list"))


class EscalationTest(Base):
    def _level(self):
        return self.state()["escalation"]["level"]

    def test_levels_persist_across_separate_processes(self):
        self.start()
        for i in range(2):
            self.it(9, f"regression {i}")
        self.assertEqual(self._level(), "NORMAL")
        self.set_value(8)  # a separate OS process: nothing in memory survives
        p = subprocess.run([PY, RATCHET, "iterate", "--hypothesis", "third miss"], cwd=self.repo,
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("escalation REFINE (3 without a keep)", p.stdout)
        self.assertEqual(self.state()["escalation"], {"level": "REFINE", "streak": 3, "pivots": 0, "stop": None})
        self.it(9, "fourth miss")
        out = self.it(9, "fifth miss, completely different")
        self.assertIn("escalation PIVOT (5 without a keep)", out)
        self.assertIn("PIVOT", self.ratchet_file("program.md"))
        self.assertEqual(self.status_json()["escalation"]["level"], "PIVOT")
        out = self.it(11, "finally a win")
        self.assertNotIn("escalation", out)
        self.assertEqual(self.state()["escalation"]["level"], "NORMAL")

    def test_halt_stops_the_run(self):
        out = self.run_ok(*INIT, "--escalation", "refine=1,pivot=2,search=1,halt=2")
        self.assertIn("HALT after 2 (4 non-keeps in a row)", out)
        self.run_ok("baseline")
        levels = []
        for i in range(4):
            out = self.it(9, f"miss {i} " + "abcd"[i] * 20)
            levels.append(self._level())
        self.assertEqual(levels, ["REFINE", "PIVOT", "SEARCH", "HALT"])
        self.assertIn("next: stop (escalation halt: 2 pivots without progress (4 iterations without a keep))", out)
        self.assertIn("escalation halt", self.run_fail("iterate", "--hypothesis", "more"))
        self.assertIn("STOPPED: escalation halt", self.ratchet_file("program.md"))

    def test_patience_and_escalation_whichever_first(self):
        out = self.run_ok(*INIT, "--patience", "4")
        self.assertIn("note: --patience 4 stops the run at 4 non-keeps, before the PIVOT directive", out)
        self.run_ok("baseline")
        for i in range(4):
            out = self.it(9, f"miss {i} " + "abcd"[i] * 20)
        self.assertIn("next: stop (patience exhausted", out)

    def test_bad_escalation_flags(self):
        self.assertIn("--escalation 'bogus=2'", self.run_fail(*INIT, "--escalation", "bogus=2"))
        self.assertIn("not a whole number", self.run_fail(*INIT, "--escalation", "pivot=x"))
        self.assertIn("must be a whole number >= 1", self.run_fail(*INIT, "--escalation", "halt=0"))
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet")))


class BanditTest(Base):
    def test_suggestion_recording_and_persistence(self):
        out = self.run_ok(*INIT, "--strategy", "bandit", "--arms", "algo,layout,micro", "--max-consecutive-crashes", "5")
        self.assertIn("bandit arms: algo, layout, micro", out)
        self.run_ok("baseline")
        self.assertEqual(self.status_json()["arm"]["suggested"], "algo")
        self.assertIn("bandit: suggested arm algo (untried): iterate --arm algo", self.run_ok("status"))
        out = self.it(12, "a better algorithm", "--arm", "algo")
        self.assertIn("suggested arm layout (untried)", out)
        self.it(9, "pack the structs", "--arm", "layout")
        self.it("boom", "unsafe micro trick", "--arm", "micro")  # a crash still counts as a pull
        self.assertEqual([r.get("arm") for r in self.records()], [None, "algo", "layout", "micro"])
        band = self.ratchet_file("bandit.json")
        self.assertEqual({a: (s["n"], s["keeps"]) for a, s in band["stats"].items()},
                         {"algo": (1, 1), "layout": (1, 0), "micro": (1, 0)})
        self.assertEqual(band["last_iter"], 3)
        self.assertEqual(self.status_json()["arm"]["suggested"], "algo")  # UCB1: the only arm that paid
        self.it(11, "no arm given")
        self.assertIsNone(self.records()[-1]["arm"])
        self.assertEqual(self.ratchet_file("bandit.json")["total"], 3)
        self.assertIn("Suggested strategy arm", self.ratchet_file("program.md"))

    def test_arm_mistakes_are_one_line_errors_that_change_nothing(self):
        self.start("--strategy", "bandit")
        self.set_value(12)
        self.assertIn("unknown arm 'magic'; arms: algorithm, data-structure", 
                      self.run_fail("iterate", "--hypothesis", "h", "--arm", "magic"))
        self.assertEqual(len(self.records()), 1)
        self.assertEqual(self.ratchet_file("bandit.json")["total"], 0)

    def test_arm_flags_need_the_bandit(self):
        self.assertIn("--arms needs --strategy bandit", self.run_fail(*INIT, "--arms", "a,b"))
        self.assertIn("repeat", self.run_fail(*INIT, "--strategy", "bandit", "--arms", "a,a"))
        self.start()
        self.set_value(12)
        self.assertIn("--arm needs a run started with", self.run_fail("iterate", "--hypothesis", "h", "--arm", "x"))
        self.assertNotIn("bandit", self.run_ok("status"))
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "bandit.json")))


class VerdictReadsNoLearningFileTest(Base):
    def test_the_verdict_renders_from_the_snapshot_persist_made(self):
        """Issue 19: printing a verdict must not read bandit.json and ideas.json again."""
        from ratchetlib.learn import bandit, ideas
        self.start("--strategy", "bandit", "--min-improvement", "10%")
        self.set_value(10.5)
        log, load, list_open, write_state = [], bandit.load, ideas.list_open, Store.write_state

        def counted(name, real):
            def call(*args, **kwargs):
                log.append(name)
                return real(*args, **kwargs)
            return call
        with mock.patch.object(bandit, "load", counted("bandit.json", load)), \
                mock.patch.object(ideas, "list_open", counted("ideas.json", list_open)), \
                mock.patch.object(Store, "write_state", counted("state written", write_state)):
            code, out, err = cli("iterate", "--hypothesis", "cache the parsed config", "--arm", "algorithm",
                                 cwd=self.repo)
        self.assertEqual(code, 0, err)
        self.assertIn("near miss saved as idea #1", out)
        self.assertIn("bandit: suggested arm", out)
        last = len(log) - 1 - log[::-1].index("state written")
        self.assertIn("bandit.json", log[:last])  # persist read them once, before the state write
        self.assertEqual(log[last + 1:], [], log)


class RecoveryTest(Base):
    def test_a_kill_before_the_state_write_is_replayed_once(self):
        self.start("--strategy", "bandit", "--min-improvement", "10%")
        self.it(9, "first miss", "--arm", "algorithm")
        real = Store.write_state

        def killed(store, state):
            raise KeyboardInterrupt  # the kill lands after the record, bandit and ideas writes

        self.set_value(10.5)
        with mock.patch.object(Store, "write_state", killed):
            code, _, _ = cli(
                "iterate", "--hypothesis", "near miss", "--arm", "rewrite", cwd=self.repo)
        self.assertEqual(code, 130)
        self.assertEqual(self.state()["iteration"], 1)
        self.assertEqual(self.records()[-1]["iter"], 2)
        self.assertIs(Store.write_state, real)
        out = self.run_ok("ideas", "list")  # read-only: no recovery yet, files already written
        self.assertIn("near miss from iter 2", out)
        out = self.it(9, "third change", "--arm", "algorithm")
        self.assertIn("iteration 2 was recorded but the state was not updated", out)
        st = self.state()
        self.assertEqual((st["memory"]["records"], st["escalation"]["streak"]), (3, 3))
        band = self.ratchet_file("bandit.json")
        self.assertEqual((band["total"], band["stats"]["rewrite"]["n"], band["stats"]["algorithm"]["n"]), (3, 1, 2))
        self.assertEqual(len(self.ratchet_file("ideas.json")["ideas"]), 1)


class CriticTest(Base):
    def crit(self, value, pick, hypothesis):
        return self.it(value, hypothesis, "--proposal-a", "A: inline the hot helper; plan: ...",
                       "--proposal-b", "B: replace the list scan by a dict; plan: ...",
                       "--critic-pick", pick, "--critic-reason", f"reason for {pick}")

    def test_records_and_keep_rate_summary(self):
        self.start("--critic")
        self.crit(12, "A", "inline the hot helper")
        self.crit(11, "b", "replace the scan by a dict")
        self.crit(13, "none", "my own idea")
        self.it(12.5, "no critic this time")
        self.it(14, "old-style pick", "--critic-pick", "the dict proposal", "--critic-reason", "bigger effect")
        rec = self.records()[1]
        self.assertEqual(rec["critic"], {"pick": "a", "reason": "reason for A",
                                         "proposals": {"a": "A: inline the hot helper; plan: ...",
                                                       "b": "B: replace the list scan by a dict; plan: ..."}})
        self.assertEqual(self.records()[-1]["critic"], {"pick": "the dict proposal", "reason": "bigger effect"})
        critic = self.status_json()["critic"]
        self.assertEqual((critic["picked"], critic["a"], critic["b"], critic["none"], critic["overall"]),
                         ({"n": 3, "kept": 2}, {"n": 1, "kept": 1}, {"n": 1, "kept": 0},
                          {"n": 1, "kept": 1}, {"n": 5, "kept": 3}))
        line = "critic: picks kept 2/3 (67%) (A 1/1 (100%), B 0/1 (0%)) · own ideas 1/1 (100%) · all iterations 3/5 (60%)"
        self.assertIn(line, self.run_ok("history"))
        self.assertIn("critic: picks kept 2/3 (67%) · own ideas 1/1 (100%) · all 3/5 (60%)", self.run_ok("status"))
        self.assertIn("critic: picks kept 1/1", self.run_ok("history", "--last", "1"))
        self.assertNotIn("critic:", self.run_ok("history", "--last", "2").splitlines()[0])


class ProgramAndBudgetTest(Base):
    def test_program_is_regenerated_on_every_decision_and_bounded(self):
        self.run_ok(*INIT, "--strategy", "bandit", "--critic", "--instructions", "rule " * 100)
        self.assertIn("Iteration -1 of 20", self.ratchet_file("program.md"))
        self.run_ok("baseline")
        long = "a very long hypothesis " * 60
        for i, v in enumerate((12, 11, 10, "x", "y")):
            self.it(v, f"{i} {long}", "--arm", "rewrite", "--critic-pick", "a", "--proposal-a", long,
                    "--proposal-b", long, "--critic-reason", long)
        for i in range(30):
            self.run_ok("ideas", "add", f"idea {i} " + "z" * 400)
        doc = self.ratchet_file("program.md")
        self.assertIn("Iteration 5 of 20: 1 kept, 2 reverted, 2 crashed", doc)
        self.assertIn("- iter 5 crash", doc)
        self.assertLessEqual(len(doc.encode()), program.MAX_BYTES)
        out = self.run_ok("status")
        self.assertLessEqual(len(out.splitlines()), 14)
        self.assertLessEqual(len(out.encode()), 1500)
        self.assertLessEqual(len(self.it(13, "one more " + long).encode()), 1500)
        self.run_ok("stop")
        self.assertIn("STOPPED: stopped by user", self.ratchet_file("program.md"))

    def test_status_reads_only_a_small_tail_of_the_records(self):
        self.start()
        self.it(12, "h")
        seen = []
        real = Store.records

        def spy(store, last=None):
            seen.append(last)
            return real(store, last)

        with mock.patch.object(Store, "records", spy):
            self.run_ok("status")
            self.run_ok("status", "--json")
        self.assertTrue(seen and all(n is not None and n <= 10 for n in seen), seen)


class LoopDecisionsTest(unittest.TestCase):
    """The headless loop's decisions as learning sees them (pure functions)."""

    def test_interrupted_changes_nothing_and_agent_error_is_a_failure(self):
        from ratchetlib.core import config as configmod, state
        from ratchetlib.learn import learning
        cfg = configmod.from_dict({"run_command": "true", "metric_name": "score", "direction": "max", "iterations": 10})
        st = state.apply_record(state.RunState(), {"iter": 0, "decision": "baseline", "avg": 10.0, "sha": "a"}, cfg)
        same = state.apply_record(st, {"iter": 1, "decision": "interrupted", "hypothesis": "h"}, cfg)
        self.assertEqual((same.memory, same.escalation, same.critic_stats), (st.memory, st.escalation, st.critic_stats))
        failed = state.apply_record(st, {"iter": 1, "decision": "agent-error", "hypothesis": "h"}, cfg)
        self.assertEqual((failed.memory["failure_streak"], failed.escalation["streak"]), (1, 1))
        self.assertEqual([learning._outcome(d) for d in ("agent-error", "tampered", "out-of-scope", "keep")],
                         ["crash", "invalid", "invalid", "keep"])


if __name__ == "__main__":
    unittest.main()
