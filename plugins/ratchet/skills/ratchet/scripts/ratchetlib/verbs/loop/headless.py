"""`ratchet.py loop`: the CLI drives the whole loop, one fresh agent per iteration.

Per iteration: write the prompt (prompt.py) to `.ratchet/agents/`, run the
agent command in its own session with the same process-tree hygiene as a
trial (runner.Child), read its report (agent.py), then measure and decide
exactly as `iterate` does (session.step). A failed or timed-out agent's edits
are saved as a patch and undone (`agent-error`). Nothing of the agent's
conversation outlives its process, so iteration 5,000 costs what iteration 5
did.

The loop holds the repository lock from start to end, so the agent cannot
run `iterate` itself (the lock refuses it) and no second loop can start.
Before each agent starts, current.json records the iteration in phase
`agent` with the agent's process marker; if the loop is killed outright,
the next command kills the orphaned agent and records the iteration
`interrupted` (recover.recover). SIGINT and SIGTERM do that cleanup at once:
the agent or trial tree is killed (runner), the tree goes back to the
incumbent, the iteration is recorded `interrupted`, and the exception
propagates so the CLI exits 130 / 143. Running `loop` again continues the
run, with the settings saved in `.ratchet/loop.json`.

Exit codes (for wrappers): 0 the run is over (a stop condition holds);
3 a budget of this loop ran out (wall clock, agent cost, agent tokens) and
the run can go on with a larger one; 2 usage; 1 failure; 130/143 signals.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

from . import parallel
from .. import show
from .calls import AgentCall, Options, failure, loop_options  # noqa: F401 (Options, loop_options: the loop's API)
from ...core import budget, decision, record, state, term
from ...core.text import clip, num
from ...io import gitops, procs, unclean
from ...io import workspace
from ...keep import finish, recover
from ...verbs import session
from ...learn import learning
from ...core.errors import UsageError
from ...io.store import Store, now_iso
from ...io.store_lock import Lock

FINISHED, PAUSED = 0, 3


# --- the loop -----------------------------------------------------------------

class Loop:
    def __init__(self, run, opts: Options, out):
        self.run, self.opts, self.out = run, opts, out
        self.t_start = time.monotonic()
        self.deadline = self.t_start + opts.max_wall_seconds if opts.max_wall_seconds else None
        self.calls = []  # live AgentCalls, killed on the way out

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def budget_out(self) -> str | None:
        why = budget.exhausted(self.run.state.agent, self.opts.max_agent_cost_usd, self.opts.max_agent_tokens)
        if why is None and self.deadline is not None and self.remaining() <= 0:
            why = f"wall-clock budget reached ({self.opts.max_wall_seconds:g}s)"
        return why

    def agent_timeout(self) -> tuple:
        """(timeout for the next agent, whether the wall budget is what limits it)."""
        left = self.remaining()
        if left is not None and left < self.opts.agent_timeout_seconds:
            return max(left, 0.0), True
        return self.opts.agent_timeout_seconds, False

    def begin(self, it: int, t0: float, markers: list, extra: dict | None = None) -> dict:
        """Buffer the iteration (phase `agent`) before any agent starts.

        Untracked files that appeared since the last decision (a log a
        wrapper writes, a cache) are not the agent's: they join
        `untracked_before`, so they are never committed or deleted."""
        now = gitops.untracked(self.run.repo)
        if set(now) - set(self.run.state.untracked_before):
            self.run.save(state.with_untracked(self.run.state, now))
        cur = {"iter": it, "phase": "agent", "started": now_iso(), "t0": t0, "trials": [], "markers": markers,
               "hypothesis": "", "description": "", **(extra or {})}
        self.run.store.write_current(cur)
        return cur

    def iteration(self) -> tuple:
        """One agent call, then measure and decide: (record, paused reason)."""
        run = self.run
        it = run.state.iteration + 1
        t0 = time.time()
        call = AgentCall(run, self.opts, it, run.repo, arm=learning.loop_arms(run)[0])
        cur = self.begin(it, t0, [call.marker], {"arm": call.arm})
        timeout, wall_limited = self.agent_timeout()
        self.calls = [call]  # before it starts: a signal right after the start must find it
        call.start()
        tr, rep, info = call.collect(timeout)
        self.calls = []
        cur.update(agent=info, hypothesis=rep.hypothesis, description=rep.description)
        if tr.timed_out and wall_limited:
            why = f"wall-clock budget reached ({self.opts.max_wall_seconds:g}s)"
            return finish.abandon(run, decision.INTERRUPTED, f"interrupted: {why} while the agent worked; "
                                  f"its edits were saved and undone", cur), why
        why = failure(tr, rep, timeout, info["log"])
        if why:
            return finish.abandon(run, decision.AGENT_ERROR, why, cur), None
        return session.step(run, rep.hypothesis, rep.description, agent=info, t0=t0, arm=call.arm), None

    def resume_measuring(self, cur: dict) -> dict:
        """A killed loop (or `iterate`) left a candidate half-measured: measure it again."""
        self.out(f"loop: iteration {cur['iter']} was being measured when its command was killed; measuring it again")
        return session.step(self.run, cur.get("hypothesis") or "(resumed candidate)", cur.get("description") or "",
                           cur.get("critic"), agent=cur.get("agent"), arm=cur.get("arm"))

    def go(self) -> tuple:
        """Iterate until a stop condition or a budget: (exit code, reason)."""
        run = self.run
        while True:
            if run.state.stop:
                return FINISHED, run.state.stop
            why = self.budget_out()
            if why:
                return PAUSED, why
            cur = run.store.read_current()
            if cur and cur.get("phase") == "measuring" and cur.get("iter") == run.state.iteration + 1:
                rec, paused = self.resume_measuring(cur), None
            elif self.opts.parallel > 1:
                rec, paused = parallel.run_round(self)
            else:
                rec, paused = self.iteration()
            for line in iteration_lines(rec, run.config):
                self.out(line)
            if paused:
                return PAUSED, paused

    def interrupted(self, exc: BaseException) -> None:
        """Clean up after a signal or error mid-iteration (the lock is held)."""
        for call in self.calls:
            call.kill()
        self.calls = []
        run = self.run
        run.state = run.store.read_state() or run.state
        cur = run.store.read_current()
        if not cur:
            return
        if cur.get("phase") == "agent":  # an agent whose start the signal interrupted is not in self.calls
            procs.kill_marked(cur.get("markers") or [])
        if cur.get("phase") == "decided":
            for n in recover.recover(run):
                self.out(f"loop: {n}")
            return
        if cur.get("iter") != run.state.iteration + 1:
            return
        where = ("while the agent worked" if cur.get("phase") == "agent"
                 else f"during trial {len(cur.get('trials') or []) + 1}")
        rec = finish.abandon(run, decision.INTERRUPTED, f"interrupted by {_cause(exc)} {where}", cur)
        self.out(f"loop: iteration {rec['iter']} interrupted by {_cause(exc)} {where}; recorded"
                 + (f", its change saved in .ratchet/{rec['patch']} and undone" if rec.get("patch") else "")
                 + "; run `ratchet.py loop` to continue")


def _cause(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "Ctrl-C (SIGINT)"
    if type(exc).__name__ == "Terminated":
        return "SIGTERM"
    return f"an error ({type(exc).__name__}: {exc})"


class _signals_ignored:
    """SIGINT/SIGTERM are ignored while the cleanup runs (a few git calls),
    so a second Ctrl-C cannot leave it half done."""

    def __enter__(self):
        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, signal.SIG_IGN)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        return False


def iteration_lines(rec: dict, cfg) -> list:
    """One line per iteration (plus one per parallel alternative)."""
    def line(r, head):
        text = f"{head}: {r['decision'].upper()}"
        if r.get("avg") is not None:
            text += f"  {cfg.metric_name} {num(r['avg'])}"
            if r.get("incumbent") is not None:
                text += f" vs {num(r['incumbent'])}"
        if isinstance(r.get("agent"), dict):
            text += f"  [{budget.call_text(r['agent'])}]"
        shown = r.get("hypothesis") if r["decision"] in ("keep", "revert") else r.get("reason")
        return text + "  " + clip(shown or "", 110)
    lines = [line(rec, f"iter {rec['iter']}" + (f" (proposal {rec['slot']})" if rec.get("slot") else ""))]
    lines += [line(a, f"  proposal {a.get('slot')}") for a in rec.get("alternatives") or []]
    return lines


# --- entry point ------------------------------------------------------------------

def _open(cwd: str, init_flags: dict | None, out):
    """The run to loop on: started (init, baseline) when needed and possible."""
    repo = gitops.find_root(cwd)
    if not Store(repo).exists():
        if not init_flags:
            raise UsageError("no ratchet run in this repository; give `loop` the init flags "
                             "(--run-command ... --direction ... --metric-name ... --report-source ...) or run `init` first")
        run = session.init(cwd, init_flags)
        out(f"loop: started run {run.config.run_id} on branch {run.config.branch}; "
            f"protected: {', '.join(run.config.protect)}")
    else:
        run = workspace.open_run(cwd)
        if init_flags:
            out(f"loop: continuing run {run.config.run_id}; the init flags only start a new run and were not used")
    if run.state.iteration < 0 and not run.state.stop:
        run, rec, notes = session.baseline(cwd)
        out(show.baseline_verdict(run, rec, notes).replace("next: continue", "").strip())
    return run


def main(cwd: str, given: dict, init_flags: dict | None = None, out=None) -> int:
    """`ratchet.py loop`: returns FINISHED (0) or PAUSED (3); raises on errors
    and signals after cleaning up (see the module docstring)."""
    out = out or (lambda line: print(term.printable(line), flush=True))
    store = Store(gitops.find_root(cwd))
    opts = loop_options(store.read_loop() if store.exists() else None, given)
    run = _open(cwd, init_flags, out)
    with Lock(run.store, "loop"):
        for n in recover.recover(run):
            out(f"recovered: {n}")
        if run.state.stop:
            out(f"loop: run {run.config.run_id} is over ({run.state.stop}); "
                f"`ratchet.py status` for the result, `init` to start a new run")
            return FINISHED
        unclean.refuse_if_marked(run.store)  # before an agent spends anything on an iteration no trial could measure
        if not run.store.read_current():
            head = gitops.head_sha(run.repo)
            if head != run.state.incumbent_sha or gitops.tracked_changes(run.repo):
                raise UsageError("the working tree is not the incumbent (uncommitted changes or a new commit); "
                                 "measure it with `ratchet.py iterate --hypothesis ...` or undo it, then run `loop`")
        info = {**record.asdict(opts), "status": "running", "reason": None, "pid": os.getpid(),
                "host": socket.gethostname(), "started": now_iso(), "ended": None}
        run.store.write_loop(info)
        loop = Loop(run, opts, out)
        out(f"loop: run {run.config.run_id}, iteration {run.state.iteration + 1}, agent: "
            f"{clip(opts.agent_command, 100)}" + (f" ×{opts.parallel}" if opts.parallel > 1 else ""))
        try:
            code, reason = loop.go()
        except BaseException as exc:
            if isinstance(exc, (SystemExit, GeneratorExit)):
                raise
            with _signals_ignored():
                try:
                    loop.interrupted(exc)
                except Exception as again:  # the original error is the one to report
                    out(f"loop: cleanup after {_cause(exc)} failed ({again}); the next ratchet command recovers")
                finally:
                    status = "interrupted" if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "Terminated" \
                        else "failed"
                    run.store.write_loop({**info, "status": status, "reason": _cause(exc), "ended": now_iso()})
                    if opts.parallel > 1:
                                parallel.remove_worktrees(run)
            raise
        if opts.parallel > 1:
            parallel.remove_worktrees(run)
        status = "finished" if code == FINISHED else "paused"
        run.store.write_loop({**info, "status": status, "reason": reason, "ended": now_iso()})
    line = budget.status_line(run.state.agent, None)
    out(f"loop: {'run over' if code == FINISHED else 'paused'}: {reason}" + (f" · {line}" if line else "")
        + ("" if code == FINISHED else "; run `ratchet.py loop` with a larger budget to continue"))
    return code
