"""Issue 15, point 4: every process a trial starts is ratchet's to end.

Black-box, through the CLI as a user runs it (a real `ratchet.py` process, a
user's environment): a trial whose benchmark leaves a continuously re-forking
daemon, a child-breeding daemon and env-clearing daemons behind leaves
nothing running after `iterate`; a SIGKILLed `iterate` leaves nothing once
`status` ran; and when its keeper is SIGKILLed too (nothing contains the tree
any more) `status` ends what is provably the trial's and records, without
killing, what is not (bench/hygiene.py counts all this over many trials).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

from ratchetlib.io import critical, keeper, leftovers, procs, runner
from tests.spawner import expected
from tests.util import INIT, PY, RATCHET, RepoTest, SCRIPTS, TRIAL_PY, alive, read, slurp, wait_for

SPAWNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spawner.py")
BENCH = ("import os, subprocess, sys\n"
         "if os.environ.get('SPAWN_PIDFILE'):\n"
         "    subprocess.run([sys.executable, os.environ['SPAWNER'], os.environ['SPAWN_PIDFILE'],\n"
         "                    os.environ['SPAWN_MODE'], *os.environ['SPAWN_PATTERNS'].split()], stdout=sys.stderr)\n"
         "print('score:', open('value.txt').read().strip())\n")
USER_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}


def tagged(tag: str) -> list:
    """Live processes whose command line holds `tag` (every spawner process keeps its pid file there)."""
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if tag.encode() not in f.read():
                    continue
        except OSError:
            continue
        stat = keeper.stat_fields(name)
        if stat and stat[0] not in (b"Z", b"X"):
            found.append(int(name))
    return found


@unittest.skipUnless(sys.platform.startswith("linux"), "containment is Linux's (/proc, subreaper); macOS is best effort")
class ContainmentTest(RepoTest):
    files = {"bench.py": BENCH, "value.txt": "10\n"}

    def setUp(self):
        super().setUp()
        self.pidfile = os.path.join(tempfile.mkdtemp(prefix="ratchet-contain-"), "pids")
        self.addCleanup(lambda: keeper.freeze_kill(lambda: tagged(self.pidfile)))
        self.ratchet(*INIT, "--decision", "mean", "--trials", "1")
        self.ratchet("baseline")
        with open(os.path.join(self.repo, "value.txt"), "w") as f:
            f.write("12\n")

    def env(self, mode, patterns, **extra):
        return {**USER_ENV, "SPAWNER": SPAWNER, "SPAWN_PIDFILE": self.pidfile, "SPAWN_MODE": mode,
                "SPAWN_PATTERNS": " ".join(patterns), **extra}

    def ratchet(self, *argv, env=None, code=0):
        p = subprocess.run([PY, RATCHET, "-C", self.repo, *argv], env=env or USER_ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(p.returncode, code, f"{argv}: {p.stdout}{p.stderr}")
        return p.stdout + p.stderr

    def wait_tree(self, patterns):
        want = expected(patterns)
        self.assertTrue(wait_for(lambda: os.path.exists(self.pidfile) and len(slurp(self.pidfile).split()) >= want, 30),
                        "tree never up")

    def test_a_re_forking_daemon_leaves_nothing_running_after_iterate(self):
        patterns = ["reforker", "breeder", "env-clear", "double-fork", "fd-closer"]
        out = self.ratchet("iterate", "--hypothesis", "bigger", env=self.env("exit", patterns))
        self.assertIn("iter 1: KEEP", out)
        self.assertTrue(os.path.exists(self.pidfile))
        self.assertEqual(tagged(self.pidfile), [], "trial processes outlived iterate")
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "UNCLEAN")))
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "procs")))

    def test_a_killed_iterate_leaves_nothing_once_status_ran(self):
        patterns = ["env-clear", "reforker", "fd-closer"]
        p = subprocess.run([PY, RATCHET, "-C", self.repo, "iterate", "--hypothesis", "bigger"], timeout=120,
                           env=self.env("hang", patterns, RATCHET_FAULT="kill:trial"), capture_output=True)
        self.assertEqual(p.returncode, -9)
        self.wait_tree(patterns)  # the keeper holds the tree for the next command
        out = self.ratchet("status")
        self.assertRegex(out, r"killed \d+ process\(es\) the killed `iterate` \(pid \d+\) left running")
        self.assertTrue(wait_for(lambda: not tagged(self.pidfile), 5), "trial processes outlived the next command")
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "UNCLEAN")))
        self.assertIn("iter 1: KEEP", self.ratchet("iterate", "--hypothesis", "bigger"))

    def test_when_the_keeper_dies_too_what_is_not_provably_the_trials_is_recorded_not_killed(self):
        patterns = ["env-clear", "reforker", "fd-closer"]
        proc = subprocess.Popen([PY, RATCHET, "-C", self.repo, "iterate", "--hypothesis", "bigger"],
                                env=self.env("hang", patterns), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_tree(patterns)
        start = runner.pid_start(proc.pid)
        proc.kill()
        proc.wait()
        prefix = runner.marker_prefix(proc.pid, start)
        keepers = leftovers.keepers_of(leftovers._records(os.path.join(self.repo, ".ratchet", "procs"), prefix))
        self.assertEqual(len(keepers), 1)
        for k in keepers:
            os.kill(k, signal.SIGKILL)
        procs.wait_gone(list(keepers))
        keeper.reap()
        out = self.ratchet("status")
        said = [l for l in out.splitlines() if "not provably" in l]
        self.assertEqual(len(said), 1, out)
        marker = json.loads(read(self.repo, ".ratchet/UNCLEAN"))
        suspects = {p["pid"] for p in marker["suspects"]}
        left = set(tagged(self.pidfile))
        self.assertTrue(left, "the fd-closer, which nothing identifies, should be left running")
        self.assertLessEqual(left, suspects, "a survivor is not recorded in UNCLEAN")
        self.assertTrue(all("spawner.py" in p["cmd"] for p in marker["suspects"] if p["pid"] in left))
        err = self.ratchet("iterate", "--hypothesis", "bigger", code=2)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("may be an earlier trial's", err)
        self.assertIn("left alone, as not provably a trial's", self.ratchet("clean"))
        self.assertEqual(set(tagged(self.pidfile)), left, "clean killed a process it could not prove was the trial's")


class Stop(BaseException):
    """What SIGTERM raises here, as ratchet.py's handler raises Terminated."""


