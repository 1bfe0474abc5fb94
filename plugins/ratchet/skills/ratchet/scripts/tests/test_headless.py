"""`ratchet.py loop` with scripted stand-in agents (tests/standin_agent.py)."""

import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
import unittest

from tests.util import INIT, PY, RATCHET, RepoTest, alive, belongs, git, read, wait_for_file, write

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT = os.path.join(HERE, "standin_agent.py")
SCHED = os.path.join(HERE, "standin_scheduler.py")


class LoopTest(RepoTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="ratchet-agent-")
        self.addCleanup(__import__("shutil").rmtree, self.tmp, True)

    def plan(self, steps, name="plan.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump({str(k): v for k, v in steps.items()}, f)
        return f"{shlex.quote(PY)} -S {shlex.quote(AGENT)} {shlex.quote(path)}"

    def tmp_path(self, name):
        return os.path.join(self.tmp, name)

    def loop(self, *argv, code=0):
        from tests.util import cli
        got, out, err = cli("loop", *argv, cwd=self.repo)
        self.assertEqual(got, code, f"loop {argv}: expected {code}, got {got}\n{out}{err}")
        return out, err

    def head_value(self):
        return git(self.repo, "show", "HEAD:value.txt").strip()


class BasicLoopTest(LoopTest):
    def test_starts_the_run_then_keeps_and_reverts_with_a_fresh_agent_each_time(self):
        agent = self.plan({1: {"write": {"value.txt": "12\n"}, "prompt_copy": self.tmp_path("p1")},
                           2: {"write": {"value.txt": "11\n"}},
                           3: {"write": {"value.txt": "15\n"}, "prompt_copy": self.tmp_path("p3")}})
        out, _ = self.loop("--agent-command", agent, *INIT[1:], "--iterations", "3")
        self.assertIn("baseline: score 10", out)
        self.assertIn("iter 1: KEEP", out)
        self.assertIn("iter 2: REVERT", out)
        self.assertIn("loop: run over: iteration cap reached (3)", out)
        recs = self.records()
        self.assertEqual([r["decision"] for r in recs], ["baseline", "keep", "revert", "keep"])
        self.assertEqual(recs[1]["hypothesis"], "step 1 should help")
        self.assertEqual(recs[1]["description"], "edit 1")
        a = recs[1]["agent"]
        self.assertEqual((a["exit_code"], a["timed_out"], a["reported"]), (0, False, True))
        self.assertEqual(a["prompt"], "agents/iter-0001.prompt.md")
        self.assertTrue(os.path.exists(os.path.join(self.repo, ".ratchet", a["log"])))
        self.assertIsNone(recs[0]["agent"])
        self.assertEqual(self.head_value(), "15")
        self.assertIn("Ratchet-Iteration: 3", git(self.repo, "log", "-1", "--format=%B"))
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        # the prompt: goal, paths, rules, the incumbent's diff and the history
        p1, p3 = read(self.tmp, "p1"), read(self.tmp, "p3")
        self.assertIn("# ratchet iteration 1", p1)
        self.assertIn("Maximize `score`", p1)
        self.assertIn("`bench.py`", p1)
        self.assertIn("Forbidden moves", p1)
        self.assertIn("## Examples", p1)
        self.assertNotIn("integrity rules cut", p1)
        self.assertIn("is `tampered`", p1)
        self.assertIn("`out-of-scope`", p1)
        self.assertIn("Nothing kept yet", p1)
        self.assertIn("HYPOTHESIS:", p1)
        self.assertIn("+12", p3)
        self.assertIn("- iter 2 revert 11 (-1): step 2 should help", p3)
        self.assertNotIn("diff --git a/bench.py", p3)
        loop = json.loads(read(self.repo, ".ratchet/loop.json"))
        self.assertEqual((loop["status"], loop["agent_command"]), ("finished", agent))
        status = self.run_ok("status")
        self.assertIn("agent: 3 call(s)", status)
        self.assertLessEqual(len(status.splitlines()), 12)  # the README bound: a dozen lines at most

    def test_a_failing_agent_that_edited_the_harness_is_tampered_and_the_harness_restored(self):
        self.start("--iterations", "1")
        agent = self.plan({1: {"write": {"bench.py": "print('score: 99')\n", "value.txt": "30\n"}, "exit": 1}})
        self.loop("--agent-command", agent)
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "tampered")
        self.assertEqual(rec["tampered"], {"bench.py": "edited"})
        self.assertIn("agent-error as well", rec["reason"])
        self.assertEqual(read(self.repo, "bench.py"), git(self.repo, "show", "HEAD:bench.py"))
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        self.assertNotIn("bench.py", read(self.repo, ".ratchet/" + rec["patch"]))

    def test_bandit_arm_named_in_the_prompt_and_credited(self):
        self.start("--iterations", "2", "--strategy", "bandit", "--arms", "algo,micro")
        agent = self.plan({1: {"write": {"value.txt": "12\n"}, "prompt_copy": self.tmp_path("p1")},
                           2: {"exit": 1, "prompt_copy": self.tmp_path("p2")}})
        self.loop("--agent-command", agent)
        recs = self.records()
        self.assertEqual([(r["decision"], r.get("arm")) for r in recs[1:]], [("keep", "algo"), ("agent-error", "micro")])
        self.assertIn("Use the `algo` strategy", read(self.tmp, "p1"))
        self.assertIn("Use the `micro` strategy", read(self.tmp, "p2"))
        band = json.loads(read(self.repo, ".ratchet/bandit.json"))
        self.assertEqual((band["stats"]["algo"]["keeps"], band["stats"]["micro"]["n"], band["stats"]["micro"]["reward"]),
                         (1, 1, 0.0))
        mem = self.state()["memory"]
        self.assertEqual((mem["failure_streak"], mem["last_failure"]), (1, "agent-error"))

    def test_prompt_file_placeholder_instead_of_stdin(self):
        self.start("--iterations", "1")
        agent = self.plan({1: {"write": {"value.txt": "13\n"}, "prompt_copy": self.tmp_path("p")}})
        self.loop("--agent-command", agent + " {prompt_file}")
        self.assertIn("# ratchet iteration 1", read(self.tmp, "p"))
        self.assertEqual(self.records()[-1]["decision"], "keep")

    def test_no_change_protected_edit_and_self_commit(self):
        self.start("--iterations", "3")
        agent = self.plan({1: {"say": "nothing to do\nHYPOTHESIS: nothing worth trying"},
                           2: {"write": {"bench.py": "print('score: 99')\n"}},
                           3: {"write": {"value.txt": "14\n"}, "commit": "agent's own commit"}})
        self.loop("--agent-command", agent)
        recs = self.records()
        self.assertEqual([r["decision"] for r in recs[1:]], ["no-change", "tampered", "keep"])
        self.assertEqual(recs[1]["hypothesis"], "nothing worth trying")
        self.assertIn("protected", recs[2]["reason"])
        self.assertEqual(read(self.repo, "bench.py"), git(self.repo, "show", "HEAD:bench.py"))
        self.assertIn("committed", recs[3]["reason"])
        log = git(self.repo, "log", "--format=%s", "-2").splitlines()
        self.assertEqual(log, ["ratchet: iter 3: edit 3", "start"])
        self.assertEqual(self.head_value(), "14")

    def test_an_untracked_file_written_before_the_loop_is_not_the_agents(self):
        self.start("--iterations", "1")
        write(self.repo, "wrapper.log", "a wrapper's log in the repository\n")
        self.loop("--agent-command", self.plan({1: {"write": {"value.txt": "12\n"}}}))
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["changed"]), ("keep", ["value.txt"]))
        self.assertTrue(os.path.exists(os.path.join(self.repo, "wrapper.log")))
        self.assertNotIn("wrapper.log", git(self.repo, "ls-files"))

    def test_without_a_hypothesis_line_the_last_line_is_recorded(self):
        self.start("--iterations", "1")
        self.loop("--agent-command", self.plan({1: {"write": {"value.txt": "12\n"}, "say": "made it bigger"}}))
        rec = self.records()[-1]
        self.assertEqual(rec["hypothesis"], "(no HYPOTHESIS line) made it bigger")
        self.assertFalse(rec["agent"]["reported"])


    def test_a_flooding_agent_keeps_only_head_and_tail_of_its_output(self):
        from ratchetlib.io import clip
        self.start("--iterations", "1")
        flood = (f"{shlex.quote(PY)} -S -c \"import sys; sys.stdout.write(''.join('noise %07d\\n' % i for i in "
                 f"range(500000))); sys.stderr.write('e' * (6 << 20))\"")
        agent = self.plan({1: {"write": {"value.txt": "12\n"}}})
        self.loop("--agent-command", f"{flood} && {agent}")
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "keep")
        self.assertTrue(rec["agent"]["reported"])  # its report was read before the clip
        self.assertEqual(sorted(rec["agent"]["clipped"]), ["err", "out"])
        for ext in ("out", "err"):
            path = os.path.join(self.repo, ".ratchet", "agents", f"iter-0001.{ext}")
            self.assertLessEqual(os.path.getsize(path), clip.HEAD + clip.TAIL + clip._SLACK)
        out = read(self.repo, ".ratchet/agents/iter-0001.out")
        self.assertTrue(out.startswith("noise 0000000\n"))
        self.assertIn("bytes cut here", out)
        self.assertIn("HYPOTHESIS:", out[-2000:])


