"""End to end: the plugin's PreToolUse hook in the real Claude Code client.

A ratchet run is active in a scratch repository (`init` named bench.py in its
run command, so bench.py is auto-protected). The scripted fake model (see
test_e2e_claude.py for the setup: loopback model, scratch HOME, no network)
reads and tries to Edit bench.py, then reads and Edits the editable sol.py.
The hook must deny the first edit (bench.py unchanged, the model gets the
reason as an error tool_result) and let the second through. A second test
does the same through the Bash tool: shell writes to bench.py and into
`.ratchet/` and an Edit of `.ratchet/config.json` are denied before they run,
with the file named, while a shell write to sol.py goes through.
"""

import json
import os
import sys
import unittest

from . import fake_anthropic as fa
from .test_e2e_claude import BENCH, SOL_AFTER, SOL_BEFORE, ClaudeCase, ToolResultLog, make_repo
from .util import cli


class HookUser(ToolResultLog):
    """The fake model: Read+Edit the protected bench.py, then Read+Edit sol.py."""

    def __init__(self, repo):
        super().__init__()
        self.repo = repo

    def script(self):
        bench, sol = os.path.join(self.repo, "bench.py"), os.path.join(self.repo, "sol.py")
        return [
            lambda body: fa.tool_use("Read", {"file_path": bench}),
            lambda body: (self._note(body, "read bench"),
                          fa.tool_use("Edit", {"file_path": bench, "old_string": "sol.score()",
                                               "new_string": "sol.score() * 100"}))[1],
            lambda body: (self._note(body, "edit bench"), fa.tool_use("Read", {"file_path": sol}))[1],
            lambda body: (self._note(body, "read sol"),
                          fa.tool_use("Edit", {"file_path": sol, "old_string": "return 10",
                                               "new_string": "return 20"}))[1],
            lambda body: (self._note(body, "edit sol"), "Done: the benchmark is protected, sol.py is edited.")[1],
        ]


class BashUser(ToolResultLog):
    """The fake model: shell writes to the harness and .ratchet/, an Edit of config.json, then sol.py."""

    STEPS = [("append to bench.py", "Bash", {"command": "echo 'print(1000)' >> bench.py"}),
             ("sed -i bench.py", "Bash", {"command": "sed -i 's/score/x/' bench.py"}),
             ("forge state.json", "Bash", {"command": "cat .ratchet/state.json > /tmp/s && tee .ratchet/state.json < /tmp/s"}),
             ("edit config.json", "Edit", {"file_path": ".ratchet/config.json", "old_string": "python3",
                                           "new_string": "true; python3"}),
             ("write sol.py", "Bash", {"command": "sed -i 's/return 10/return 20/' sol.py"})]

    def __init__(self, repo):
        super().__init__()
        self.repo = repo

    def script(self):
        turns = []
        for k, (name, tool, args) in enumerate(self.STEPS):
            if "file_path" in args:
                args = dict(args, file_path=os.path.join(self.repo, args["file_path"]))

            def turn(body, k=k, tool=tool, args=args):
                if k:
                    self._note(body, self.STEPS[k - 1][0])
                return fa.tool_use(tool, args)
            turns.append(turn)
        turns.append(lambda body: (self._note(body, self.STEPS[-1][0]), "Done.")[1])
        return turns


