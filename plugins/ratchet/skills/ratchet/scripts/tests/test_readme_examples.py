"""The README's `/ratchet ...` examples, run exactly as printed.

Why: a user's first command is copied from the README; an example that stops
at `init` (a required flag it does not show) is the first thing they see.
Each `/ratchet --...` line of the README's code blocks is split as the skill
passes it on (shell words, quoting kept), and run through `doctor` and
`init` + `baseline` in a scratch repository whose benchmark matches the
example: the command's script prints `NAME: value`, or writes the file its
`--report-source` names; every file the example protects or makes editable
exists.
"""

import json
import os
import re
import shlex
import unittest

from tests.util import cli, make_repo

README = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 6, "README.md"))


def examples():
    """Every `/ratchet --...` line inside a README code block."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    return [line[len("/ratchet "):] for b in blocks for line in b.splitlines() if line.startswith("/ratchet --")]


def flag(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def fixture(argv):
    """Files for a repository where the example's benchmark works."""
    script = shlex.split(flag(argv, "--run-command"))[1]
    metric, source = flag(argv, "--metric-name"), flag(argv, "--report-source")
    if source and source.startswith("jsonl:"):
        path, key = source[len("jsonl:"):].split("#")
        body = f"import json\nwith open({path!r}, 'w') as f:\n    f.write(json.dumps({{{key!r}: 0.5}}) + '\\n')\n"
    else:
        body = f"print('{metric}: 12.3')\n"
    files = {script: body}
    for name in ("--protect", "--editable"):
        for path in [argv[i + 1] for i, a in enumerate(argv) if a == name]:
            files.setdefault(path, "x = 1\n")
    return files


class ReadmeExamples(unittest.TestCase):
    def test_there_are_examples_and_one_leaves_out_the_report_source(self):
        found = examples()
        self.assertGreaterEqual(len(found), 2, found)
        self.assertTrue(any("--report-source" not in e for e in found), found)

    def test_each_example_passes_doctor_and_starts_a_run(self):
        for args in examples():
            with self.subTest(args=args):
                argv = shlex.split(args)
                repo = make_repo(self, fixture(argv))
                code, out, err = cli("doctor", *argv, "--runs", "2", "--json", cwd=repo)
                report = json.loads(out)
                fails = [c for c in report["checks"] if c["status"] == "fail"]
                self.assertEqual((code, fails), (0, []), args)
                code, out, err = cli("init", *argv, cwd=repo)
                self.assertEqual(code, 0, f"{args}: {err}")
                if "--report-source" not in argv:
                    self.assertIn("report source: stdout (no --report-source given", out)
                code, out, err = cli("baseline", cwd=repo)
                self.assertEqual(code, 0, f"{args}: {err}{out}")
                self.assertIn("baseline: " + flag(argv, "--metric-name"), out)


if __name__ == "__main__":
    unittest.main()