def _raise_stop(*_):
    raise Stop()


@unittest.skipUnless(sys.platform.startswith("linux"), "containment is Linux's (/proc, subreaper); macOS is best effort")
class SignalWindowTest(unittest.TestCase):
    """A SIGTERM that lands while a trial's keeper starts, or while its tree is
    swept, must not leave a keeper holding a tree after the command ends (it
    would, for keeper.GRACE_SECONDS: the soak's 'no stray after a clean end')."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ratchet-window-")
        self.tag = os.path.join(self.dir, "tag")
        self.command = f"{TRIAL_PY} -c 'import time; time.sleep(60)' {self.tag} & {TRIAL_PY} -c 'import time; time.sleep(60)' {self.tag}"
        self.addCleanup(lambda: keeper.freeze_kill(lambda: tagged(self.tag)))
        self.addCleanup(signal.signal, signal.SIGTERM, signal.signal(signal.SIGTERM, _raise_stop))

    def child(self):
        return runner.Child(self.command, self.dir, os.path.join(self.dir, "o"), os.path.join(self.dir, "e"),
                            record_dir=os.path.join(self.dir, "procs"))

    def gone(self, keeper_pid=None):
        """Nothing of the trial left (the shell's and the sleepers' command
        lines hold the tag), its keeper included (a fork of this process)."""
        return wait_for(lambda: not tagged(self.tag) and not (keeper_pid and alive(keeper_pid)), 5)

    def test_a_sigterm_while_the_keeper_starts_ends_the_tree_then_is_raised(self):
        real, keepers = runner._write_record, []

        def record_then_sigterm(folder, child):
            keepers.append(child.proc.keeper.pid)
            wait_for(lambda: len(tagged(self.tag)) >= 3, 10)  # shell and sleepers up
            os.kill(os.getpid(), signal.SIGTERM)
            return real(folder, child)
        with mock.patch.object(runner, "_write_record", record_then_sigterm), self.assertRaises(Stop):
            self.child()
        self.assertTrue(self.gone(keepers[0]), f"left running: {tagged(self.tag)}")
        self.assertEqual(runner._LIVE, [])
        self.assertFalse(os.path.exists(os.path.join(self.dir, "procs")))

    def test_a_sigterm_during_the_sweep_is_raised_once_the_tree_is_killed(self):
        child = self.child()
        self.addCleanup(child.kill)
        self.assertTrue(wait_for(lambda: len(tagged(self.tag)) >= 3, 10))
        real = keeper.freeze_kill

        def sigterm_then_sweep(find, **kw):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(find, **kw)
        with mock.patch.object(keeper, "freeze_kill", sigterm_then_sweep), self.assertRaises(Stop):
            child.kill()
        self.assertTrue(self.gone(child.proc.keeper.pid), f"left running: {tagged(self.tag)}")
        self.assertEqual(runner._LIVE, [])

    def test_a_command_that_exits_without_finishing_its_trial_leaves_nothing(self):
        script = (f"import sys; sys.path.insert(0, {SCRIPTS!r}); from ratchetlib.io import runner; "
                  f"runner.Child({self.command!r}, {self.dir!r}, {self.dir + '/o'!r}); sys.exit(0)")
        subprocess.run([PY, "-c", script], check=True, timeout=30)
        self.assertTrue(self.gone(), f"left running: {tagged(self.tag)}")  # the keeper too: a fork of that command, whose line holds the tag

    def test_deferred_runs_settle_first_then_delivers_the_signal(self):
        seen = []
        with self.assertRaises(Stop):
            with critical.deferred(settle=lambda: seen.append("settled")):
                os.kill(os.getpid(), signal.SIGTERM)
                seen.append("body done")
        self.assertEqual(seen, ["body done", "settled"])
        self.assertIs(signal.getsignal(signal.SIGTERM), _raise_stop)


if __name__ == "__main__":
    unittest.main()
