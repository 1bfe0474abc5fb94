"""The PreToolUse hook (plugins/ratchet/hooks/protect.py): event JSON in, decision out."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile

from tests.util import INIT, RepoTest, write

PLUGIN_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
HOOK = os.path.join(PLUGIN_DIR, "hooks", "protect.py")
_spec = importlib.util.spec_from_file_location("ratchet_protect_hook", HOOK)
protect = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(protect)


def event(tool, path, cwd, key=None):
    key = key or ("notebook_path" if tool == "NotebookEdit" else "file_path")
    return {"session_id": "s", "transcript_path": "/nonexistent", "cwd": cwd, "permission_mode": "bypassPermissions",
            "hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": {key: path, "old_string": "a",
                                                                              "new_string": "b"},
            "tool_use_id": "toolu_1"}


class HookTest(RepoTest):
    def setUp(self):
        super().setUp()
        write(self.repo, "tests/test_x.py", "")
        self.run_ok(*INIT, "--protect", "tests", "--editable", "value.txt", "src")

    def deny(self, tool, path, cwd=None):
        return protect.decide(event(tool, path, cwd or self.repo))

    def test_denies_each_edit_tool_on_protected_paths(self):
        for tool in ("Edit", "Write", "MultiEdit", "NotebookEdit"):
            reason = self.deny(tool, os.path.join(self.repo, "bench.py"))
            self.assertIn("bench.py is part of the evaluation harness of the active ratchet run", reason, tool)
        self.assertIn("protected by 'tests'", self.deny("Write", os.path.join(self.repo, "tests", "new", "t.py")))
        self.assertIn("tampered", self.deny("Edit", "bench.py"))                      # relative to cwd
        self.assertIn("editable: value.txt, src", self.deny("Edit", "../bench.py", os.path.join(self.repo, "tests")))
        self.assertIsNotNone(self.deny("Write", os.path.join(self.repo, ".ratchet", "state.json")))

    def test_allows_editable_paths_other_tools_and_outside_the_repository(self):
        self.assertIsNone(self.deny("Edit", os.path.join(self.repo, "value.txt")))
        self.assertIsNone(self.deny("Write", os.path.join(self.repo, "src", "new.py")))
        self.assertIsNone(self.deny("Edit", os.path.join(self.repo, "elsewhere.txt")))  # out of scope: the CLI's job
        self.assertIsNone(protect.decide({**event("Read", os.path.join(self.repo, "bench.py"), self.repo)}))
        self.assertIsNone(protect.decide({**event("Bash", "", self.repo), "tool_input": {"command": "rm bench.py"}}))
        with tempfile.TemporaryDirectory() as d:
            self.assertIsNone(self.deny("Write", os.path.join(d, "bench.py"), d))
        self.assertIsNone(self.deny("Edit", os.path.join(os.path.dirname(self.repo), "bench.py")))
        for bad in (None, [], {}, {"tool_name": "Edit"}, {"tool_name": "Edit", "tool_input": {"file_path": 3}},
                    {"tool_name": "Edit", "tool_input": "x"}):
            self.assertIsNone(protect.decide(bad), bad)

    def test_parallel_slot_worktrees_are_checked_as_the_repository(self):
        slot = os.path.join(self.repo, ".ratchet", "worktrees", "slot-2")
        self.assertIsNone(self.deny("Edit", os.path.join(slot, "value.txt"), slot))
        self.assertIsNone(self.deny("Write", os.path.join(slot, "src", "new.py"), slot))
        self.assertIn("bench.py is part", self.deny("Edit", os.path.join(slot, "bench.py"), slot))
        self.assertIn("protected by 'tests'", self.deny("Write", os.path.join(slot, "tests", "t.py"), slot))
        self.assertIsNotNone(self.deny("Write", os.path.join(self.repo, ".ratchet", "state.json")))

    def test_a_symlink_to_a_protected_file_is_denied(self):
        link = os.path.join(self.repo, "src", "alias.py")
        os.makedirs(os.path.dirname(link))
        os.symlink(os.path.join(self.repo, "bench.py"), link)
        self.assertIn("bench.py is part", self.deny("Edit", link))

    def test_allows_when_no_run_is_active_or_the_state_is_unreadable(self):
        state = os.path.join(self.repo, ".ratchet", "state.json")
        bench = os.path.join(self.repo, "bench.py")
        with open(state) as f:
            good = f.read()
        for text in ("{not json", "[]", ""):
            with open(state, "w") as f:
                f.write(text)
            self.assertIsNone(self.deny("Edit", bench), text)
        os.remove(state)
        self.assertIsNone(self.deny("Edit", bench))
        with open(state, "w") as f:
            f.write(good)
        self.assertIsNotNone(self.deny("Edit", bench))
        self.run_ok("stop")
        self.assertIsNone(self.deny("Edit", bench))

    def test_as_a_process_json_in_json_out_exit_0(self):
        def run(stdin):
            p = subprocess.run([sys.executable, "-S", "-I", HOOK], input=stdin, capture_output=True, timeout=30)
            self.assertEqual((p.returncode, p.stderr), (0, b""))
            return p.stdout
        out = json.loads(run(json.dumps(event("Edit", os.path.join(self.repo, "bench.py"), self.repo)).encode()))
        self.assertEqual(out["hookSpecificOutput"]["hookEventName"], "PreToolUse")
        self.assertEqual(out["hookSpecificOutput"]["permissionDecision"], "deny")
        self.assertIn("bench.py", out["hookSpecificOutput"]["permissionDecisionReason"])
        self.assertEqual(run(json.dumps(event("Edit", os.path.join(self.repo, "value.txt"), self.repo)).encode()), b"")
        self.assertEqual(run(b"\xff garbage"), b"")
        self.assertEqual(run(b""), b"")

    def test_hooks_json_runs_this_script_through_the_plugin_root(self):
        with open(os.path.join(PLUGIN_DIR, "hooks", "hooks.json")) as f:
            cfg = json.load(f)
        entry = cfg["hooks"]["PreToolUse"][0]
        self.assertEqual(set(entry["matcher"].split("|")), set(protect.TOOLS))
        self.assertEqual(entry["hooks"][0]["command"], 'python3 -S -I "${CLAUDE_PLUGIN_ROOT}/hooks/protect.py"')
