"""Shared fixtures: throwaway git repositories and an in-process CLI runner."""

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from tests import USER_SHELL_UNSET  # noqa: F401 (cleared for every process a test starts)

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATCHET = os.path.join(SCRIPTS, "ratchet.py")
PY = sys.executable
# The interpreter for the suite's own benchmarks and stand-in agents: stdlib-only
# scripts, so they run without `site` (-S), as ratchet's hooks and keeper do. On
# the build machine `site` loads a sandbox .pth that costs ~35 ms per start, and a
# suite run starts ~2,800 of them. Nothing ratchet does depends on a trial's
# site-packages; the tests of how a user's own `python3` behaves (bytecode caches
# in test_fresh, the real-client end-to-end tests) start plain `python3`.
TRIAL_PY = f"{PY} -S"

# A deterministic benchmark: prints the number stored in value.txt.
BENCH = "print('score:', open('value.txt').read().strip())\n"


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True).stdout


def write(repo, rel, text):
    full = os.path.join(repo, rel)
    os.makedirs(os.path.dirname(full) or ".", exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def read(repo, rel):
    with open(os.path.join(repo, rel)) as f:
        return f.read()


def make_repo(testcase, files=None, commit=True):
    """A new git repo (cleaned up after the test) holding `files`."""
    root = tempfile.mkdtemp(prefix="ratchet-test-")
    testcase.addCleanup(shutil.rmtree, root, True)
    repo = os.path.join(root, "repo")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "t")
    git(repo, "config", "user.email", "t@example.invalid")
    for rel, text in (files or {"bench.py": BENCH, "value.txt": "10\n"}).items():
        write(repo, rel, text)
    if commit:
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "start")
    return repo


_PORTS = set()


def free_port() -> int:
    """A free port on 127.0.0.1 that this process never handed out before:
    the kernel may give a port it just released again, and two daemons told
    the same port (a Ray head's components, Slurm's) refuse to start."""
    import socket
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS:
            _PORTS.add(port)
            return port


def slurp(path):
    with open(path) as f:
        return f.read()


def alive(pid):
    """Whether `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (macOS), or it just exited
        return True


def wait_for(pred, seconds=20.0):
    """Poll `pred` until it is true (True) or `seconds` pass (False)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def belongs(pid, needle: str) -> bool:
    """Whether live process `pid` is this test's: `needle` (a path the test
    made) in its command line or environment, or its working folder under it.
    Check before killing a pid read earlier: once pids wrap (pid_max is 32768
    on many machines) the number may name an unrelated process."""
    for part in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{part}", "rb") as f:
                if needle.encode() in f.read():
                    return True
        except OSError:
            pass
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(needle)
    except OSError:
        return False


def wait_for_file(path, seconds=20.0):
    """Wait until `path` holds something (written, not just created); AssertionError after `seconds`."""
    if not wait_for(lambda: os.path.exists(path) and os.path.getsize(path), seconds):
        raise AssertionError(f"{path} never appeared")


def cli(*argv, cwd=None):
    """Run the CLI's main in-process; return (exit code, stdout, stderr)."""
    from ratchetlib.cli.main import main
    out, err = io.StringIO(), io.StringIO()
    args = (["-C", cwd] if cwd else []) + list(argv)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


INIT = ["init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
        "--report-source", "stdout", "--protect", "bench.py"]


class RepoTest(unittest.TestCase):
    """Base class: a repo with bench.py (protected) and value.txt (editable)."""

    files = None

    def setUp(self):
        self.repo = make_repo(self, self.files)

    def run_ok(self, *argv):
        code, out, err = cli(*argv, cwd=self.repo)
        self.assertEqual(code, 0, f"{argv}: {err}{out}")
        return out

    def run_fail(self, *argv, code=2):
        got, out, err = cli(*argv, cwd=self.repo)
        self.assertEqual(got, code, f"{argv}: expected exit {code}, got {got}: {err}{out}")
        self.assertTrue(err.startswith("ratchet: error: "), err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        return err

    def start(self, *extra):
        self.run_ok(*INIT, *extra)
        return self.run_ok("baseline")

    def records(self):
        import json
        with open(os.path.join(self.repo, ".ratchet", "results.jsonl")) as f:
            return [json.loads(l) for l in f]

    def state(self):
        import json
        with open(os.path.join(self.repo, ".ratchet", "state.json")) as f:
            return json.load(f)

    def set_value(self, v):
        write(self.repo, "value.txt", f"{v}\n")
