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
        self.assertIsNone(protect.decide({**event("Bash", "", self.repo), "tool_input": {"command": "cat bench.py"}}))
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

    def bash(self, command, cwd=None):
        return protect.decide({**event("Bash", "", cwd or self.repo), "tool_input": {"command": command}})

    def test_bash_writes_to_protected_paths_are_denied_naming_the_file(self):
        write(self.repo, "sub/x.txt", "")
        cases = {
            "echo x >> bench.py": ">> redirection: bench.py is part of the evaluation harness",
            "printf 'a' > tests/test_x.py": "> redirection: tests/test_x.py",
            "echo 1 | tee -a bench.py": "tee: bench.py",
            "sed -i 's/score/x/' bench.py": "sed -i: bench.py",
            "sed -e s/a/b/ -i.bak bench.py": "sed -i: bench.py",
            "perl -pi -e 's/a/b/' bench.py": "perl -i: bench.py",
            "cp value.txt bench.py": "cp: bench.py",
            "cp value.txt tests/": "cp: tests/value.txt",
            "mv bench.py old.py": "mv: bench.py",
            "rm -f bench.py": "rm: bench.py",
            "rm -rf tests": "rm: tests",
            "rm -rf .": "rm: .ratchet",
            "truncate -s 0 bench.py": "truncate: bench.py",
            "git checkout -- bench.py": "git checkout: bench.py",
            "git restore --source HEAD~1 tests/test_x.py": "git restore: tests/test_x.py",
            "cd tests && echo > test_x.py": "> redirection: tests/test_x.py",
            "cd sub; cat x.txt > ../bench.py": "> redirection: bench.py",
            "bash -c 'echo > bench.py'": "> redirection: bench.py",
            'x="$(rm bench.py)"': "rm: bench.py",
            "FOO=1 timeout 5 dd if=/dev/zero of=bench.py": "dd: bench.py",
            "echo b > .ratchet/state.json": "> redirection: .ratchet/state.json is inside .ratchet/",
            "sed -i s/1/2/ .ratchet/config.json": "sed -i: .ratchet/config.json is inside .ratchet/",
            "echo x > .git/HEAD": "> redirection: .git/HEAD is inside .git/",
            "git commit -qam 'keep it'": "git commit: .git is inside .git/",
            "git reset --hard HEAD~1": "git reset: .git",
        }
        for command, expected in cases.items():
            reason = self.bash(command)
            self.assertIsNotNone(reason, command)
            self.assertIn(expected, reason, command)
        self.assertIn("tests/test_x.py", self.bash("echo > test_x.py", os.path.join(self.repo, "tests")))

    def test_bash_reads_and_editable_writes_are_allowed(self):
        for command in ("cat bench.py", "python3 bench.py > /tmp/out.txt", "echo 'a > bench.py'", "echo 2>&1",
                        "sed -n 1p bench.py", "cp bench.py /tmp/bench-copy.py", "echo 5 > value.txt",
                        "sed -i s/1/2/ value.txt", "rm -f src/old.py", "git status", "git diff",
                        "git log --oneline", "git apply .ratchet/patches/iter-1.patch", "cat .ratchet/program.md",
                        "cat <<EOF > value.txt\nrm bench.py\nEOF", "grep -r score . | tee /tmp/found",
                        "python3 -c \"open('bench.py', 'w')\"",  # out of reach, documented
                        ""):
            self.assertIsNone(self.bash(command), command)
        self.assertIsNone(protect.decide({**event("Bash", "", self.repo), "tool_input": {"command": 3}}))

    def test_edit_tools_are_denied_under_ratchet_and_git(self):
        for tool, rel in (("Write", ".ratchet/config.json"), ("Edit", ".ratchet/results.jsonl"),
                          ("Write", ".git/config"), ("MultiEdit", ".git/hooks/post-commit")):
            reason = self.deny(tool, os.path.join(self.repo, rel))
            self.assertIn(f"{tool}: {rel} is inside {rel.split('/')[0]}/", reason)
        self.run_ok("stop")
        self.assertIsNotNone(self.deny("Write", os.path.join(self.repo, ".ratchet", "state.json")))  # still ratchet's
        self.assertIsNone(self.deny("Write", os.path.join(self.repo, ".git", "config")))  # the user's again
        self.assertIsNone(self.bash("git commit -qam x"))

    def test_hooks_json_runs_this_script_through_the_plugin_root(self):
        with open(os.path.join(PLUGIN_DIR, "hooks", "hooks.json")) as f:
            cfg = json.load(f)
        entry = cfg["hooks"]["PreToolUse"][0]
        self.assertEqual(set(entry["matcher"].split("|")), set(protect.TOOLS) | {"Bash"})
        self.assertEqual(entry["hooks"][0]["command"], 'python3 -S -I "${CLAUDE_PLUGIN_ROOT}/hooks/protect.py"')


