"""The typed run state (core/state.py): its on-disk form round-trips, it is
immutable, only core/state makes a new one, and FORMATS.md documents every
field."""

import ast
import os
import unittest

from ratchetlib.core import record
from ratchetlib.core import config as configmod
from ratchetlib.core import state
from ratchetlib.core.state import RunState

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "..", "ratchetlib")
FORMATS = os.path.join(HERE, "..", "..", "..", "..", "FORMATS.md")
FIELDS = [name for name in record.fields(RunState) if name != "extra"]


def cfg(**kw):
    return configmod.from_dict({"run_command": "true", "metric_name": "score", "direction": "max",
                                "iterations": 10, **kw})


class RunStateTest(unittest.TestCase):
    def test_json_round_trip_keeps_unknown_keys(self):
        st = RunState(run_id="r", iteration=3, incumbent_sha="abc", counts={"keep": 1}, verified={"gain_pct": 2.0})
        on_disk = {**st.to_json(), "from_a_newer_ratchet": [1, 2]}
        back = state.from_json(on_disk)
        self.assertEqual(record.replace(back, extra={}), st)
        self.assertEqual(back.to_json()["from_a_newer_ratchet"], [1, 2])
        self.assertEqual(back.to_json()["format"], state.FORMAT)

    def test_an_older_state_takes_the_defaults(self):
        old = state.from_json({"format": 1, "iteration": 2, "log_scale": None, "since_keep": None})
        self.assertEqual((old.iteration, old.log_scale, old.since_keep, old.counts, old.untracked_before),
                         (2, True, 0, {}, []))
        self.assertIsNone(old.ignored_before)  # a run from before the field flags nothing
        self.assertEqual(state.from_json(None), RunState())

    def test_frozen(self):
        with self.assertRaises(record.FrozenError):
            RunState().stop = "no"  # type: ignore[misc]

    def test_apply_record_is_pure_and_folds_each_part(self):
        c = cfg()
        start = state.new_run("r", "s0", ["notes.txt"], [])
        base = state.apply_record(start, {"iter": 0, "decision": "baseline", "avg": 10.0, "sha": "s0"}, c)
        self.assertEqual(start, state.new_run("r", "s0", ["notes.txt"], []))  # the input is untouched
        self.assertEqual((base.iteration, base.baseline, base.best, base.incumbent_sha), (0, 10.0, 10.0, "s0"))
        kept = state.apply_record(base, {"iter": 1, "decision": "keep", "avg": 11.0, "sha": "s1", "delta": 1.0,
                                         "incumbent": 10.0, "hypothesis": "h",
                                         "critic": {"pick": "a"}}, c)
        self.assertEqual((kept.best, kept.best_iter, kept.since_keep, kept.counts), (11.0, 1, 0,
                                                                                     {"baseline": 1, "keep": 1}))
        self.assertEqual(kept.memory["best_win"]["iter"], 1)
        self.assertEqual(kept.critic_stats, {"a": {"n": 1, "kept": 1}})
        crashed = state.apply_record(kept, {"iter": 2, "decision": "crash", "avg": None}, c)
        self.assertEqual((crashed.consecutive_crashes, crashed.since_keep, crashed.last_score), (1, 1, 11.0))

    def test_a_stop_condition_sets_stop_once(self):
        c = cfg(iterations=1)
        st = state.apply_record(RunState(), {"iter": 0, "decision": "baseline", "avg": 1.0, "sha": "a"}, c)
        st = state.apply_record(st, {"iter": 1, "decision": "revert", "avg": 0.9}, c)
        self.assertEqual(st.stop, "iteration cap reached (1)")
        self.assertEqual(state.stopped(st, "stopped by user").stop, "iteration cap reached (1)")


def _replaces_state(tree: ast.AST) -> list:
    """Lines that build a new run state outside core/state: `replace(st, ...)`,
    `replace(state, ...)`, `replace(<x>.state, ...)`, or `object.__setattr__`."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
        first = node.args[0] if node.args else None
        is_state = (isinstance(first, ast.Name) and first.id in ("st", "state")) or \
            (isinstance(first, ast.Attribute) and first.attr == "state")
        if (name == "replace" and is_state) or name == "__setattr__":
            found.append(node.lineno)
    return found


class OnlyCoreStateTransitionsTest(unittest.TestCase):
    def test_no_module_but_core_state_builds_a_new_state(self):
        bad = []
        for folder, _, files in os.walk(LIB):
            for name in files:
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, LIB)
                if not name.endswith(".py") or rel == os.path.join("core", "state.py"):
                    continue
                with open(path, encoding="utf-8") as f:
                    lines = _replaces_state(ast.parse(f.read()))
                bad += [f"{rel}:{n}" for n in lines]
        self.assertEqual(bad, [], "only core/state may make a new RunState (use or add a transition there)")

    def test_formats_documents_every_field(self):
        with open(FORMATS, encoding="utf-8") as f:
            text = f.read()
        section = text.split("## state.json", 1)[1].split("\n## ", 1)[0]
        missing = [name for name in FIELDS if f"`{name}`" not in section and f'"{name}"' not in section]
        self.assertEqual(missing, [], "FORMATS.md's state.json section must name every RunState field")


if __name__ == "__main__":
    unittest.main()