class HookEndToEnd(ClaudeCase):
    scratch_prefix = "ratchet-e2e-hook-"

    def test_protected_edit_is_denied_and_editable_edit_goes_through(self):
        repo = os.path.join(self.scratch, "repo")
        make_repo(repo)
        code, out, err = cli("init", "--run-command", "python3 bench.py", "--direction", "max",
                             "--metric-name", "score", "--report-source", "stdout", cwd=repo)
        self.assertEqual(code, 0, err)
        self.assertIn("auto-protected because a command names them: bench.py", out)
        user = HookUser(repo)
        with fa.FakeAnthropic(user.script()) as fake:
            proc = self.run_client(fake, repo, "Improve the score.")
        context = "\n".join(["exit code: %s" % proc.returncode,
                             "tool results: %s" % json.dumps(user.results, indent=1),
                             "fake errors: %s, turns used: %d" % (fake.errors, fake.turns_used()),
                             "stderr tail: %s" % proc.stderr[-2000:], "stdout tail: %s" % proc.stdout[-3000:]])
        self.assertEqual(fake.errors, [], context)
        self.assertEqual(proc.returncode, 0, context)
        self.assertFalse(fake.exhausted, context)
        self.assertEqual([r["after"] for r in user.results], ["read bench", "edit bench", "read sol", "edit sol"],
                         context)
        denied = user.results[1]
        self.assertTrue(denied["is_error"], context)
        self.assertIn("PreToolUse:Edit hook", denied["text"], context)
        self.assertIn("bench.py is part of the evaluation harness of the active ratchet run", denied["text"], context)
        self.assertFalse(user.results[3]["is_error"], context)
        with open(os.path.join(repo, "bench.py")) as f:
            self.assertEqual(f.read(), BENCH)
        with open(os.path.join(repo, "sol.py")) as f:
            self.assertEqual(f.read(), SOL_AFTER)
        self.assertNotEqual(SOL_BEFORE, SOL_AFTER)
        print("\ne2e hook: denial reached the model as: %s" % denied["text"][:120], file=sys.stderr)

    def test_shell_writes_to_the_harness_and_ratchet_are_denied_before_they_run(self):
        repo = os.path.join(self.scratch, "repo")
        make_repo(repo)
        code, out, err = cli("init", "--run-command", "python3 bench.py", "--direction", "max",
                             "--metric-name", "score", cwd=repo)
        self.assertEqual(code, 0, err)
        with open(os.path.join(repo, ".ratchet", "state.json"), "rb") as f:
            state = f.read()
        with open(os.path.join(repo, ".ratchet", "config.json"), "rb") as f:
            config = f.read()
        user = BashUser(repo)
        with fa.FakeAnthropic(user.script()) as fake:
            proc = self.run_client(fake, repo, "Improve the score.")
        context = "\n".join(["exit code: %s" % proc.returncode,
                             "tool results: %s" % json.dumps(user.results, indent=1),
                             "fake errors: %s, turns used: %d" % (fake.errors, fake.turns_used()),
                             "stderr tail: %s" % proc.stderr[-2000:], "stdout tail: %s" % proc.stdout[-3000:]])
        self.assertEqual(fake.errors, [], context)
        self.assertEqual(proc.returncode, 0, context)
        self.assertFalse(fake.exhausted, context)
        self.assertEqual([r["after"] for r in user.results], [s[0] for s in BashUser.STEPS], context)
        expected = [("PreToolUse:Bash hook", ">> redirection: bench.py is part of the evaluation harness"),
                    ("PreToolUse:Bash hook", "sed -i: bench.py is part of the evaluation harness"),
                    ("PreToolUse:Bash hook", "tee: .ratchet/state.json is inside .ratchet/"),
                    ("PreToolUse:Edit hook", "Edit: .ratchet/config.json is inside .ratchet/")]
        for result, (where, why) in zip(user.results, expected):
            self.assertTrue(result["is_error"], context)
            self.assertIn(where, result["text"], context)
            self.assertIn(why, result["text"], context)
        self.assertFalse(user.results[-1]["is_error"], context)
        with open(os.path.join(repo, "bench.py")) as f:
            self.assertEqual(f.read(), BENCH)
        with open(os.path.join(repo, ".ratchet", "state.json"), "rb") as f:
            self.assertEqual(f.read(), state)
        with open(os.path.join(repo, ".ratchet", "config.json"), "rb") as f:
            self.assertEqual(f.read(), config)
        with open(os.path.join(repo, "sol.py")) as f:
            self.assertEqual(f.read(), SOL_AFTER)
        print("\ne2e hook: a shell write was denied as: %s" % user.results[0]["text"][:120], file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