class AgentFailureTest(LoopTest):
    def test_a_hanging_agent_is_killed_with_its_tree_and_its_edits_undone(self):
        self.start("--iterations", "1")
        child = self.tmp_path("child")
        agent = self.plan({1: {"write": {"value.txt": "50\n", "new.txt": "x"}, "child": child, "hang": 60}})
        t0 = time.monotonic()
        self.loop("--agent-command", agent, "--agent-timeout-seconds", "1")
        self.assertLess(time.monotonic() - t0, 15)
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "agent-error")
        self.assertIn("did not finish within 1s", rec["reason"])
        self.assertTrue(rec["agent"]["timed_out"])
        self.assertEqual(read(self.repo, "value.txt"), "10\n")
        self.assertFalse(os.path.exists(os.path.join(self.repo, "new.txt")))
        self.assertIn("+50", read(self.repo, ".ratchet/" + rec["patch"]))
        self.assertFalse(alive(int(read(self.tmp, "child"))), "the agent's setsid grandchild survived")

    def test_failing_agents_count_toward_the_crash_budget(self):
        self.start("--iterations", "9", "--max-consecutive-crashes", "2")
        self.loop("--agent-command", self.plan({"default": {"write": {"value.txt": "99\n"}, "exit": 3}}))
        recs = self.records()
        self.assertEqual([r["decision"] for r in recs[1:]], ["agent-error", "agent-error"])
        self.assertIn("exited with code 3", recs[1]["reason"])
        self.assertIn("crash budget exhausted", self.state()["stop"])
        self.assertEqual(read(self.repo, "value.txt"), "10\n")

    def test_claude_reporting_an_error_is_an_agent_error(self):
        self.start("--iterations", "1")
        self.loop("--agent-command", self.plan({1: {"write": {"value.txt": "12\n"}, "say": "API overloaded",
                                                    "claude": {"is_error": True, "cost": 0.01}}}))
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "agent-error")
        self.assertIn("API overloaded", rec["reason"])
        self.assertEqual(rec["agent"]["cost_usd"], 0.01)

    def test_the_agent_cannot_run_iterate_itself(self):
        self.start("--iterations", "1")
        nested = self.tmp_path("nested.sh")
        with open(nested, "w") as f:
            f.write(f"echo 12 > value.txt\n{shlex.quote(PY)} -S {shlex.quote(RATCHET)} iterate --hypothesis sneaky "
                    f"> {shlex.quote(self.tmp_path('nested.out'))} 2>&1\necho \"HYPOTHESIS: nested rc $?\"\n")
        self.loop("--agent-command", f"sh {shlex.quote(nested)}")
        self.assertIn("another ratchet command (`loop`", read(self.tmp, "nested.out"))
        rec = self.records()[-1]
        self.assertEqual((rec["iter"], rec["decision"], rec["hypothesis"]), (1, "keep", "nested rc 2"))


