"""End to end: `ratchet.py loop` drives the real `claude -p`, one process per
iteration, against the scripted fake Messages API (nothing leaves the machine;
see test_e2e_claude for the isolation). Skips only when no claude binary is
found and CI is not true, like the other e2e test.
"""

import json
import os
import shlex
import subprocess
import sys
import unittest

from . import fake_anthropic as fa
from .test_e2e_claude import BENCH, SOL_AFTER, ClaudeCase, client_env, make_repo
from .util import RATCHET

HYPOTHESIS = "a larger constant raises the score"


class LoopWithClaudeCode(ClaudeCase):
    scratch_prefix = "ratchet-e2e-loop-"

    def test_loop_runs_claude_print_mode_once_per_iteration(self):
        repo = os.path.join(self.scratch, "repo")
        make_repo(repo)
        sol = os.path.join(repo, "sol.py")
        script = [
            # iteration 1: read, edit, report
            fa.tool_use("Read", {"file_path": sol}),
            fa.tool_use("Edit", {"file_path": sol, "old_string": "return 10", "new_string": "return 20"}),
            f"Raised the constant.\nHYPOTHESIS: {HYPOTHESIS}\nDESCRIPTION: return 20 instead of 10",
            # iteration 2: a fresh process; nothing left to try
            "Nothing else to try.\nHYPOTHESIS: no further idea\nDESCRIPTION: no change",
        ]
        agent = (f"{shlex.quote(self.claude)} -p --output-format json --permission-mode acceptEdits "
                 f"--no-session-persistence --allowedTools Read,Edit,Glob,Grep")
        cmd = [sys.executable, RATCHET, "-C", repo, "loop", "--agent-command", agent, "--agent-timeout-seconds", "240",
               "--run-command", "python3 bench.py", "--direction", "max", "--metric-name", "score",
               "--report-source", "stdout", "--protect", "bench.py", "--iterations", "2"]
        with fa.FakeAnthropic(script) as fake:
            proc = subprocess.run(cmd, env=client_env(fake.base_url, self.scratch), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
        with open(os.path.join(repo, ".ratchet", "results.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
        context = "\n".join([f"exit {proc.returncode}", proc.stdout[-3000:], proc.stderr[-2000:],
                             f"fake errors: {fake.errors}, turns used {fake.turns_used()}",
                             json.dumps([{k: r.get(k) for k in ("iter", "decision", "reason", "agent")}
                                         for r in records], indent=1)])
        self.assertEqual(proc.returncode, 0, context)
        self.assertEqual(fake.errors, [], context)
        self.assertEqual(fake.turns_used(), len(script), context)
        self.assertEqual([r["decision"] for r in records], ["baseline", "keep", "no-change"], context)
        kept = records[1]
        self.assertEqual(kept["hypothesis"], HYPOTHESIS)
        self.assertEqual(kept["description"], "return 20 instead of 10")
        self.assertTrue(kept["agent"]["reported"])
        self.assertGreater(kept["agent"]["cost_usd"], 0, context)
        self.assertGreater(kept["agent"]["tokens"], 0, context)
        with open(sol) as f:
            self.assertEqual(f.read(), SOL_AFTER)
        with open(os.path.join(repo, "bench.py")) as f:
            self.assertEqual(f.read(), BENCH)
        first = fake.main_requests()[0]
        self.assertIn("# ratchet iteration 1", fa.messages_text(first), "the prompt did not reach the model")
        later = [b for b in fake.main_requests() if "# ratchet iteration 2" in fa.messages_text(b)]
        self.assertTrue(later, "iteration 2 was not a fresh conversation with its own prompt")
        self.assertNotIn("# ratchet iteration 1", fa.messages_text(later[0]))
        self.assertIn("+    return 20", fa.messages_text(later[0]), "iteration 2's prompt lacks the kept diff")
        with open(os.path.join(repo, ".ratchet", "state.json")) as f:
            st = json.load(f)
        self.assertEqual(st["agent"]["calls"], 2)
        print(f"\ne2e loop: claude -p ran 2 iterations in {kept['agent']['seconds'] + records[2]['agent']['seconds']:.1f}s "
              f"of agent time (${st['agent']['cost_usd']:.5f} reported by the client)", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
