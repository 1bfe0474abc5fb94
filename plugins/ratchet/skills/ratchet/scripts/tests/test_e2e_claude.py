"""End to end: the real Claude Code client runs `/ratchet` against a scripted model.

Why: unit tests prove the CLI; only the real client proves the plugin loads,
that `/ratchet <args>` expands the SKILL.md body (`${CLAUDE_PLUGIN_ROOT}` and
`$ARGUMENTS` substituted), and that the commands the skill tells the model to
run work from the Bash tool in a user's repository. The model is
`fake_anthropic.FakeAnthropic` on 127.0.0.1, so nothing leaves the machine:
the client is pointed at it with ANTHROPIC_BASE_URL, non-essential traffic,
telemetry and the auto-updater are off, proxies are removed, and HOME is a
scratch folder (no user settings, credentials or plugins are read).

The claude binary is RATCHET_CLAUDE_BIN, else `.ci/cache/node_modules/.bin/claude`
under the repository root (what `bash .ci/run` installs), else `claude` on PATH.
Without one the test skips, except under CI=true, where it fails: CI must run
it. (RATCHET_E2E=0 lets a CI job that deliberately has no client, such as the
unit-test matrix, skip it by name.)
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from . import fake_anthropic as fa

SCRIPTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_DIR = os.path.abspath(os.path.join(SCRIPTS_DIR, "..", "..", ".."))
REPO_ROOT = os.path.abspath(os.path.join(PLUGIN_DIR, "..", ".."))
CLAUDE_TIMEOUT_SECONDS = 300

# What the user types after `/ratchet`; it must reach the model verbatim.
ARGS = ('--run-command "python3 bench.py" --direction max --metric-name score '
        '--report-source stdout --trials 2 --iterations 3')
BENCH = 'import sol\n\nprint("score: %d" % sol.score())\n'
SOL_BEFORE = "def score():\n    return 10\n"
SOL_AFTER = "def score():\n    return 20\n"
HYPOTHESIS = "a larger constant raises the score"
DESCRIPTION = "return 20 instead of 10"
STOP_HOOK_BLOCKS = 3  # hooks/stop.py MAX_BLOCKS: a turn ended while the run says continue is sent back 3 times


def find_claude():
    """The claude binary to test with, or None (see the module docstring)."""
    explicit = os.environ.get("RATCHET_CLAUDE_BIN")
    if explicit:
        return explicit  # named on purpose: a wrong path must fail, not skip
    cached = os.path.join(REPO_ROOT, ".ci", "cache", "node_modules", ".bin", "claude")
    if os.access(cached, os.X_OK):
        return cached
    return shutil.which("claude")


def client_env(base_url, scratch):
    """The client's environment: loopback model, scratch HOME, no proxies, no user config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE", "XDG_", "OTEL_", "GIT_"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    home = os.path.join(scratch, "home")
    tmp = os.path.join(scratch, "tmp")
    os.makedirs(home)
    os.makedirs(tmp)
    env.update(
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY="dummy",
        HOME=home,
        CLAUDE_CODE_TMPDIR=tmp,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_ERROR_REPORTING="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        GIT_CONFIG_NOSYSTEM="1",
    )
    if os.environ.get("XDG_STATE_HOME"):  # the suite's throwaway seal-key folder (tests/__init__.py), so the
        env["XDG_STATE_HOME"] = os.environ["XDG_STATE_HOME"]  # client's ratchet and the test's find one key
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # --dangerously-skip-permissions refuses root otherwise
    return env


def make_repo(path):
    """A git repo with a benchmark whose score comes from the editable sol.py."""
    os.makedirs(path)
    for name, text in (("bench.py", BENCH), ("sol.py", SOL_BEFORE)):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "ratchet e2e"],
                ["git", "config", "user.email", "e2e@ratchet.invalid"],
                ["git", "config", "commit.gpgsign", "false"],
                ["git", "add", "bench.py", "sol.py"], ["git", "commit", "-q", "-m", "start"]):
        subprocess.run(cmd, cwd=path, check=True, stdout=subprocess.DEVNULL)


def skill_body(body):
    """The text block of the first user message that holds the expanded SKILL.md, or None."""
    for message in body.get("messages", []):
        if message.get("role") != "user" or isinstance(message.get("content"), str):
            continue
        for block in message["content"]:
            if block.get("type") == "text" and "Base directory for this skill:" in block.get("text", ""):
                return block["text"]
    return None


class ToolResultLog:
    """A scripted model's record of every tool result the client sent back,
    by step, for assertions and failure messages."""

    def __init__(self):
        self.results = []

    def _note(self, body, step):
        results = fa.tool_results(body)
        if results:
            self.results.append({"after": step, "is_error": bool(results[-1].get("is_error")),
                                 "text": fa.last_tool_result_text(body)})


