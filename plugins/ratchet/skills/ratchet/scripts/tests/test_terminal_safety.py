"""Issue 15 point 5: text from the agent or a benchmark never reaches a
terminal raw. A hypothesis carrying an OSC 52 clipboard write, a screen
clear, a carriage return and a right-to-left override goes through iterate,
status, history, report (Markdown and HTML), `git log` of the experiment
branch, finalize and tail: no raw control byte in any of them, each shown as
visible text; `--json` and results.jsonl keep the text intact."""

import json
import os
import subprocess
import unittest

from ratchetlib.core import term
from tests.util import PY, RATCHET, TRIAL_PY, git, make_repo, write

EVIL = "speed up\x1b]52;c;ZXZpbA==\x07 \x1b[2J\rfake KEEP \u202eevil\u2066 \x9b1m"
RAW = [b"\x1b", b"\x07", b"\r", "\u202e".encode(), "\u2066".encode(), "\x9b".encode()]


def user_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
    env.pop("NO_COLOR", None)
    return env


class PrintableTest(unittest.TestCase):
    def test_every_unsafe_character_is_shown_not_dropped(self):
        self.assertEqual(term.printable("a\x1b[2Jb"), "a\\x1b[2Jb")
        self.assertEqual(term.printable("x\x07\r\x00\x7f\x9b"), "x\\x07\\r\\x00\\x7f\\x9b")
        self.assertEqual(term.printable("a\u202eb\u2066c\u2069\u200f"), "a\\u202eb\\u2066c\\u2069\\u200f")
        self.assertEqual(term.printable("caf\udce9"), "caf\\xe9")  # a non-UTF-8 byte of a file name
        self.assertEqual(term.printable("multi\nline\ttab"), "multi\nline\ttab")
        self.assertEqual(term.printable("one\nline\ttab", multiline=False), "one\\nline\\ttab")
        self.assertEqual(term.printable("plain ünïcode → ok"), "plain ünïcode → ok")
        once = term.printable(EVIL)
        self.assertEqual(term.printable(once), once)  # idempotent: safe text stays as it is

    def test_the_fast_path_never_passes_an_unsafe_character(self):
        """printable() returns text that str.isprintable() accepts without its
        regex: sound only while every unsafe character is non-printable."""
        import re
        unsafe = re.compile(f"[{term._UNSAFE}]")
        slipped = [hex(c) for c in range(0x110000) if unsafe.match(chr(c)) and chr(c).isprintable()]
        self.assertEqual(slipped, [])
        for c in ("\x1b", "\u202e", "\x9b", "\udce9", "\x00", "\u061c"):
            self.assertNotIn(c, term.printable(f"ok {c} ok"))
            self.assertNotIn(c, term.printable(f"ok {c} ok", multiline=False))


class TerminalSafetyCliTest(unittest.TestCase):
    def setUp(self):
        self.repo = make_repo(self, {"bench.py": "import sys\nv = open('value.txt').read().strip()\n"
                                                 "print('score:', v)\nsys.exit(0 if v.isdigit() else 1)\n",
                                     "value.txt": "10\n"})

    def cli(self, *argv, code=0):
        p = subprocess.run([PY, RATCHET, *argv], cwd=self.repo, env=user_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, code, p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace"))
        return p.stdout + p.stderr

    def assert_clean(self, what, data: bytes):
        for raw in RAW:
            self.assertNotIn(raw, data, f"{what}: raw {raw!r} reached the output")

    def test_an_arm_name_with_escapes_is_refused_in_one_printable_line(self):
        p = subprocess.run([PY, RATCHET, "init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max",
                            "--metric-name", "score", "--report-source", "stdout", "--strategy", "bandit",
                            "--arms", "fast\x1b[2J,slow"], cwd=self.repo, env=user_env(), stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 2)
        self.assert_clean("init --arms", p.stderr)
        self.assertIn(b"bad arm name 'fast\\x1b[2J'", p.stderr)

    def test_agent_text_is_neutralised_everywhere_and_intact_in_json(self):
        self.cli("init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                 "--report-source", "stdout", "--decision", "mean")
        self.cli("baseline")
        write(self.repo, "value.txt", "20\n")
        out = self.cli("iterate", "--hypothesis", EVIL, "--description", EVIL)
        self.assert_clean("iterate", out)
        self.assertIn(b"KEEP", out)
        write(self.repo, "value.txt", "30\x1b[2J\x07\n")   # the benchmark prints escapes and crashes
        out = self.cli("iterate", "--hypothesis", "crash " + EVIL)
        self.assert_clean("iterate (crash)", out)
        for argv in (["status"], ["history"], ["history", "--all"], ["report"], ["tail"], ["ideas", "add", EVIL],
                     ["ideas", "list"]):
            out = self.cli(*argv)
            self.assert_clean(" ".join(argv), out)
        self.assertIn(b"\\x1b]52;c;ZXZpbA==\\x07", self.cli("history"))  # shown as visible text
        self.cli("report", "--html", os.path.join(self.repo, ".ratchet", "r.html"))
        with open(os.path.join(self.repo, ".ratchet", "r.html"), "rb") as f:
            self.assert_clean("report --html", f.read())
        branch = json.loads(self.cli("status", "--json"))["config"]["branch"]
        log = subprocess.run(["git", "log", "--format=%B", branch], cwd=self.repo, stdout=subprocess.PIPE).stdout
        self.assert_clean("git log", log)
        self.assertIn(b"speed up\\x1b]52", log)
        git(self.repo, "checkout", "-q", "--", ".")
        out = self.cli("finalize")
        self.assert_clean("finalize", out)
        final = json.loads(self.cli("finalize", "--branch", "final2", "--json"))
        log = subprocess.run(["git", "log", "--format=%B", "final2"], cwd=self.repo, stdout=subprocess.PIPE).stdout
        self.assert_clean("git log of the finalized branch", log)
        self.assertTrue(final["commits"])
        # JSON keeps what the agent wrote, byte for byte
        first = next(r for r in json.loads(self.cli("history", "--json")) if r["iter"] == 1)
        self.assertEqual((first["hypothesis"], first["description"]), (EVIL, EVIL))
        idea = json.loads(self.cli("ideas", "list", "--json"))[0]["text"]  # ideas fold whitespace (\r) when stored
        self.assertIn("\x1b]52;c;ZXZpbA==\x07 \x1b[2J", idea)
        with open(os.path.join(self.repo, ".ratchet", "results.jsonl")) as f:
            self.assertIn(EVIL, [json.loads(line).get("hypothesis") for line in f])


if __name__ == "__main__":
    unittest.main()