class BudgetTest(LoopTest):
    def claude(self, cost, tokens):
        return {"cost": cost, "usage": {"input_tokens": tokens - 10, "output_tokens": 10,
                                        "cache_read_input_tokens": 0}}

    def test_cost_budget_pauses_and_a_larger_budget_continues(self):
        self.start("--iterations", "5")
        agent = self.plan({k: {"write": {"value.txt": f"{10 + k}\n"}, "claude": self.claude(0.6, 1000)}
                           for k in range(1, 6)})
        out, _ = self.loop("--agent-command", agent, "--max-agent-cost-usd", "1", code=3)
        self.assertIn("paused: agent cost budget reached ($1.2000 of $1)", out)
        self.assertEqual(len(self.records()), 3)
        st = self.state()
        self.assertEqual(st["agent"], {"calls": 2, "seconds": st["agent"]["seconds"], "cost_usd": 1.2, "tokens": 2000})
        self.assertIsNone(st["stop"])
        self.assertIn("loop paused (agent cost budget reached", self.run_ok("status"))
        # a later `loop` needs no flags but the bigger budget; cost is counted over the run
        self.loop("--max-agent-cost-usd", "2", code=3)
        self.assertEqual(len(self.records()), 5)
        self.loop("--max-agent-cost-usd", "100")
        self.assertEqual(self.state()["stop"], "iteration cap reached (5)")

    def test_token_budget(self):
        self.start("--iterations", "5")
        agent = self.plan({"default": {"write": {"value.txt": "11\n"}, "claude": self.claude(0.0, 700)}})
        out, _ = self.loop("--agent-command", agent, "--max-agent-tokens", "1000", code=3)
        self.assertIn("agent token budget reached (1400 of 1000 tokens)", out)
        self.assertEqual(self.records()[-1]["agent"]["tokens"], 700)
        self.assertEqual(self.records()[-1]["agent"]["usage"]["input_tokens"], 690)

    def test_wall_budget_cuts_a_running_agent_and_records_it_interrupted(self):
        self.start("--iterations", "5")
        agent = self.plan({"default": {"write": {"value.txt": "77\n"}, "hang": 60}})
        t0 = time.monotonic()
        out, _ = self.loop("--agent-command", agent, "--max-wall-seconds", "1", code=3)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertIn("paused: wall-clock budget reached (1s)", out)
        rec = self.records()[-1]
        self.assertEqual(rec["decision"], "interrupted")
        self.assertEqual(read(self.repo, "value.txt"), "10\n")
        self.assertEqual(self.state()["since_keep"], 0, "an interrupted iteration does not count for patience")

    def test_bad_loop_flags_are_one_line_usage_errors(self):
        self.start()
        self.assertIn("--agent-command is required", self.run_fail("loop"))
        self.assertIn("--parallel must be", self.run_fail("loop", "--agent-command", "true", "--parallel", "0"))
        self.assertIn("--max-wall-seconds must be", self.run_fail("loop", "--agent-command", "true",
                                                                   "--max-wall-seconds", "-1"))
        self.set_value(12)
        self.assertIn("not the incumbent", self.run_fail("loop", "--agent-command", "true"))

    def test_an_unclean_machine_stops_the_loop_before_any_agent_runs(self):
        self.start()
        write(self.repo, ".ratchet/UNCLEAN", json.dumps({"format": 1, "marker": "x", "processes": [{"pid": 1}]}))
        agent = self.plan({"default": {"mark": self.tmp_path("ran")}})
        self.assertIn("ratchet.py clean", self.run_fail("loop", "--agent-command", agent))
        self.assertFalse(os.path.exists(self.tmp_path("ran")))
        self.assertEqual(len(self.records()), 1)

    def test_loop_without_a_run_needs_the_init_flags(self):
        self.assertIn("give `loop` the init flags", self.run_fail("loop", "--agent-command", "true"))
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet")))