class ScriptedRatchetUser(ToolResultLog):
    """The fake model's side of a `/ratchet` session: doctor, init, baseline, edit, iterate.

    Each turn is a function of the request that asks for it, so the CLI path is
    read from the SKILL.md body the client sent, and every tool result is kept
    in `results` for assertions and failure messages.
    """

    def __init__(self, repo):
        super().__init__()
        self.repo = repo
        self.cli = None
        self.reminders = []

    def _cli(self):
        return 'python3 "%s"' % self.cli

    def doctor(self, body):
        text = skill_body(body) or ""
        found = re.search(r"([^\s\"'`]*/skills/ratchet/scripts/ratchet\.py)", text)
        if not found:
            return "I cannot find ratchet.py in the skill's instructions."
        self.cli = found.group(1)
        if "RATCHET doctor" not in text:
            return "The skill does not ask for a doctor check before init."
        return fa.tool_use("Bash", {"command": "%s doctor %s --runs 2" % (self._cli(), ARGS),
                                    "description": "Check the benchmark before the first run"})

    def init(self, body):
        self._note(body, "doctor")
        return fa.tool_use("Bash", {"command": "%s init %s" % (self._cli(), ARGS),
                                    "description": "Start a ratchet run"})

    def baseline(self, body):
        self._note(body, "init")
        return fa.tool_use("Bash", {"command": "%s baseline" % self._cli(),
                                    "description": "Measure the baseline"})

    def read(self, body):
        self._note(body, "baseline")
        return fa.tool_use("Read", {"file_path": os.path.join(self.repo, "sol.py")})

    def edit(self, body):
        self._note(body, "read")
        return fa.tool_use("Edit", {"file_path": os.path.join(self.repo, "sol.py"),
                                    "old_string": "return 10", "new_string": "return 20"})

    def iterate(self, body):
        self._note(body, "edit")
        return fa.tool_use("Bash", {"command": '%s iterate --hypothesis "%s" --description "%s"'
                                    % (self._cli(), HYPOTHESIS, DESCRIPTION),
                                    "description": "Measure the candidate and decide"})

    def finish(self, body):
        self._note(body, "iterate")
        return "Iteration 1 was kept; stopping here for the test."

    def sent_back(self, body):
        """The turn after the plugin's Stop hook blocked the end of the last one (the run said continue)."""
        self.reminders.append(fa.messages_text({"messages": body["messages"][-2:]}))
        return "Stopping here for the test."

    def script(self):
        return ([self.doctor, self.init, self.baseline, self.read, self.edit, self.iterate, self.finish]
                + [self.sent_back] * STOP_HOOK_BLOCKS)


class FakeAnthropicSelfTest(unittest.TestCase):
    """The fake speaks the wire format the client expects; runs without claude."""

    def post(self, fake, body, path="/v1/messages?beta=true"):
        host, port = fake.base_url.rsplit("/", 1)[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read().decode()
        conn.close()
        return resp.status, resp.getheader("Content-Type"), data

    def test_plain_json_turns_and_side_requests(self):
        tools = [{"name": "Bash", "input_schema": {}}]
        script = [fa.tool_use("Bash", {"command": "true"}, id="toolu_a"),
                  lambda body: "saw: " + fa.last_tool_result_text(body)]
        with fa.FakeAnthropic(script) as fake:
            self.assertTrue(fake.base_url.startswith("http://127.0.0.1:"))
            status, ctype, data = self.post(fake, {"messages": [{"role": "user", "content": "hi"}],
                                                   "tools": tools})
            first = json.loads(data)
            side = json.loads(self.post(fake, {"max_tokens": 1, "messages": [
                {"role": "user", "content": "quota"}]})[2])
            second = json.loads(self.post(fake, {"tools": tools, "messages": [
                {"role": "assistant", "content": first["content"]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_a",
                                              "content": [{"type": "text", "text": "42"}]}]},
                {"role": "system", "content": "a reminder after the results"}]})[2])
            third = json.loads(self.post(fake, {"tools": tools, "messages": []})[2])
        self.assertEqual((status, ctype), (200, "application/json"))
        self.assertEqual(first["stop_reason"], "tool_use")
        self.assertEqual(first["content"][0]["input"], {"command": "true"})
        self.assertEqual(side["content"], [fa.text("ok")])
        self.assertEqual(second["content"], [fa.text("saw: 42")])
        self.assertEqual(second["stop_reason"], "end_turn")
        self.assertIn("exhausted", third["content"][0]["text"])
        self.assertTrue(fake.exhausted)
        self.assertEqual([r["main"] for r in fake.requests], [True, False, True, True])
        self.assertEqual(len(fake.main_requests()), 3)

    def test_streamed_turn_is_server_sent_events(self):
        block = fa.tool_use("Edit", {"file_path": "/x", "old_string": "a", "new_string": "b"})
        with fa.FakeAnthropic([[fa.text("editing"), block]]) as fake:
            status, ctype, data = self.post(fake, {"stream": True, "tools": [{"name": "Bash"}],
                                                   "messages": []})
        self.assertEqual((status, ctype), (200, "text/event-stream"))
        events = [chunk.split("\n") for chunk in data.strip().split("\n\n")]
        names = [e[0][len("event: "):] for e in events]
        payloads = [json.loads(e[1][len("data: "):]) for e in events]
        self.assertEqual(names[0], "message_start")
        self.assertEqual(names[-2:], ["message_delta", "message_stop"])
        self.assertEqual(payloads[-2]["delta"]["stop_reason"], "tool_use")
        deltas = [p["delta"] for p in payloads if p["type"] == "content_block_delta"]
        self.assertEqual(deltas[0], {"type": "text_delta", "text": "editing"})
        self.assertEqual(json.loads(deltas[1]["partial_json"]), block["input"])
        self.assertEqual(fake.errors, [])

    def test_a_failing_turn_is_reported_not_hung(self):
        with fa.FakeAnthropic([lambda body: 1 / 0]) as fake:
            reply = json.loads(self.post(fake, {"tools": [{"name": "Bash"}], "messages": []})[2])
        self.assertEqual(reply["stop_reason"], "end_turn")
        self.assertEqual(len(fake.errors), 1)
        self.assertIn("ZeroDivisionError", fake.errors[0])


