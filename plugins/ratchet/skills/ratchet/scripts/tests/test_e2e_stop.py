"""End to end: the plugin's Stop hook in the real Claude Code client.

A ratchet run is started in a scratch repository; the scripted model (see
test_e2e_claude for the isolation: loopback model, scratch HOME, no network)
runs `baseline` through the Bash tool and then ends its turn, as a model that
does not follow "never stop early" would. The hook must send it back: the
next request carries the hook's one-line reason. The model keeps ending its
turn without a new `iterate`; after MAX_BLOCKS reminders the hook lets the
turn end, so the client exits by itself although `stop_hook_active` is not
relied on.
"""

import json
import os
import sys
import unittest

from . import fake_anthropic as fa
from .test_e2e_claude import ClaudeCase, ToolResultLog, make_repo
from .test_hook import stop as stop_hook
from .util import RATCHET, cli

REASON = "its last verdict said `next: continue`"


class StopUser(ToolResultLog):
    """The fake model: baseline, then end the turn again and again."""

    def __init__(self):
        super().__init__()
        self.reminders = []

    def baseline(self, body):
        return fa.tool_use("Bash", {"command": 'python3 "%s" baseline' % RATCHET, "description": "Measure"})

    def end_turn(self, body):
        if not self.results:
            self._note(body, "baseline")
        else:
            self.reminders.append(fa.messages_text({"messages": body["messages"][-2:]}))
        return "The baseline is measured; I will stop here."

    def script(self):
        return [self.baseline] + [self.end_turn] * (1 + stop_hook.MAX_BLOCKS)


class StopHookEndToEnd(ClaudeCase):
    scratch_prefix = "ratchet-e2e-stop-"

    def test_a_turn_ended_after_baseline_is_sent_back_until_the_hook_lets_go(self):
        repo = os.path.join(self.scratch, "repo")
        make_repo(repo)
        code, out, err = cli("init", "--run-command", "python3 bench.py", "--direction", "max",
                             "--metric-name", "score", "--iterations", "5", cwd=repo)
        self.assertEqual(code, 0, err)
        user = StopUser()
        with fa.FakeAnthropic(user.script()) as fake:
            proc = self.run_client(fake, repo, "Measure the baseline of the ratchet run.")
        context = "\n".join(["exit code: %s after %.1fs" % (proc.returncode, proc.seconds),
                             "tool results: %s" % json.dumps(user.results, indent=1),
                             "reminders: %s" % json.dumps(user.reminders, indent=1),
                             "fake errors: %s, turns used: %d" % (fake.errors, fake.turns_used()),
                             "stderr tail: %s" % proc.stderr[-2000:], "stdout tail: %s" % proc.stdout[-3000:]])
        self.assertEqual(fake.errors, [], context)
        self.assertEqual(proc.returncode, 0, context)
        self.assertFalse(fake.exhausted, context)
        self.assertIn("baseline: score 10", user.results[0]["text"], context)
        self.assertIn("next: continue", user.results[0]["text"], context)
        self.assertEqual(fake.turns_used(), len(user.script()), context)
        self.assertEqual(len(user.reminders), stop_hook.MAX_BLOCKS, context)
        for k, text in enumerate(user.reminders, 1):
            self.assertIn(REASON, text, context)
            self.assertIn("reminder %d of %d" % (k, stop_hook.MAX_BLOCKS), text, context)
        with open(os.path.join(repo, ".ratchet", "stop-hook.json")) as f:
            self.assertEqual(json.load(f)["blocks"], stop_hook.MAX_BLOCKS)
        print("\ne2e stop hook: the model was sent back %d times with: %s"
              % (len(user.reminders), user.reminders[0][:160]), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
