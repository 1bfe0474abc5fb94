"""Issue 9, part 1: kill -9 anywhere.

Each test SIGKILLs a real `ratchet.py` process at one of `faults.POINTS`
(RATCHET_FAULT=kill:POINT), runs the next command, and checks what a user
relies on after a crash (`invariants`): no keep lost, no duplicate or torn
record, every kept record's commit on the run's branch in order, the branch
at the incumbent, the working tree equal to the incumbent (or the incumbent
plus the candidate still waiting to be measured), nothing left running of
what the killed command started, the user's own files untouched, and the
recovery announced. Every point has a test (`test_every_point_is_covered`).

Run as a script (`python3 -m tests.test_kill_points` from scripts/) to print
the table of points and what the next command said.
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile
import unittest
import uuid
from unittest import mock

from ratchetlib.core import faults
from tests.util import INIT, PY, RATCHET, RepoTest, cli, git, read, wait_for_file, write

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT = os.path.join(HERE, "standin_agent.py")

# The benchmark prints value.txt; when BENCH_PLANT names a file it first writes
# it a second in (a startup hook, planted after the trial's start); when BENCH_ORPHAN names a file it first
# starts a worker in its own session that outlives it, then sleeps BENCH_SLEEP.
BENCH = ("import os, subprocess, sys, time\n"
         "if os.environ.get('BENCH_PLANT'):\n"
         "    time.sleep(1)\n"
         "    os.makedirs(os.path.dirname(os.environ['BENCH_PLANT']), exist_ok=True)\n"
         "    open(os.environ['BENCH_PLANT'], 'w').write('PLANTED = 1\\n')\n"
         "if os.environ.get('BENCH_ORPHAN'):\n"
         "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
         "    open(os.environ['BENCH_ORPHAN'], 'w').write('started')\n"
         "    time.sleep(float(os.environ.get('BENCH_SLEEP', '0')))\n"
         "print('score:', open('value.txt').read().strip())\n")
NOTES = "my own notes, untracked, never to be touched\n"
MEAN = ["--decision", "mean", "--trials", "1"]

OUTCOMES = []  # (point, killed command, what the next command said), for the table


def tagged(tag: str) -> list:
    """Pids of live processes whose environment carries KILLTEST_TAG=tag."""
    needle = f"KILLTEST_TAG={tag}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                    found.append(int(name))
        except OSError:
            continue
    return found


class KillPointTest(RepoTest):
    files = {"bench.py": BENCH, "value.txt": "10\n"}

    def setUp(self):
        super().setUp()
        write(self.repo, "notes.txt", NOTES)  # the user's untracked file
        self.tag = uuid.uuid4().hex
        self.tmp = tempfile.mkdtemp(prefix="ratchet-kill-")
        self.addCleanup(__import__("shutil").rmtree, self.tmp, True)
        self.addCleanup(self._kill_tagged)

    def _kill_tagged(self):
        for pid in tagged(self.tag):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    # --- driving ----------------------------------------------------------------
    def killed(self, point, *argv, env=None):
        """Run `ratchet.py ARGV` armed to SIGKILL itself at `point`; it must die there."""
        full = {**os.environ, "RATCHET_FAULT": f"kill:{point}", "KILLTEST_TAG": self.tag, **(env or {})}
        p = subprocess.run([PY, RATCHET, "-C", self.repo, *argv], env=full, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(p.returncode, -9, f"{argv} was not killed at {point}: exit {p.returncode}\n{p.stdout}{p.stderr}")
        self.point, self.argv = point, argv
        return p

    def next_command(self, *argv, code=0):
        """The command after the kill; its recovery lines go into the table."""
        got, out, err = cli(*argv, cwd=self.repo)
        self.assertEqual(got, code, f"{argv}: exit {got}\n{out}{err}")
        said = [l for l in (err + out).splitlines() if "recovered:" in l]
        OUTCOMES.append((self.point, " ".join(self.argv[:1]), " | ".join(l.split("recovered: ", 1)[1] for l in said)
                         or "(nothing to recover)"))
        return out + err

    # --- what must hold after every recovery -------------------------------------
    def invariants(self, candidate=None):
        """`candidate`: value.txt's content when the candidate should still be in the tree."""
        with open(os.path.join(self.repo, ".ratchet", "results.jsonl"), "rb") as f:
            raw = f.read()
        self.assertTrue(raw.endswith(b"\n"), "a torn last record")
        recs = [json.loads(l) for l in raw.splitlines()]
        self.assertEqual([r["iter"] for r in recs], list(range(len(recs))), "records out of order or duplicated")
        st = self.state()
        self.assertEqual(st["iteration"], recs[-1]["iter"])
        cfg = json.loads(read(self.repo, ".ratchet/config.json"))
        self.assertEqual(git(self.repo, "rev-parse", "--abbrev-ref", "HEAD").strip(), cfg["branch"])
        kept = [r["sha"] for r in recs[1:] if r["kept"]]
        on_branch = git(self.repo, "rev-list", "--reverse", "--first-parent", f"{cfg['start_commit']}..HEAD").split()
        self.assertEqual(on_branch, kept, "the branch's commits are not the kept records'")
        head = git(self.repo, "rev-parse", "HEAD").strip()
        self.assertEqual(st["incumbent_sha"], head)
        self.assertEqual(read(self.repo, "bench.py"), BENCH)  # the harness, as the user wrote it
        self.assertEqual(read(self.repo, "notes.txt"), NOTES)
        changed = [l for l in git(self.repo, "status", "--porcelain").splitlines() if l[3:] != "notes.txt"]
        if candidate is None:
            self.assertEqual(changed, [], "the tree is not the incumbent")
        else:
            self.assertEqual(changed, [" M value.txt"])
            self.assertEqual(read(self.repo, "value.txt"), candidate)
        cur = os.path.join(self.repo, ".ratchet", "current.json")
        if os.path.exists(cur):
            self.assertEqual(json.loads(read(self.repo, ".ratchet/current.json"))["phase"], "measuring")
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "lock")))
        self.assertEqual(tagged(self.tag), [], "processes the killed command started are still running")
        return recs

    # --- init and trials ----------------------------------------------------------
    def test_init_config(self):
        self.killed("init-config", *INIT, *MEAN)
        self.assertEqual(git(self.repo, "rev-parse", "--abbrev-ref", "HEAD").strip(), "main")
        out = self.next_command("status")
        self.assertIn("a killed `init` had not checked out the run's branch; switched to ratchet/", out)
        self.assertEqual(json.loads(read(self.repo, ".ratchet/config.json"))["original_branch"], "main")
        self.run_ok("baseline")
        self.invariants()
        self.run_ok("stop")
        self.assertEqual(git(self.repo, "rev-parse", "--abbrev-ref", "HEAD").strip(), "main")

    def test_trial_of_an_iterate_and_its_orphaned_worker(self):
        self.start(*MEAN)
        self.set_value(12)
        orphan = os.path.join(self.tmp, "orphan")
        self.killed("trial", "iterate", "--hypothesis", "bigger", env={"BENCH_ORPHAN": orphan, "BENCH_SLEEP": "300"})
        wait_for_file(orphan)
        self.assertGreaterEqual(len(tagged(self.tag)), 2, "the trial and its worker should outlive the killed ratchet")
        out = self.next_command("status")
        self.assertRegex(out, r"killed [23] process\(es\) the killed `iterate` \(pid \d+\) left running")
        self.invariants(candidate="12\n")
        self.assertIn("iter 1: KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))
        self.invariants()

    def test_sweeping_a_command_killed_while_it_ends_an_earlier_ones_processes(self):
        """The second kill lands after the first command's keeper is stopped: the lock
        then names the second command, and the first one's tree is ended all the same."""
        self.start(*MEAN)
        self.set_value(12)
        orphan = os.path.join(self.tmp, "orphan")
        self.killed("trial", "iterate", "--hypothesis", "bigger", env={"BENCH_ORPHAN": orphan, "BENCH_SLEEP": "300"})
        wait_for_file(orphan)
        self.killed("sweeping", "status")
        self.assertTrue(os.listdir(os.path.join(self.repo, ".ratchet", "procs")), "the first command's record")
        out = self.next_command("status")
        self.assertRegex(out, r"killed [23] process\(es\) the killed `ratchet` \(pid \d+\) left running")
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "procs")))
        self.invariants(candidate="12\n")
        self.assertIn("iter 1: KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))
        self.invariants()

    def test_a_startup_hook_the_trial_of_a_killed_command_plants_later_is_moved_aside(self):
        """carry checks each run for planted startup hooks as it ends; a run
        whose ratchet was killed ends later, under its keeper. The next
        command moves what it wrote aside, so it runs in no later trial."""
        base = tempfile.mkdtemp(prefix="ratchet-userbase-")
        self.addCleanup(__import__("shutil").rmtree, base, True)
        hook = os.path.join(base, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages",
                            "usercustomize.py")
        self.start(*MEAN)
        self.set_value(12)
        self.killed("trial", "iterate", "--hypothesis", "bigger", env={"PYTHONUSERBASE": base, "BENCH_PLANT": hook})
        wait_for_file(hook)
        with mock.patch.dict(os.environ, {"PYTHONUSERBASE": base}):
            out = self.next_command("status")
        self.assertIn("moved 1 Python startup hook(s) written after a killed command's trial began", out)
        self.assertFalse(os.path.exists(hook))
        moved = os.listdir(os.path.join(self.repo, ".ratchet", "quarantine"))
        self.assertEqual(len(moved), 1)
        self.assertTrue(moved[0].endswith("__site-packages__usercustomize.py"), moved)
        self.assertEqual(read(self.repo, ".ratchet/quarantine/" + moved[0]), "PLANTED = 1\n")
        self.invariants(candidate="12\n")

    def test_a_leftover_that_survives_the_kill_blocks_trials_until_clean(self):
        from unittest import mock
        from ratchetlib.io import procs
        self.start(*MEAN)
        self.set_value(12)
        orphan = os.path.join(self.tmp, "orphan")
        self.killed("trial", "iterate", "--hypothesis", "bigger", env={"BENCH_ORPHAN": orphan, "BENCH_SLEEP": "300"})
        wait_for_file(orphan)
        stuck = set(tagged(self.tag))  # as immune to SIGKILL as a process stuck in the kernel
        real = procs.signal_pid
        with mock.patch.object(procs, "signal_pid", lambda pid, sig: None if pid in stuck else real(pid, sig)):
            out = self.next_command("status")
        self.assertRegex(out, r"process\(es\) the killed `iterate` \(pid \d+\) left running survived a kill")
        self.assertIn("trials are blocked until `ratchet.py clean`", out)
        self.assertIn("survived the kill", self.run_fail("iterate", "--hypothesis", "bigger"))
        self.run_ok("clean")
        self.assertIn("iter 1: KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))
        self.invariants()

    def test_trial_of_the_guard(self):
        orphan = os.path.join(self.tmp, "orphan")
        write(self.repo, "guard.py", BENCH.replace("BENCH_ORPHAN", "GUARD_ORPHAN"))  # starts the worker when told to
        git(self.repo, "add", "guard.py")
        git(self.repo, "commit", "-qm", "guard")
        self.start(*MEAN, "--guard-command", f"{shlex.quote(PY)} -S guard.py")
        self.set_value(12)
        self.killed("trial@2", "iterate", "--hypothesis", "bigger", env={"GUARD_ORPHAN": orphan, "BENCH_SLEEP": "300"})
        wait_for_file(orphan)
        out = self.next_command("status")
        self.assertIn("left running", out)
        self.invariants(candidate="12\n")

    def test_trial_of_a_baseline(self):
        self.run_ok(*INIT, *MEAN)
        orphan = os.path.join(self.tmp, "orphan")
        self.killed("trial", "baseline", env={"BENCH_ORPHAN": orphan, "BENCH_SLEEP": "300"})
        wait_for_file(orphan)
        out = self.next_command("baseline")
        self.assertIn("left running", out)
        self.assertIn("baseline: score 10", out)
        self.invariants()

    def test_trial_done_between_trials(self):
        self.start("--decision", "mean", "--trials", "3")
        self.set_value(12)
        self.killed("trial-done@2", "iterate", "--hypothesis", "bigger")
        self.assertEqual(len(json.loads(read(self.repo, ".ratchet/current.json"))["trials"]), 2)
        self.next_command("status")
        self.invariants(candidate="12\n")
        out = self.next_command("iterate", "--hypothesis", "bigger")
        self.assertIn("discarded 2 unfinished trial(s) of iteration 1; measuring again", out)
        self.assertIn("iter 1: KEEP", out)
        self.invariants()

    # --- the paired swap ----------------------------------------------------------
    def paired_kill(self, point):
        self.start()
        self.set_value(12)
        self.killed(point, "iterate", "--hypothesis", "bigger")
        out = self.next_command("status")
        self.invariants(candidate="12\n")
        self.assertIn("iter 1: KEEP", self.run_ok("iterate", "--hypothesis", "bigger"))
        self.invariants()
        return out

    def test_swap_saved(self):
        out = self.paired_kill("swap-saved")
        self.assertIn("left iteration 1 mid-swap; the candidate was restored from .ratchet/swap/candidate.patch", out)

    def test_swapped_with_the_incumbent_in_the_tree(self):
        self.start()
        self.set_value(12)
        self.killed("swapped", "iterate", "--hypothesis", "bigger")
        self.assertEqual(read(self.repo, "value.txt"), "10\n")  # the candidate is only in .ratchet/swap/ now
        out = self.next_command("status")
        self.assertIn("the candidate was restored", out)
        self.invariants(candidate="12\n")

    def test_swap_restored_with_neither_in_the_tree(self):
        out = self.paired_kill("swap-restored")
        self.assertIn("the candidate was restored", out)

    def test_trial_done_in_a_pair(self):
        self.paired_kill("trial-done@3")

    # --- the decision ---------------------------------------------------------------
    def decided(self, point, value, decision):
        """Kill an iterate of candidate `value` at `point`; after `status`, iteration 1 is `decision`, once.
        Returns (what status said, the patch a revert saved or None)."""
        self.start(*MEAN)
        self.set_value(value)
        self.killed(point, "iterate", "--hypothesis", "change")
        out = self.next_command("status")
        recs = self.invariants()  # a keep committed once: the branch's commits are the kept records'
        self.assertEqual([r["decision"] for r in recs[1:]], [decision])
        return out, recs[1]["patch"] and read(self.repo, ".ratchet/" + recs[1]["patch"])

    def test_decided_keep(self):
        out, _ = self.decided("decided", 12, "keep")
        self.assertIn("finished iteration 1 (keep) that a killed command had decided", out)

    def test_decided_revert(self):
        out, patch = self.decided("decided", 8, "revert")
        self.assertIn("finished iteration 1 (revert) that a killed command had decided", out)
        self.assertIn("-10\n+8", patch)

    def test_committed(self):
        out, _ = self.decided("committed", 12, "keep")
        self.assertIn("finished iteration 1 (keep)", out)

    def test_reverted(self):
        out, patch = self.decided("reverted", 8, "revert")
        self.assertIn("finished iteration 1 (revert)", out)
        self.assertIn("-10\n+8", patch)

    def test_record_torn(self):
        self.start(*MEAN)
        self.set_value(12)
        self.killed("record-torn", "iterate", "--hypothesis", "change")
        self.assertFalse(read(self.repo, ".ratchet/results.jsonl").endswith("\n"))
        out = self.next_command("status")
        self.assertIn("removed a torn last line", out)
        self.assertIn("finished iteration 1 (keep)", out)
        self.invariants()

    def test_recorded(self):
        out, _ = self.decided("recorded", 12, "keep")
        self.assertIn("iteration 1 was recorded but the state was not updated; state rolled forward", out)
        self.assertEqual(self.state()["incumbent_score"], 12.0)

    def test_state_renamed(self):
        self.decided("state-renamed", 12, "keep")
        self.assertIn("iter 2:", self.run_ok("iterate", "--hypothesis", "again"))  # nothing is stuck

    # --- the other verbs ------------------------------------------------------------
    def test_verify_swapped(self):
        self.start()
        self.set_value(12)
        self.run_ok("iterate", "--hypothesis", "bigger")
        self.killed("verify-swapped", "verify")
        self.assertEqual(read(self.repo, "value.txt"), "10\n")  # the start commit's file
        out = self.next_command("status")
        self.assertIn("a killed `verify` left the start commit's files in the tree; the best commit was restored", out)
        self.invariants()
        self.assertEqual(read(self.repo, "value.txt"), "12\n")

    def test_verified_of_a_threshold_confirmation(self):
        # the best's own 12 crosses --threshold 11: HEAD is re-measured before the run may stop; a kill
        # after verify.json, before state.json, leaves the run going, and the next decision confirms it
        self.start("--threshold", "11")
        self.set_value(12)
        self.killed("verified", "iterate", "--hypothesis", "bigger")
        out = self.next_command("status")
        self.assertIn("gain over the start: not yet re-measured for HEAD (iter 1)", out)
        self.assertIn("\nnext: continue\n", out)
        self.assertIn("threshold 11 not confirmed: the best's own figure 12 crosses it, HEAD is not re-measured yet", out)
        self.invariants()
        self.assertEqual(read(self.repo, "value.txt"), "12\n")
        self.set_value(11)
        out = self.run_ok("iterate", "--hypothesis", "smaller")
        self.assertIn("REVERT", out)
        self.assertIn("next: stop (threshold reached (12 vs 11, confirmed: HEAD re-measured against the start))", out)
        self.assertEqual(self.state()["verified"]["sha"], self.state()["incumbent_sha"])
        self.invariants()

    def test_agent_of_a_loop(self):
        self.start(*MEAN)
        plan = os.path.join(self.tmp, "plan.json")
        child = os.path.join(self.tmp, "child")
        with open(plan, "w") as f:
            json.dump({"1": {"write": {"value.txt": "12\n"}, "child": child, "hang": 300}}, f)
        self.killed("agent", "loop", "--agent-command", f"{shlex.quote(PY)} -S {shlex.quote(AGENT)} {shlex.quote(plan)}")
        wait_for_file(child)
        out = self.next_command("status")
        self.assertIn("iteration 1 was cut short by a killed `loop`; recorded as interrupted", out)
        recs = self.invariants()
        self.assertEqual(recs[1]["decision"], "interrupted")

    def test_trial_of_a_parallel_round(self):
        self.start(*MEAN)
        plan = os.path.join(self.tmp, "plan.json")
        with open(plan, "w") as f:
            json.dump({"1:1": {"write": {"value.txt": "12\n"}}, "1:2": {"write": {"value.txt": "11\n"}}}, f)
        orphan = os.path.join(self.tmp, "orphan")
        self.killed("trial", "loop", "--parallel", "2", "--agent-command",
                    f"{shlex.quote(PY)} -S {shlex.quote(AGENT)} {shlex.quote(plan)}",
                    env={"BENCH_ORPHAN": orphan, "BENCH_SLEEP": "300"})
        wait_for_file(orphan)
        out = self.next_command("status")
        self.assertIn("left running", out)
        self.assertIn("iteration 1 was cut short by a killed `loop`; recorded as interrupted", out)
        self.assertEqual(self.invariants()[1]["decision"], "interrupted")
        self.assertIn("iter 2:", self.run_ok("iterate", "--hypothesis", "nothing changed"))  # nothing is stuck

    def test_stop_saved(self):
        self.start(*MEAN)
        self.set_value(12)
        self.killed("stop-saved", "stop")
        self.next_command("status")
        self.invariants(candidate="12\n")
        self.run_ok("stop")
        self.assertEqual(git(self.repo, "rev-parse", "--abbrev-ref", "HEAD").strip(), "main")
        self.assertIn("+12", read(self.repo, ".ratchet/patches/iter-0001-unfinished.patch"))
        self.assertEqual(read(self.repo, "value.txt"), "10\n")

    def test_finalize_commits(self):
        self.start(*MEAN)
        self.set_value(12)
        self.run_ok("iterate", "--hypothesis", "bigger")
        self.killed("finalize-commits", "finalize", "--branch", "clean")
        self.assertNotIn("clean", git(self.repo, "branch", "--list", "clean"))  # no half-made branch
        self.next_command("status")
        self.invariants()
        self.run_ok("finalize", "--branch", "clean")
        self.assertEqual(git(self.repo, "rev-parse", "clean^{tree}"), git(self.repo, "rev-parse", "HEAD^{tree}"))

    def test_seal_adopt(self):
        """A run from before sealing, sealed by a command killed part-way: the
        next command finishes the sealing, and the run is checked from then on."""
        from tests.test_seal import forge, make_legacy
        self.start(*MEAN)
        self.set_value(12)
        self.run_ok("iterate", "--hypothesis", "twelve")
        make_legacy(self.repo)
        self.killed("seal-adopt", "status")
        self.assertIn("sealed this run's contract", self.next_command("status"))
        self.invariants()
        self.assertEqual(self.records()[-1]["iter"], 1)
        self.set_value(13)
        self.assertIn("KEEP", self.run_ok("iterate", "--hypothesis", "thirteen"))
        forge(self.repo, "state.json", lambda s: s.update(incumbent_score=0.0))
        self.assertIn(".ratchet/state.json was changed outside ratchet", self.run_fail("status"))

    def test_status_puts_what_it_recovered_above_the_run(self):
        self.start()
        self.set_value(12)
        self.run_ok("iterate", "--hypothesis", "bigger")
        self.run_ok("verify")
        with open(os.path.join(self.repo, ".ratchet", "results.jsonl"), "ab") as f:
            f.write(b'{"iter": 2, "torn')  # a record cut short by a kill
        lines = self.run_ok("status").splitlines()
        self.assertTrue(lines[0].startswith("recovered: removed a torn last line"), lines)
        self.assertTrue(lines[1].startswith("run "), lines)
        self.assertTrue(lines[3].startswith("verified gain over the start"), lines)  # under baseline/best, as without

    # --- coverage -------------------------------------------------------------------
    def test_every_point_is_covered(self):
        with open(os.path.abspath(__file__)) as f:
            me = f.read()
        missing = [p for p in faults.POINTS if f'"{p}"' not in me and f'"{p}@' not in me]
        self.assertEqual(missing, [])
        lib = os.path.join(os.path.dirname(HERE), "ratchetlib")
        src = ""
        for folder, _, names in sorted(os.walk(lib)):
            for name in sorted(n for n in names if n.endswith(".py")):
                with open(os.path.join(folder, name)) as f:
                    src += f.read()
        self.assertEqual([p for p in faults.POINTS if f'faults.point("{p}"' not in src], [])


if __name__ == "__main__":
    unittest.main(exit=False, verbosity=1)
    width = max(len(p) for p, _, _ in OUTCOMES)
    print(f"\n{len(faults.POINTS)} kill points, {len(OUTCOMES)} kills; what the next command said:")
    for point, verb, said in OUTCOMES:
        print(f"  {point:<{width}}  {verb:<9} {said}")