class ClaudeCase(unittest.TestCase):
    """A test that runs the real client: fails in CI without it, skips elsewhere;
    `run_client` runs `claude -p PROMPT` with the plugin against a fake."""

    scratch_prefix = "ratchet-e2e-"

    def setUp(self):
        self.claude = find_claude()
        if self.claude is None:
            if os.environ.get("CI") == "true" and os.environ.get("RATCHET_E2E") != "0":
                self.fail("CI=true but no claude binary: set RATCHET_CLAUDE_BIN or run bash .ci/run")
            self.skipTest("claude not found (set RATCHET_CLAUDE_BIN, run bash .ci/run, or put claude on PATH)")
        self.scratch = tempfile.mkdtemp(prefix=self.scratch_prefix)
        self.addCleanup(shutil.rmtree, self.scratch, True)

    def run_client(self, fake, repo, prompt):
        cmd = [self.claude, "-p", prompt, "--plugin-dir", PLUGIN_DIR,
               "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=repo, env=client_env(fake.base_url, self.scratch),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=CLAUDE_TIMEOUT_SECONDS)
        proc.seconds = time.monotonic() - started
        return proc


class ClaudeCodeEndToEnd(ClaudeCase):
    def test_ratchet_skill_runs_init_baseline_and_a_kept_iteration(self):
        repo = os.path.join(self.scratch, "repo")
        make_repo(repo)
        user = ScriptedRatchetUser(repo)
        with fa.FakeAnthropic(user.script()) as fake:
            proc = self.run_client(fake, repo, "/ratchet " + ARGS)
        context = "\n".join([
            "exit code: %s after %.1fs" % (proc.returncode, proc.seconds),
            "tool results: %s" % json.dumps(user.results, indent=1),
            "fake errors: %s, turns used: %d" % (fake.errors, fake.turns_used()),
            "stderr tail: %s" % proc.stderr[-2000:],
            "stdout tail: %s" % proc.stdout[-3000:],
        ])

        bodies = [skill_body(b) for b in fake.main_requests()]
        bodies = [b for b in bodies if b]
        self.assertTrue(bodies, "no request carried the SKILL.md body\n" + context)
        body = bodies[0]
        self.assertIn(ARGS, body, "$ARGUMENTS was not replaced by the text after /ratchet")
        self.assertNotIn("$ARGUMENTS", body)
        self.assertNotIn("${CLAUDE_PLUGIN_ROOT}", body)
        self.assertEqual(os.path.realpath(user.cli or ""),
                         os.path.join(os.path.realpath(PLUGIN_DIR), "skills", "ratchet", "scripts", "ratchet.py"),
                         "the CLI path in the SKILL.md body is not this plugin's\n" + context)

        self.assertEqual(fake.errors, [], context)
        self.assertEqual(proc.returncode, 0, context)
        self.assertEqual(fake.turns_used(), len(user.script()), context)
        self.assertFalse(fake.exhausted, context)
        self.assertEqual([r["after"] for r in user.results],
                         ["doctor", "init", "baseline", "read", "edit", "iterate"], context)
        self.assertRegex(user.results[0]["text"], r"ok +metric: score = 10 ", context)
        self.assertIn("doctor: 0 fail", user.results[0]["text"], context)
        self.assertEqual([r for r in user.results if r["is_error"]], [], context)
        self.assertRegex(user.results[-1]["text"], r"next: continue", context)
        self.assertEqual(len(user.reminders), STOP_HOOK_BLOCKS, context)  # the Stop hook sent the model back
        self.assertIn("Stop hook feedback", user.reminders[0], context)
        self.assertIn("its last verdict said `next: continue` (iteration 1 done)", user.reminders[0], context)

        with open(os.path.join(repo, ".ratchet", "results.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
        decisions = [(r.get("iter"), r.get("decision")) for r in records]
        self.assertIn((0, "baseline"), decisions, context)
        self.assertIn((1, "keep"), decisions, context)
        with open(os.path.join(repo, "sol.py")) as f:
            self.assertEqual(f.read(), SOL_AFTER)
        log = subprocess.run(["git", "log", "-1", "--format=%B"], cwd=repo, check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        self.assertIn(DESCRIPTION, log)
        print("\ne2e: claude %s ran /ratchet in %.1fs (%d requests, %d scripted)"
              % (self.claude, proc.seconds, len(fake.requests), fake.turns_used()), file=sys.stderr)


class SpeedUser(ScriptedRatchetUser):
    """The scripted session of `SameSizeEditEndToEnd`: the edit keeps the file's size."""

    def read(self, body):
        self._note(body, "baseline")
        return fa.tool_use("Read", {"file_path": os.path.join(self.repo, "speed.py")})

    def edit(self, body):
        self._note(body, "read")
        return fa.tool_use("Edit", {"file_path": os.path.join(self.repo, "speed.py"),
                                    "old_string": "SPEED = 10", "new_string": "SPEED = 20"})


class SameSizeEditEndToEnd(ClaudeCase):
    """Issue 14: the agent tunes a constant (`SPEED = 10` -> `SPEED = 20`, same
    size) in a fast module the bench script imports, with bytecode written as
    in a user's shell. The paired swap rewrites both sides within a second;
    the keep must be recorded, measured 10 vs 20."""

    def test_same_size_edit_in_a_fast_imported_module_is_kept(self):
        repo = os.path.join(self.scratch, "repo")
        os.makedirs(repo)
        bench = 'import sys\nimport speed\n\nprint("bytecode written: %s" % (not sys.dont_write_bytecode))\nprint("score: %d" % speed.SPEED)\n'
        files = (("bench.py", bench), ("speed.py", "SPEED = 10\n"),
                 (".gitignore", "__pycache__/\n"))
        for name, text in files:
            with open(os.path.join(repo, name), "w") as f:
                f.write(text)
        for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "ratchet e2e"],
                    ["git", "config", "user.email", "e2e@ratchet.invalid"], ["git", "config", "commit.gpgsign", "false"],
                    ["git", "add", "-A"], ["git", "commit", "-q", "-m", "start"]):
            subprocess.run(cmd, cwd=repo, check=True, stdout=subprocess.DEVNULL)
        user = SpeedUser(repo)
        env = client_env("http://127.0.0.1:1", os.path.join(self.scratch, "probe"))
        self.assertNotIn("PYTHONDONTWRITEBYTECODE", env, "the client must run as a user's shell does")
        with fa.FakeAnthropic(user.script()) as fake:
            proc = self.run_client(fake, repo, "/ratchet " + ARGS)
        context = "exit %s\ntool results: %s\nfake errors: %s\nstderr tail: %s" % (
            proc.returncode, json.dumps(user.results, indent=1), fake.errors, proc.stderr[-2000:])
        self.assertEqual(fake.errors, [], context)
        self.assertEqual(proc.returncode, 0, context)
        self.assertEqual([r["after"] for r in user.results],
                         ["doctor", "init", "baseline", "read", "edit", "iterate"], context)
        with open(os.path.join(repo, ".ratchet", "results.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
        kept = [r for r in records if r.get("iter") == 1]
        self.assertEqual([r["decision"] for r in kept], ["keep"], context)
        self.assertEqual((kept[0]["trial_scores"], kept[0]["incumbent_scores"]), ([20.0, 20.0], [10.0, 10.0]), context)
        reports = [os.path.join(repo, ".ratchet", t["report"]) for t in kept[0]["trials"] + kept[0]["incumbent_trials"]]
        for path in reports:
            with open(path) as f:
                self.assertIn("bytecode written: True", f.read(), path)
        log = subprocess.run(["git", "show", "HEAD:speed.py"], cwd=repo, check=True, stdout=subprocess.PIPE, text=True)
        self.assertEqual(log.stdout, "SPEED = 20\n")


if __name__ == "__main__":
    unittest.main()