STOP_HOOK = os.path.join(PLUGIN_DIR, "hooks", "stop.py")
_spec = importlib.util.spec_from_file_location("ratchet_stop_hook", STOP_HOOK)
stop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stop)


class StopHookTest(RepoTest):
    """The Stop hook: block while the run says `next: continue`, with its own count."""

    def setUp(self):
        super().setUp()
        self.run_ok(*INIT)
        self.transcript = os.path.join(self.repo, "..", "transcript.jsonl")
        self.say('{"type": "assistant", "text": "python3 .../ratchet.py baseline"}')

    def say(self, line, mode="w"):
        with open(self.transcript, mode) as f:
            f.write(line + "\n")

    def stop_event(self, session="s1", cwd=None, active=False):
        return {"session_id": session, "transcript_path": self.transcript, "cwd": cwd or self.repo,
                "hook_event_name": "Stop", "stop_hook_active": active}

    def decide(self, **kw):
        return stop.decide(self.stop_event(**kw), environ={})

    def test_no_baseline_no_block_then_blocks_until_the_limit(self):
        self.assertIsNone(self.decide())  # init only: the verdict said `run baseline`, not continue
        self.run_ok("baseline")
        reasons = [self.decide() for _ in range(stop.MAX_BLOCKS)]
        for k, reason in enumerate(reasons, 1):
            self.assertIn("its last verdict said `next: continue` (iteration 0 done)", reason)
            self.assertIn(f"reminder {k} of {stop.MAX_BLOCKS}", reason)
            self.assertIn(stop.CLI, reason)
            self.assertNotIn("\n", reason)
        self.assertIsNone(self.decide())  # several in a row without a new iterate: let it end
        self.assertIsNone(self.decide())
        self.assertIsNotNone(self.decide(session="s2"))  # another session counts for itself
        with open(os.path.join(self.repo, ".ratchet", "stop-hook.json")) as f:
            counter = json.load(f)
        self.assertEqual({k: counter[k] for k in ("format", "session_id", "iteration", "blocks")},
                         {"format": 1, "session_id": "s2", "iteration": 0, "blocks": 1})

    def test_a_new_iterate_starts_the_count_again(self):
        self.run_ok("baseline")
        for _ in range(stop.MAX_BLOCKS):
            self.assertIsNotNone(self.decide())
        self.assertIsNone(self.decide())
        write(self.repo, "value.txt", "score: 99\n")
        self.run_ok("iterate", "--hypothesis", "higher")
        self.assertIn("reminder 1 of", self.decide())
        self.assertIn("(iteration 1 done)", self.decide(cwd=os.path.join(self.repo, "tests")))  # from a subfolder

    def test_lets_the_turn_end_when_stopped_idle_interrupted_looping_or_unrelated(self):
        self.run_ok("baseline")
        self.say('{"type": "user", "text": "[Request interrupted by user]"}', "a")
        self.assertIsNone(self.decide())
        self.say('{"type": "assistant", "text": "python3 .../ratchet.py status"}')
        self.assertIsNotNone(self.decide())
        self.say('{"type": "assistant", "text": "answered a question about README.md"}')  # no ratchet call at all
        self.assertIsNone(self.decide())
        self.say('{"text": "ratchet.py status"}')
        self.assertIsNone(stop.decide(self.stop_event(session="s9"), environ={"RATCHET_ITERATION": "4"}))
        write(self.repo, ".ratchet/loop.json", json.dumps({"format": 1, "status": "running", "pid": os.getpid()}))
        self.assertIsNone(self.decide(session="s9"))
        write(self.repo, ".ratchet/loop.json", json.dumps({"format": 1, "status": "paused", "pid": os.getpid()}))
        self.assertIsNotNone(self.decide(session="s9"))
        with tempfile.TemporaryDirectory() as d:
            self.assertIsNone(self.decide(cwd=d))
        self.run_ok("stop")
        self.assertIsNone(self.decide(session="s10"))

    def test_as_a_process_json_in_json_out_exit_0(self):
        self.run_ok("baseline")

        def run(stdin):
            env = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}
            p = subprocess.run([sys.executable, "-S", "-I", STOP_HOOK], input=stdin, capture_output=True,
                               timeout=30, env=env)
            self.assertEqual((p.returncode, p.stderr), (0, b""))
            return p.stdout
        out = json.loads(run(json.dumps(self.stop_event()).encode()))
        self.assertEqual(out["decision"], "block")
        self.assertIn("next: continue", out["reason"])
        for garbage in (b"\xff garbage", b"", b"[]", json.dumps({"cwd": 3}).encode()):
            self.assertEqual(run(garbage), b"", garbage)
        with open(os.path.join(PLUGIN_DIR, "hooks", "hooks.json")) as f:
            entry = json.load(f)["hooks"]["Stop"][0]
        self.assertEqual(entry["hooks"][0]["command"], 'python3 -S -I "${CLAUDE_PLUGIN_ROOT}/hooks/stop.py"')
