"""End to end: critic mode in the real Claude Code client.

Why: the client registers plugin agents under the plugin's namespace
(`ratchet:<agent>`) and runs them through its `Agent` tool, in the background
unless `run_in_background: false`; a skill that names them otherwise fails at
its first step. These tests take the agent names from the expanded SKILL.md
body the client sends (never from this file), check each is one the client
itself lists to the model ("Available agent types for the Agent tool"), call
each in the foreground and check that the right agent definition answered in
the same turn. The second test runs a whole critic iteration (init, baseline,
both proposals in one message, the critic, the edit, `iterate` with the critic
flags) and checks what `.ratchet/` records.

Subagent requests carry only the agent's tools (no Bash), so the fake answers
them as side requests: `AgentReplies` knows each agent by its definition's
first body paragraph (read from plugins/ratchet/agents/*.md) in the system prompt.
Same client, fake model and isolation as test_e2e_claude.
"""

import glob
import json
import os
import re
import subprocess
import sys
import unittest

from . import fake_anthropic as fa
from .test_e2e_claude import ARGS, PLUGIN_DIR, SOL_AFTER, ClaudeCase, ToolResultLog, make_repo, skill_body

AVAILABLE = "Available agent types for the Agent tool:"


def agent_definitions():
    """{name: first body paragraph} of the plugin's agents/*.md."""
    out = {}
    for path in sorted(glob.glob(os.path.join(PLUGIN_DIR, "agents", "*.md"))):
        with open(path) as f:
            text = f.read()
        front, body = text.split("\n---\n", 1)
        name = re.search(r"^name:\s*(\S+)", front, re.M).group(1)
        out[name] = body.strip().split("\n\n", 1)[0]  # the first paragraph: the agent's own lens
    return out


def available_agents(body):
    """The agent types the client lists to the model in this request."""
    text = fa.messages_text(body) + "\n" + fa.system_text(body)
    if AVAILABLE not in text:
        return []
    names = []
    for line in text.split(AVAILABLE, 1)[1].splitlines()[1:]:
        m = re.match(r"- ([^\s:]+(?::[^\s:]+)?): ", line)
        if not m:
            break
        names.append(m.group(1))
    return names


def skill_agents(text):
    """The subagent types the SKILL.md body tells the model to call, in order."""
    return list(dict.fromkeys(re.findall(r'subagent_type: "([^"]+)"', text or "")))


def result_text(block):
    """The text of one tool_result block."""
    return fa.last_tool_result_text({"messages": [{"role": "user", "content": [block]}]})


class AgentReplies:
    """Side replies: a scripted answer for each plugin agent, known by its definition."""

    def __init__(self):
        self.defs = agent_definitions()
        self.asked = []  # (agent file name, the prompt it got)

    def reply(self, name):
        if "critic" in name:
            return ("scores: A=E3 R3 N3 F3 (12)  B=E1 R1 N3 F1 (6)\npick: a\n"
                    "reason: a larger constant is the biggest safe gain (from %s)" % name)
        return ("summary: return 100 instead of 10 (from %s)\nfiles: sol.py\nplan: change the constant\n"
                "expected effect: score doubles\nrisk: none" % name)

    def __call__(self, body):
        system = fa.system_text(body)
        for name, first_line in self.defs.items():
            if first_line in system:
                self.asked.append((name, fa.messages_text(body)))
                return self.reply(name)
        return "ok"


class CriticUser(ToolResultLog):
    """The main model's side; agent names come from the SKILL.md body the client sent."""

    def __init__(self, repo):
        super().__init__()
        self.repo = repo
        self.cli = None
        self.names = []
        self.available = []

    def read_skill(self, body):
        text = skill_body(body) or ""
        self.cli = re.search(r'python3 "([^"]*/skills/ratchet/scripts/ratchet\.py)"', text).group(1)
        self.names = skill_agents(text)
        self.available = available_agents(body)

    def bash(self, command, what):
        return fa.tool_use("Bash", {"command": 'python3 "%s" %s' % (self.cli, command), "description": what})

    @staticmethod
    def agent(name, prompt):
        return fa.tool_use("Agent", {"description": "ratchet critic mode", "prompt": prompt,
                                     "subagent_type": name, "run_in_background": False})


