"""End to end: `/ratchet <goal in words>` (setup) in the real Claude Code client, against a scripted model.

Proves what only the client can: `/ratchet` with a goal in words instead of
flags is the setup flow, its body is expanded (`$ARGUMENTS`,
`${CLAUDE_PLUGIN_ROOT}`), the setup instructions file it names can be read, and `detect --json` run from the Bash
tool in a user's project proposes flags that `init` and `baseline` accept.
The project is a copy of examples/train_logreg after one training run, so its
metrics.jsonl is there to be found. Same client, fake model and isolation as
test_e2e_claude (see its docstring); skipped the same way without a client.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import unittest

from . import fake_anthropic as fa
from .test_e2e_claude import REPO_ROOT, STOP_HOOK_BLOCKS, ClaudeCase, ToolResultLog, skill_body

EXAMPLE = os.path.join(REPO_ROOT, "examples", "train_logreg")
GOAL = "lower the validation loss of my classifier"


class ScriptedSetupUser(ToolResultLog):
    """The model's side: read setup.md, run detect, init with its proposal, baseline."""

    def __init__(self):
        super().__init__()
        self.cli = None
        self.detected = None

    def read_setup(self, body):
        text = skill_body(body) or ""
        cli = re.search(r'python3 "([^"]*/skills/ratchet/scripts/ratchet\.py)"', text)
        guide = re.search(r"`([^`]*/skills/ratchet/instructions/setup\.md)`", text)
        if not cli or not guide:
            return "The setup skill does not name the CLI or setup.md."
        self.cli = cli.group(1)
        return fa.tool_use("Read", {"file_path": guide.group(1)})

    def detect(self, body):
        self._note(body, "read")
        return fa.tool_use("Bash", {"command": 'python3 "%s" detect --json' % self.cli,
                                    "description": "Inspect the project"})

    def init(self, body):
        self._note(body, "detect")
        self.detected = json.loads(fa.last_tool_result_text(body))
        args = self.detected["proposal"]["args"]
        return fa.tool_use("Bash", {"command": 'python3 "%s" init %s' % (self.cli, args),
                                    "description": "Start the run"})

    def baseline(self, body):
        self._note(body, "init")
        return fa.tool_use("Bash", {"command": 'python3 "%s" baseline' % self.cli,
                                    "description": "Measure the baseline"})

    def finish(self, body):
        self._note(body, "baseline")
        return "Baseline measured; stopping here for the test."

    def script(self):
        return [self.read_setup, self.detect, self.init, self.baseline, self.finish] + \
            [lambda body: "Stopping here for the test."] * STOP_HOOK_BLOCKS  # the Stop hook sends it back


class SetupSkillEndToEnd(ClaudeCase):
    scratch_prefix = "ratchet-e2e-setup-"

    def setUp(self):
        super().setUp()
        if not os.path.isdir(EXAMPLE):
            self.fail(f"{EXAMPLE} is missing")

    def make_project(self):
        repo = os.path.join(self.scratch, "project")
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("metrics.json*", "__pycache__"))
        for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "ratchet e2e"],
                    ["git", "config", "user.email", "e2e@ratchet.invalid"],
                    ["git", "config", "commit.gpgsign", "false"], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", "start"], [sys.executable, "train.py"]):
            subprocess.run(cmd, cwd=repo, check=True, stdout=subprocess.DEVNULL)
        return repo

    def test_setup_detects_proposes_and_starts(self):
        repo = self.make_project()
        user = ScriptedSetupUser()
        with fa.FakeAnthropic(user.script()) as fake:
            proc = self.run_client(fake, repo, "/ratchet " + GOAL)
        seconds = proc.seconds
        context = "\n".join([
            "exit code: %s after %.1fs" % (proc.returncode, seconds),
            "tool results: %s" % json.dumps(user.results, indent=1)[:6000],
            "fake errors: %s, turns used: %d" % (fake.errors, fake.turns_used()),
            "stderr tail: %s" % proc.stderr[-2000:],
        ])
        bodies = [b for b in (skill_body(b) for b in fake.main_requests()) if b]
        self.assertTrue(bodies, "no request carried the setup SKILL.md body\n" + context)
        self.assertIn("# ratchet: measured", bodies[0])
        self.assertIn("lack `--run-command` (words are the user's goal)", bodies[0])
        self.assertIn(GOAL, bodies[0])
        self.assertNotIn("$ARGUMENTS", bodies[0])
        self.assertNotIn("${CLAUDE_PLUGIN_ROOT}", bodies[0])
        self.assertEqual(fake.errors, [], context)
        self.assertEqual(proc.returncode, 0, context)
        self.assertEqual(fake.turns_used(), len(user.script()), context)
        self.assertEqual([r["after"] for r in user.results], ["read", "detect", "init", "baseline"], context)
        self.assertEqual([r for r in user.results if r["is_error"]], [], context)
        self.assertIn("detect --json", user.results[0]["text"])  # setup.md was read
        self.assertEqual(user.detected["proposal"]["flags"]["report_source"], "jsonl:metrics.jsonl#val_loss")
        self.assertIn("baseline: val_loss 0.5", user.results[-1]["text"], context)
        with open(os.path.join(repo, ".ratchet", "config.json")) as f:
            config = json.load(f)
        self.assertEqual((config["metric_name"], config["direction"]), ("val_loss", "min"))
        print("\ne2e: claude ran /ratchet (setup) in %.1fs (%d requests)" % (seconds, len(fake.requests)),
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