class CancelCommandTest(LoopTest):
    """Trials on "another machine": the stand-in scheduler's worker is out of reach of the tree kill."""

    def init_remote(self, seconds, score, *extra):
        jobs = self.tmp_path("jobs")
        os.makedirs(jobs)
        daemon = subprocess.Popen([PY, SCHED, "serve", jobs], stdin=subprocess.DEVNULL)
        self.addCleanup(daemon.wait)
        self.addCleanup(daemon.kill)
        self.addCleanup(self.kill_jobs, jobs)
        sched = f"{shlex.quote(PY)} -S {shlex.quote(SCHED)}"
        self.run_ok("init", "--run-command", f"{sched} submit {shlex.quote(jobs)} {seconds} {score}",
                    "--direction", "max", "--metric-name", "score", "--report-source", "stdout",
                    "--decision", "mean", *extra)
        return jobs, sched

    def kill_jobs(self, jobs):
        for p in self.job_pids(jobs):
            if alive(p) and belongs(p, jobs):  # a worker's command line names its report in `jobs`
                os.kill(p, signal.SIGKILL)

    def subprocess_fail(self, *argv):
        """The verb in a `ratchet.py` process of its own, which the scheduler daemon is not part of."""
        r = subprocess.run([PY, RATCHET, "-C", self.repo, *argv], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout + r.stderr

    def job_pids(self, jobs):
        return [json.loads(read(jobs, n))["pid"] for n in os.listdir(jobs) if n.endswith(".job")]

    def test_a_timed_out_remote_trial_is_cancelled(self):
        sched = f"{shlex.quote(PY)} -S {shlex.quote(SCHED)}"
        jobs, _ = self.init_remote(60, 5, "--trial-timeout-seconds", "1",
                                   "--cancel-command", f"{sched} cancel {shlex.quote(self.tmp_path('jobs'))}")
        self.assertIn("timed out", self.subprocess_fail("baseline"))
        cancelled = [n for n in os.listdir(jobs) if n.endswith(".cancelled")]
        self.assertEqual(len(cancelled), 1)
        self.assertTrue(read(jobs, cancelled[0]).endswith("iter-0000-trial-01.out"))
        self.assertEqual([p for p in self.job_pids(jobs) if alive(p)], [])

    def test_without_a_cancel_command_the_remote_job_is_orphaned(self):
        jobs, _ = self.init_remote(60, 5, "--trial-timeout-seconds", "1")
        self.subprocess_fail("baseline")
        pids = self.job_pids(jobs)
        self.assertEqual(len([p for p in pids if alive(p)]), 1, "the control case: the worker outlives the trial")

    def test_a_finished_remote_trial_is_not_cancelled(self):
        jobs, sched = self.init_remote(0, 7, "--cancel-command", f"{shlex.quote(PY)} -S {shlex.quote(SCHED)} cancel "
                                             f"{shlex.quote(self.tmp_path('jobs'))}")
        self.assertIn("baseline: score 7", self.run_ok("baseline"))
        self.assertNotIn("cancel", self.records()[0]["trials"][0])
        self.assertEqual([n for n in os.listdir(jobs) if n.endswith(".cancelled")], [])


class SignalTest(LoopTest):
    """SIGTERM/SIGINT/SIGKILL of a `loop` subprocess, then resume with `loop`."""

    files = {"bench.py": ("import os, sys, time\n"
                          "v = open('value.txt').read().split()\n"
                          "if len(v) > 1:\n"
                          "    open(os.environ['SLOW_MARK'], 'w').write(str(os.getpid()))\n"
                          "    time.sleep(60)\n"
                          "print('score:', v[0])\n"),
             "value.txt": "10\n"}

    def spawn_loop(self, *argv):
        env = {**os.environ, "SLOW_MARK": self.tmp_path("slow")}
        # A test run started in the background may have SIGINT ignored, which a child inherits (and Python then
        # installs no KeyboardInterrupt handler): give the loop the default disposition, as in a terminal.
        return subprocess.Popen([PY, RATCHET, "-C", self.repo, "loop", *argv], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def finish(self, proc):
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.fail(f"the loop did not exit within 30 s of the signal\n{out}{err}")
        return proc.returncode, out, err

    def test_sigterm_mid_trial_cleans_up_and_loop_resumes(self):
        cancel_mark = self.tmp_path("cancelled")
        self.start("--iterations", "3", "--cancel-command", f"echo $RATCHET_TRIAL_ID > {shlex.quote(cancel_mark)}")
        agent = self.plan({1: {"write": {"value.txt": "12\n"}}, 2: {"write": {"value.txt": "13 slow\n"}},
                           3: {"write": {"value.txt": "14\n"}}})
        proc = self.spawn_loop("--agent-command", agent)
        wait_for_file(self.tmp_path("slow"))
        bench_pid = int(read(self.tmp, "slow"))
        proc.send_signal(signal.SIGTERM)
        code, out, err = self.finish(proc)
        self.assertEqual(code, 143, out + err)
        self.assertIn("iteration 2 interrupted by SIGTERM during trial 1", out)
        self.assertFalse(alive(bench_pid), "the trial's process survived SIGTERM of the loop")
        self.assertTrue(os.path.exists(cancel_mark), "the cancel command did not run for the interrupted trial")
        rec = self.records()[-1]
        self.assertEqual((rec["iter"], rec["decision"]), (2, "interrupted"))
        self.assertIn("13 slow", read(self.repo, ".ratchet/" + rec["patch"]))
        self.assertEqual(read(self.repo, "value.txt"), "12\n")
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "lock")))
        self.assertEqual(json.loads(read(self.repo, ".ratchet/loop.json"))["status"], "interrupted")
        # the same run continues, with the saved agent command
        out, _ = self.loop()
        self.assertEqual([r["decision"] for r in self.records()], ["baseline", "keep", "interrupted", "keep"])
        self.assertEqual(self.head_value(), "14")

    def test_sigint_while_the_agent_works(self):
        self.start("--iterations", "2")
        child = self.tmp_path("child")
        agent = self.plan({1: {"write": {"value.txt": "12\n"}, "child": child, "mark": self.tmp_path("m"), "hang": 60}})
        proc = self.spawn_loop("--agent-command", agent)
        wait_for_file(child)
        wait_for_file(self.tmp_path("m"))
        proc.send_signal(signal.SIGINT)
        code, out, err = self.finish(proc)
        self.assertEqual(code, 130, out + err)
        self.assertIn("interrupted by Ctrl-C (SIGINT) while the agent worked", out)
        self.assertFalse(alive(int(read(self.tmp, "m"))))
        self.assertFalse(alive(int(read(self.tmp, "child"))))
        self.assertEqual(self.records()[-1]["decision"], "interrupted")
        self.assertEqual(read(self.repo, "value.txt"), "10\n")

    def test_sigkill_of_the_loop_is_recovered_by_the_next_loop(self):
        self.start("--iterations", "2")
        child = self.tmp_path("child")
        agent = self.plan({1: {"write": {"value.txt": "12\n"}, "child": child, "mark": self.tmp_path("m"), "hang": 60},
                           2: {"write": {"value.txt": "13\n"}}})
        proc = self.spawn_loop("--agent-command", agent)
        wait_for_file(child)
        wait_for_file(self.tmp_path("m"))
        proc.kill()
        proc.communicate(timeout=30)
        orphan = int(read(self.tmp, "m"))
        self.assertTrue(alive(orphan), "expected the agent to outlive a SIGKILLed loop")
        out, _ = self.loop()
        self.assertIn("recovered: iteration 1 was cut short by a killed `loop`", out)
        self.assertFalse(alive(orphan), "the orphaned agent was not killed on resume")
        self.assertFalse(alive(int(read(self.tmp, "child"))))
        self.assertEqual([r["decision"] for r in self.records()], ["baseline", "interrupted", "keep"])
        self.assertEqual(self.head_value(), "13")


