"""No repository hook, filter or diff driver runs inside ratchet's own git
calls, and a git call that hangs is a one-line error (issue 15 point 3, issue
14 point 4). Black-box: ratchet.py runs as a subprocess in a user's default
environment (bytecode written, output buffered) on throwaway repositories."""

import os
import subprocess
import tempfile
import time
import unittest

from tests.util import PY, RATCHET, TRIAL_PY, git, make_repo, write

HOOKS = ("post-checkout", "post-commit", "reference-transaction", "pre-commit", "post-index-change",
         "pre-auto-gc", "post-rewrite")
# A value.txt edit goes through every git path ratchet has: status, add, commit, diff, apply, checkout.
BENCH = "print('score:', open('value.txt').read().strip())\n"


def user_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
    env.update(extra)
    return env


class GitSafety(unittest.TestCase):
    def setUp(self):
        self.repo = make_repo(self, {"bench.py": BENCH, "value.txt": "10\n",
                                     ".gitattributes": "*.txt filter=evil diff=evil\n*.py filter=proc diff=evil\n"})
        self.log = os.path.join(os.path.dirname(self.repo), "calls.log")
        sh = f"echo $0 >> {self.log}"
        for name in HOOKS:
            path = os.path.join(self.repo, ".git", "hooks", name)
            write(self.repo, f".git/hooks/{name}", f"#!/bin/sh\necho {name} >> {self.log}\n"
                  + ("exec sleep 1000\n" if name == "reference-transaction" else ""))
            os.chmod(path, 0o755)
        for key, cmd in (("filter.evil.clean", "clean"), ("filter.evil.smudge", "smudge"),
                         ("filter.proc.process", "process"), ("diff.evil.command", "extdiff"),
                         ("diff.evil.textconv", "textconv")):
            git(self.repo, "config", key, f"sh -c '{sh.replace('$0', cmd)}; cat'")
        git(self.repo, "config", "filter.evil.required", "true")
        git(self.repo, "config", "filter.proc.required", "true")
        git(self.repo, "config", "core.fsmonitor", f"sh -c '{sh.replace('$0', 'fsmonitor')}'")
        if os.path.exists(self.log):
            os.unlink(self.log)

    def ratchet(self, *argv, env=None, timeout=120):
        p = subprocess.run([PY, RATCHET, *argv], cwd=self.repo, env=env or user_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *argv):
        code, out, err = self.ratchet(*argv)
        self.assertEqual(code, 0, f"{argv}: {err}{out}")
        return out

    def calls(self):
        try:
            with open(self.log) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def test_a_whole_run_calls_no_hook_filter_or_driver(self):
        self.ok("init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                "--report-source", "stdout", "--decision", "mean", "--trials", "1")
        self.ok("baseline")
        started = time.monotonic()
        for value, verdict in (("20", "KEEP"), ("5", "REVERT"), ("30", "KEEP"), ("1", "REVERT")):
            write(self.repo, "value.txt", value + "\n")
            self.assertIn(verdict, self.ok("iterate", "--hypothesis", f"value {value}"))
        write(self.repo, "new.txt", "an untracked candidate file\n")
        write(self.repo, "value.txt", "2\n")
        self.assertIn("REVERT", self.ok("iterate", "--hypothesis", "a new file and a worse value"))
        self.ok("diff", "--best")
        self.ok("stop")
        self.assertLess(time.monotonic() - started, 60)  # the sleeping hook would hang any call that ran it
        self.assertEqual(self.calls(), [])
        self.assertEqual(git(self.repo, "rev-parse", "--abbrev-ref", "HEAD").strip(), "main")
        # the same repository's hooks and filters do run under plain git: the probe is live
        write(self.repo, "value.txt", "3\n")
        subprocess.run(["git", "-c", "core.fsmonitor=false", "add", "value.txt"], cwd=self.repo, check=True)
        self.assertIn("clean", self.calls())


# The candidate's first run defines a new filter driver for *.txt in .git/config and .git/info/attributes.
LATE_BENCH = """import os, subprocess, sys
value = open('value.txt').read().strip()
print('score:', value)
mark = sys.argv[1]
if value == '20' and not os.path.exists(mark):
    log = sys.argv[2]
    for var in ('clean', 'smudge'):
        subprocess.run(['git', 'config', 'filter.late.' + var, "sh -c 'echo late-" + var + " >> " + log + "; cat'"])
    subprocess.run(['git', 'config', 'filter.late.required', 'true'])
    with open(os.path.join('.git', 'info', 'attributes'), 'a') as f:
        f.write('*.txt filter=late\\n')
    open(mark, 'w').close()
"""


class FilterAddedByATrial(unittest.TestCase):
    """The filter list is kept between git calls (gitfilters.py), yet a driver
    a trial defines mid-iteration is never run by a later swap, status or commit."""

    def test_a_driver_a_trial_defines_never_runs_in_ratchets_calls(self):
        repo = make_repo(self, {"bench.py": LATE_BENCH, "value.txt": "10\n"})
        base = os.path.dirname(repo)
        mark, log = os.path.join(base, "configured"), os.path.join(base, "late.log")
        run = lambda *argv: subprocess.run([PY, RATCHET, *argv], cwd=repo, env=user_env(), stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, timeout=120)
        p = run("init", "--run-command", f"{TRIAL_PY} bench.py {mark} {log}", "--direction", "max", "--metric-name",
                "score", "--report-source", "stdout", "--protect", "bench.py")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run("baseline")
        self.assertEqual(p.returncode, 0, p.stderr)
        write(repo, "value.txt", "20\n")  # the candidate defines the driver; status, swaps, the revert follow
        p = run("iterate", "--hypothesis", "a bigger value")
        self.assertIn("tampered", p.stdout + p.stderr)  # changing git's configuration is caught as before
        self.assertTrue(os.path.exists(mark), "the trial did not define its filter: the probe is not live")
        self.assertFalse(os.path.exists(log) and open(log).read(), f"a trial's filter ran: {p.stdout}{p.stderr}")


class GitTimeout(unittest.TestCase):
    """A fake `git` first on PATH hangs on one subcommand; the real one does the rest."""

    def test_a_hung_git_call_is_one_line_naming_it(self):
        repo = make_repo(self)
        real = subprocess.run(["sh", "-c", "command -v git"], stdout=subprocess.PIPE, text=True).stdout.strip()
        bindir = tempfile.mkdtemp(prefix="ratchet-fakegit-")
        self.addCleanup(lambda: __import__("shutil").rmtree(bindir, True))
        with open(os.path.join(bindir, "git"), "w") as f:
            f.write(f'#!/bin/sh\nfor a in "$@"; do [ -n "$HANG_ON" ] && [ "$a" = "$HANG_ON" ] && exec sleep 1000; done\nexec {real} "$@"\n')
        os.chmod(os.path.join(bindir, "git"), 0o755)
        env = user_env(PATH=bindir + os.pathsep + os.environ["PATH"], RATCHET_GIT_TIMEOUT_SECONDS="1")
        init = [PY, RATCHET, "init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name",
                "score", "--report-source", "stdout", "--decision", "mean", "--trials", "1"]
        for argv in (init, [PY, RATCHET, "baseline"]):
            subprocess.run(argv, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
        write(repo, "value.txt", "20\n")
        started = time.monotonic()
        p = subprocess.run([PY, RATCHET, "iterate", "--hypothesis", "h"], cwd=repo, env={**env, "HANG_ON": "status"},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertRegex(p.stderr, r"^ratchet: error: git status did not finish within 1 s .*RATCHET_GIT_TIMEOUT_SECONDS")
        self.assertNotIn("Traceback", p.stderr)
        # nothing was lost: the next command, with a working git, measures the candidate
        p = subprocess.run([PY, RATCHET, "iterate", "--hypothesis", "h"], cwd=repo, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("KEEP", p.stdout)


if __name__ == "__main__":
    unittest.main()