class CriticModeEndToEnd(ClaudeCase):
    scratch_prefix = "ratchet-e2e-critic-"

    def run_critic(self, repo, user, script, prompt):
        replies = AgentReplies()
        with fa.FakeAnthropic(script, side_reply=replies) as fake:
            proc = self.run_client(fake, repo, prompt)
        context = "\n".join([
            "exit code: %s after %.1fs" % (proc.returncode, proc.seconds),
            "skill names: %s, available: %s" % (user.names, user.available),
            "agents asked: %s" % [a for a, _ in replies.asked],
            "tool results: %s" % json.dumps(user.results, indent=1)[:8000],
            "fake errors: %s, turns used: %d" % (fake.errors, fake.turns_used()),
            "stderr tail: %s" % proc.stderr[-2000:]])
        self.assertEqual(fake.errors, [], context)
        self.assertEqual(proc.returncode, 0, context)
        self.assertFalse(fake.exhausted, context)
        self.assertEqual(fake.turns_used(), len(script), context)
        return replies, context

    def test_skill_names_each_agent_as_the_client_lists_it_and_each_answers(self):
        repo = os.path.join(self.scratch, "repo")
        make_repo(repo)
        user = CriticUser(repo)

        def call_all(body):
            user.read_skill(body)
            if not user.names:
                return "The skill names no subagent."
            return [user.agent(name, "Status: iteration 0, score 10. Propose or judge one change.")
                    for name in user.names]

        def collect(body):
            calls = {b["id"]: b["input"]["subagent_type"] for m in body["messages"] if m["role"] == "assistant"
                     for b in m["content"] if b.get("type") == "tool_use"}
            by_name = {calls.get(r.get("tool_use_id")): r for r in fa.tool_results(body)}
            user.results += [{"after": name, "is_error": bool(by_name[name].get("is_error")),
                              "text": result_text(by_name[name])} for name in user.names if name in by_name]
            return "All three answered."

        script = [call_all, collect]
        replies, context = self.run_critic(repo, user, script, "/ratchet --critic " + ARGS)
        defs = agent_definitions()
        self.assertEqual(len(user.names), len(defs), context)  # every agent the plugin ships is named
        for name in user.names:
            self.assertIn(name, user.available, context)  # exactly as the client lists it
        self.assertEqual([(r["after"], r["is_error"]) for r in user.results],
                         [(name, False) for name in user.names], context)
        for name, result in zip(user.names, user.results):  # each call reached its own definition
            short = name.split(":")[-1]
            self.assertIn(short, defs, context)
            self.assertIn("(from %s)" % short, result["text"], context)
        self.assertEqual(sorted(a for a, _ in replies.asked), sorted(defs), context)
        print("\ne2e critic: %s answered in the foreground" % ", ".join(user.names), file=sys.stderr)

    def test_a_whole_critic_iteration_is_recorded(self):
        repo = os.path.join(self.scratch, "repo")
        make_repo(repo)
        user = CriticUser(repo)
        args = ARGS.replace("--iterations 3", "--iterations 1") + " --critic"
        sol = os.path.join(repo, "sol.py")
        seen = {}

        def init(body):
            user.read_skill(body)
            return user.bash("init " + args, "Start a ratchet run")

        def proposers(body):
            user._note(body, "init")
            return [user.agent(n, "Status and history:\n" + "(status here)") for n in user.names
                    if "proposer" in n]

        def critic(body):
            results = [result_text(r) for r in fa.tool_results(body)]
            seen["proposals"] = results
            summaries = [re.search(r"summary: (.*)", r).group(1) for r in results]
            seen["summaries"] = summaries
            name = next(n for n in user.names if "critic" in n)
            return user.agent(name, "Proposal A: %s\nProposal B: %s\nStatus: (status here)" % tuple(summaries))

        def read(body):
            text = fa.last_tool_result_text(body)
            seen["critic"] = text
            seen["reason"] = re.search(r"reason: (.*)", text).group(1)
            return fa.tool_use("Read", {"file_path": sol})

        def edit(body):
            user._note(body, "read")
            # a size-changing edit: a same-size one is the fidelity issue's case (stale bytecode), not this test's
            return fa.tool_use("Edit", {"file_path": sol, "old_string": "return 10", "new_string": "return 100"})

        def iterate(body):
            user._note(body, "edit")
            a, b = seen["summaries"]
            return user.bash('iterate --hypothesis "a larger constant raises the score" --description "return 100" '
                             '--proposal-a "%s" --proposal-b "%s" --critic-pick a --critic-reason "%s"'
                             % (a, b, seen["reason"]), "Measure and decide")

        def finish(body):
            user._note(body, "iterate")
            return "The critic's pick was kept."

        script = [init, lambda body: (user._note(body, "skill"), user.bash("baseline", "Baseline"))[1],
                  proposers, critic, read, edit, iterate, finish]
        replies, context = self.run_critic(repo, user, script, "/ratchet " + args)
        self.assertEqual(len(seen["proposals"]), 2, context)  # both proposals came back in the same turn
        self.assertIn("pick: a", seen["critic"], context)
        asked = [a for a, _ in replies.asked]  # the two proposers run side by side: either may ask first
        self.assertEqual(sorted(asked[:2]) + asked[2:],
                         sorted(a for a in agent_definitions() if "proposer" in a) + ["ratchet-critic"], context)
        self.assertIn(seen["summaries"][0], replies.asked[-1][1], context)  # the critic saw both proposals
        self.assertIn(seen["summaries"][1], replies.asked[-1][1], context)
        self.assertRegex(user.results[-1]["text"], r"iter 1: KEEP", context)
        with open(os.path.join(repo, ".ratchet", "results.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
        rec = records[-1]
        self.assertEqual((rec["iter"], rec["decision"]), (1, "keep"), context)
        self.assertEqual(rec["critic"], {"pick": "a", "reason": seen["reason"],
                                         "proposals": {"a": seen["summaries"][0], "b": seen["summaries"][1]}})
        with open(sol) as f:
            self.assertEqual(f.read(), SOL_AFTER.replace("20", "100"))
        status = subprocess.run([sys.executable, user.cli, "status"], cwd=repo, stdout=subprocess.PIPE,
                                text=True, check=True).stdout
        self.assertIn("critic", status, context)
        print("\ne2e critic: iteration kept with critic pick a: %s" % rec["critic"]["reason"], file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