class ParallelTest(LoopTest):
    def test_two_agents_propose_the_best_significant_one_is_kept(self):
        self.start("--iterations", "2")
        agent = self.plan({"1:1": {"write": {"value.txt": "12\n"}}, "1:2": {"write": {"value.txt": "15\n"}},
                           "2:1": {"write": {"bench.py": "print('score: 1000')\n"}},
                           "2:2": {"write": {"value.txt": "9\n", "extra.txt": "x"}}})
        out, _ = self.loop("--agent-command", agent, "--parallel", "2")
        self.assertIn("iter 1 (proposal 2): KEEP", out)
        self.assertIn("  proposal 1: REVERT", out)
        recs = self.records()
        self.assertEqual(len(recs), 3, "one record per round")
        r1, r2 = recs[1], recs[2]
        self.assertEqual((r1["decision"], r1["slot"], r1["avg"]), ("keep", 2, 15.0))
        alt = r1["alternatives"][0]
        self.assertEqual((alt["slot"], alt["decision"], alt["avg"]), (1, "revert", 12.0))
        self.assertIn("proposal 2 measured better", alt["reason"])
        self.assertEqual([t["trial"] for t in alt["trials"]] + [t["trial"] for t in r1["trials"]], [1, 2])
        self.assertIn("+12", read(self.repo, ".ratchet/" + alt["patch"]))
        self.assertEqual(self.head_value(), "15")
        self.assertEqual(r1["hypothesis"], "step 1 should help")
        self.assertEqual(r1["description"], "edit 1 (slot 2)")
        # round 2: a protected edit and a regression; the measured one is the record
        self.assertEqual((r2["decision"], r2["slot"], r2["avg"]), ("revert", 2, 9.0))
        self.assertEqual(r2["alternatives"][0]["decision"], "tampered")
        self.assertEqual(r2["alternatives"][0]["tampered"], {"bench.py": "edited"})
        self.assertIn("+9", read(self.repo, ".ratchet/" + r2["patch"]))
        self.assertEqual(self.state()["agent"]["calls"], 4)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "worktrees")))
        self.assertEqual(git(self.repo, "worktree", "list").count("\n"), 1)
        self.assertEqual(git(self.repo, "status", "--porcelain"), "")
        self.assertFalse(os.path.exists(os.path.join(self.repo, "extra.txt")))

    def test_a_hanging_proposer_is_cut_at_the_shared_timeout_and_the_other_is_kept(self):
        self.start("--iterations", "1")
        agent = self.plan({"1:1": {"write": {"value.txt": "30\n"}, "hang": 60},
                           "1:2": {"write": {"value.txt": "11\n"}}})
        t0 = time.monotonic()
        self.loop("--agent-command", agent, "--parallel", "2", "--agent-timeout-seconds", "1")
        self.assertLess(time.monotonic() - t0, 15)
        rec = self.records()[-1]
        self.assertEqual((rec["decision"], rec["slot"]), ("keep", 2))
        alt = rec["alternatives"][0]
        self.assertEqual((alt["slot"], alt["decision"]), (1, "agent-error"))
        self.assertIn("+30", read(self.repo, ".ratchet/" + alt["patch"]))
        self.assertEqual(self.head_value(), "11")


if __name__ == "__main__":
    unittest.main()
