"""Trial execution: capture to disk, exit codes, timeouts, process trees."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

from ratchetlib.core.errors import RatchetError
from ratchetlib.io import keeper, kept, leftovers, procs, runner
from tests.util import TRIAL_PY, alive, slurp, wait_for

PY = sys.executable
HERE = os.path.dirname(os.path.abspath(__file__))



@unittest.skipUnless(os.path.isdir("/proc"), "needs /proc (Linux)")
class MarkerScanTest(unittest.TestCase):
    """A trial's sweep reads only processes made since its keeper: the stat
    of those after the pid allocator's mark, the environment of those
    started at or after the trial's shell (issue 18: every other read is an
    open of /proc, hundreds on a desktop)."""

    def setUp(self):
        self.marker = runner.new_marker()
        self.p = subprocess.Popen(["sleep", "30"], env={**os.environ, procs.MARKER: self.marker})
        self.addCleanup(self.p.wait)
        self.addCleanup(self.p.kill)
        self.assertTrue(wait_for(lambda: self.p.pid in procs.find_marked(self.marker), 5))  # exec'd: environ has it

    def test_the_environment_is_read_only_among_the_pids_given(self):
        self.assertEqual(procs.find_marked(self.marker, among=[self.p.pid, os.getpid()]), [self.p.pid])
        self.assertEqual(procs.find_marked(self.marker, among=[os.getppid()]), [])

    def test_the_table_since_a_mark_holds_what_came_after_it_and_only_that(self):
        forks = keeper.pid_mark()[1]
        pid = self.p.pid
        made_after = keeper.table(since=(pid - 1, forks, 0))  # as if the mark was taken just before it
        self.assertIn(pid, made_after)
        stat = made_after[pid]  # its stat line: its parent and start time (the rest moves as it runs)
        self.assertEqual((int(stat[1]), int(stat[19])), (os.getpid(), keeper.start_of(pid)))
        self.assertNotIn(pid, keeper.table(since=(pid, forks, 0)))  # the mark's own pid and older: not read

    def test_pids_that_may_have_wrapped_a_whole_lap_mean_every_process_is_read(self):
        lapped = keeper.table(since=(self.p.pid, keeper.pid_mark()[1] - 10 ** 9, 0))
        self.assertIn(self.p.pid, lapped)
        self.assertIn(os.getpid(), lapped)

    def test_a_real_mark_taken_before_a_process_finds_it(self):
        m = keeper.pid_mark()
        q = subprocess.Popen(["sleep", "30"])
        self.addCleanup(q.wait)
        self.addCleanup(q.kill)
        self.assertIn(q.pid, keeper.table(since=m))


@unittest.skipUnless(os.path.isdir("/proc"), "needs /proc (Linux)")
class KeeperForkTest(unittest.TestCase):
    """The keeper is forked from ratchet, not exec'd (issue 18: ~12 ms a trial)."""

    def test_the_keeper_is_a_fork_that_holds_none_of_ratchets_descriptors_and_its_record_names_it(self):
        """keeper.fork: no interpreter start, so nothing of ratchet's may leak
        into a process that can outlive it (a held repository lock would stop
        the next command); leftovers.py finds it through the trial's record."""
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        out, records = os.path.join(folder, "o"), os.path.join(folder, "procs")
        held = os.open(os.path.join(folder, "lock"), os.O_CREAT | os.O_RDWR)  # stands for the repository lock
        self.addCleanup(os.close, held)
        os.set_inheritable(held, True)  # even one an exec would pass on
        child = runner.Child("sleep 30", folder, out, record_dir=records)
        self.addCleanup(child.kill)
        k = child.proc.keeper.pid
        self.assertEqual(procs.argv_of(k), procs.argv_of(os.getpid()))  # a fork: never exec'd
        targets = {int(fd): os.readlink(f"/proc/{k}/fd/{fd}") for fd in os.listdir(f"/proc/{k}/fd")}
        self.assertNotIn(os.path.join(folder, "lock"), targets.values())
        self.assertEqual(targets[0], os.devnull)
        self.assertEqual(targets[1], out)
        self.assertEqual(targets[2], out)
        self.assertTrue(all(t.startswith("pipe:") for fd, t in targets.items() if fd > 2), targets)
        self.assertEqual(os.readlink(f"/proc/{k}/cwd"), folder)
        self.assertEqual(os.getsid(k), k)  # its own session: no terminal signal, no group kill of ratchet reaches it
        prefix = runner.marker_prefix(os.getpid(), runner.pid_start(os.getpid()))
        self.assertEqual(leftovers.keepers_of(leftovers._records(records, prefix)), {k: keeper.start_of(k)})

    def test_prctl_through_the_c_core_makes_a_subreaper_without_importing_ctypes(self):
        """subreaper._libc_prctl: an orphan of a child is re-parented to the
        process that called it (issue 18: ctypes costs ~3 ms to import)."""
        code = ("import os, sys; from ratchetlib.io import subreaper\n"
                "assert subreaper.become_subreaper()\n"
                "r, w = os.pipe()\n"
                "if os.fork() == 0:\n"
                "    if os.fork() == 0:\n"
                "        import time; time.sleep(0.3); os.write(w, str(os.getppid()).encode()); os._exit(0)\n"
                "    os._exit(0)\n"
                "os.close(w); print(os.read(r, 64).decode() == str(os.getpid()), 'ctypes' in sys.modules)\n")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
        out = subprocess.run([PY, "-c", code], cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(out.stdout.split(), ["True", "False"], out.stderr)

    def test_a_keeper_forked_from_a_thread_still_runs_the_trial(self):
        """loop --parallel starts trials from its slot threads."""
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        out, got = os.path.join(folder, "o"), []
        t = threading.Thread(target=lambda: got.append(runner.run("echo from-a-thread; exit 3", folder, out, None)))
        t.start()
        t.join(30)
        self.assertEqual(got[0].exit_code, 3)
        self.assertEqual(slurp(out), "from-a-thread\n")

    def test_a_cwd_that_is_gone_is_a_one_line_error(self):
        folder = tempfile.mkdtemp()
        shutil.rmtree(folder)
        out = os.path.join(tempfile.mkdtemp(), "o")
        self.addCleanup(shutil.rmtree, os.path.dirname(out), True)
        with self.assertRaises(RatchetError) as e:
            runner.run("true", folder, out, None)
        self.assertIn(f"cannot enter {folder}", str(e.exception))

    def test_a_released_keeper_is_collected_before_the_next_trial_starts(self):
        """kept.Kept.release does not wait for the keeper's exit (issue 18),
        but the next Child reaps it first: no keeper of an earlier trial is
        left, not even a zombie, while the next one runs."""
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        first = runner.Child("true", folder, os.path.join(folder, "o1"))
        first.finish(30)
        k = first.proc.keeper
        self.assertIsNone(k.returncode)  # told `done`, not waited for
        self.assertIn(first.proc, kept._RELEASED)
        second = runner.Child("sleep 30", folder, os.path.join(folder, "o2"))
        self.addCleanup(second.kill)
        self.assertEqual(k.returncode, 0)  # reaped by the second start
        self.assertNotIn(first.proc, kept._RELEASED)
        with self.assertRaises(ChildProcessError):
            os.waitpid(k.pid, os.WNOHANG)

    def test_a_keeper_that_outlived_ratchet_ends_its_tree_then_removes_the_trials_record(self):
        """A record whose keeper is gone must mean the keeper was killed: only
        then does the next command look for processes nothing identifies
        (leftovers: suspects, which block trials). A keeper that ended its tree
        at the end of its grace removes the record, so a command that comes
        later finds nothing to suspect."""
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        records = os.path.join(folder, "procs")
        with mock.patch.object(keeper, "GRACE_SECONDS", 0.3):  # read by the forked keeper
            child = runner.Child("sleep 30 & setsid sleep 30 & wait", folder, os.path.join(folder, "o"),
                                 record_dir=records)
        self.addCleanup(child.kill)
        k = child.proc.keeper.pid
        self.assertTrue(wait_for(lambda: len(list(keeper.walk(k))) >= 3, 10), "the tree never came up")
        tree = list(keeper.walk(k))
        self.assertEqual(len(os.listdir(records)), 1)
        os.close(child.proc._control)  # as ratchet's death does: EOF without `done`
        child.proc._control = -1
        self.assertTrue(wait_for(lambda: not os.path.exists(records), 10), "the record outlived the keeper's sweep")
        self.assertEqual([p for p in tree if alive(p)], [])
        self.assertEqual(child.proc.keeper.wait(10), 0)

class RunTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.out, self.err = os.path.join(self.dir, "o"), os.path.join(self.dir, "e")

    def run_cmd(self, cmd, timeout=None):
        return runner.run(cmd, self.dir, self.out, self.err, timeout)

    def test_streams_to_files_and_reports_exit_code(self):
        r = self.run_cmd(f"{TRIAL_PY} -c \"import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)\"")
        self.assertEqual((r.exit_code, r.timed_out), (3, False))
        self.assertEqual(slurp(self.out), "out\n")
        self.assertEqual(slurp(self.err), "err\n")

    def test_stdin_is_closed(self):
        r = self.run_cmd(f"{TRIAL_PY} -c \"import sys; print(repr(sys.stdin.read()))\"")
        self.assertEqual(r.exit_code, 0)
        self.assertEqual(slurp(self.out), "''\n")

    def test_marker_is_in_the_environment(self):
        self.run_cmd(f"{TRIAL_PY} -c \"import os; print(os.environ['{procs.MARKER}'])\"")
        self.assertRegex(slurp(self.out).strip(), rf"^{os.getpid()}\.\d+\.[0-9a-f]{{32}}$")  # this command's pid and start

    @unittest.skipUnless(os.path.isdir("/proc"), "needs /proc (Linux)")
    def test_timeout_kills_children_grandchildren_and_setsid_escapees(self):
        pids = os.path.join(self.dir, "pids")
        script = os.path.join(self.dir, "tree.py")
        with open(script, "w") as f:
            f.write(f"""import os, subprocess, sys, time
procs = [subprocess.Popen(['sleep', '300']),
         subprocess.Popen([sys.executable, '-c', 'import subprocess,time; subprocess.Popen(["sleep","301"]); time.sleep(300)']),
         subprocess.Popen(['sleep', '302'], start_new_session=True)]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open({pids!r} + '.daemon', 'w').write(str(os.getpid()))
        time.sleep(300)
    os._exit(0)
open({pids!r}, 'w').write(' '.join(str(p.pid) for p in procs))
time.sleep(300)
""")
        t0 = time.monotonic()
        r = self.run_cmd(f"{TRIAL_PY} {script}", timeout=1.5)
        self.assertTrue(r.timed_out)
        self.assertIsNone(r.exit_code)
        self.assertLess(time.monotonic() - t0, 10)
        victims = [int(p) for p in slurp(pids).split()] + [int(slurp(pids + ".daemon"))]
        time.sleep(0.1)
        self.assertEqual([p for p in victims if alive(p)], [])
        self.assertEqual(r.survivors, ())

    @unittest.skipUnless(os.path.isdir("/proc"), "needs /proc (Linux)")
    def test_background_leftovers_of_a_finished_trial_are_killed(self):
        pidfile = os.path.join(self.dir, "bg")
        r = self.run_cmd(f"(setsid sleep 300 & echo $! > {pidfile}); echo done")
        self.assertEqual(r.exit_code, 0)
        time.sleep(0.1)
        self.assertFalse(alive(int(slurp(pidfile))))


    def test_stdin_file_and_stderr_joined_to_stdout(self):
        src = os.path.join(self.dir, "in")
        with open(src, "w") as f:
            f.write("the prompt\n")
        r = runner.run("cat; echo oops >&2", self.dir, self.out, None, stdin_path=src)
        self.assertEqual(r.exit_code, 0)
        self.assertEqual(open(self.out).read(), "the prompt\noops\n")

    def test_cancel_command_runs_on_timeout_with_the_trials_id(self):
        log = os.path.join(self.dir, "cancel.log")
        r = runner.run("sleep 30", self.dir, self.out, self.err, 0.3,
                       cancel_command='echo "id=$RATCHET_TRIAL_ID out=$RATCHET_TRIAL_STDOUT err=$RATCHET_TRIAL_STDERR"',
                       cancel_log=log)
        self.assertTrue(r.timed_out)
        self.assertEqual(r.cancel["exit_code"], 0)
        text = open(log).read()
        self.assertRegex(text, r"^id=\d+\.\d+\.[0-9a-f]{32} ")
        self.assertIn(f"out={self.out} err={self.err}", text)

    def test_a_signal_while_the_trial_starts_still_runs_the_cancel_command(self):
        """SIGTERM held while the trial starts (critical.deferred) is handled
        once the start is done: the command may be running by then (a remote
        job submitted), so the cancel command runs before the tree is killed."""
        class Stopped(Exception):
            pass

        def stop(*_):
            raise Stopped()
        old = signal.signal(signal.SIGTERM, stop)
        self.addCleanup(signal.signal, signal.SIGTERM, old)
        start, sent = runner.Child._start, []

        def start_then_signal(child, *args):
            start(child, *args)
            if not sent:  # the trial's start only, not the cancel command's
                sent.append(os.kill(os.getpid(), signal.SIGTERM))  # mid-start, as a `kill` of the loop would come
        with mock.patch.object(runner.Child, "_start", start_then_signal), self.assertRaises(Stopped):
            runner.run("sleep 30", self.dir, self.out, self.err, 5, cancel_command="touch cancelled")
        self.assertTrue(os.path.exists(os.path.join(self.dir, "cancelled")))
        self.assertEqual(runner._LIVE, [])

    def test_cancel_command_is_not_run_for_a_finished_trial(self):
        r = runner.run("true", self.dir, self.out, self.err, 5, cancel_command="touch cancelled")
        self.assertIsNone(r.cancel)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "cancelled")))

    def test_a_child_gets_the_same_tree_hygiene_as_a_trial(self):
        # a double-forked grandchild that left the session and dropped the marker: only the subreaper finds it
        pidfile = os.path.join(self.dir, "orphan")
        c = runner.Child(f"(env -u {procs.MARKER} setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' &) ; "
                         f"while [ ! -s {pidfile} ]; do sleep 0.01; done", self.dir, self.out)
        r = c.finish(10)
        self.assertEqual((r.exit_code, r.survivors), (0, ()))
        self.assertFalse(alive(int(slurp(pidfile))))

    def test_ending_one_child_leaves_another_childs_orphans_alone(self):
        mark = os.path.join(self.dir, "b-orphan")
        a = runner.Child("sleep 300", self.dir, os.path.join(self.dir, "a.out"))
        b = runner.Child(f"(env -u {procs.MARKER} sh -c 'echo $$ > {mark}; exec sleep 300' &) ; sleep 300",
                         self.dir, os.path.join(self.dir, "b.out"))
        try:
            wait_for(lambda: os.path.exists(mark) and slurp(mark).strip(), 10)
            orphan = int(slurp(mark))
            a.kill()
            self.assertTrue(alive(orphan), "A's kill took B's re-parented, unmarked worker")
        finally:
            a.kill()
            b.kill()
        self.assertFalse(alive(orphan))


if __name__ == "__main__":
    unittest.main()
