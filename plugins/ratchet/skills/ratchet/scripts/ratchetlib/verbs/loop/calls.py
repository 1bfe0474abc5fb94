"""One agent call of `loop`: its settings (`Options`, merged with those saved
in `.ratchet/loop.json`), its process (`AgentCall`: prompt written, started in
its own session like a trial, collected and read), and when it counts as
failed. Shared by the one-at-a-time loop (headless.py) and `--parallel`
(parallel.py), which is why it sits below both.
"""

from __future__ import annotations

import math
import os

from . import agent, prompt
from ...core import faults, record
from ...io import clip, runner, store_files
from ...core.errors import UsageError

DEFAULT_AGENT_TIMEOUT = 1800.0
MAX_PARALLEL = 8
_OUTPUT_READ_LIMIT = 8 << 20


class Options(record.Record):
    agent_command: str
    agent_timeout_seconds: float = DEFAULT_AGENT_TIMEOUT
    max_wall_seconds: float | None = None
    max_agent_cost_usd: float | None = None
    max_agent_tokens: int | None = None
    parallel: int = 1


def loop_options(saved: dict | None, given: dict) -> Options:
    """The loop's settings: flags given now over those saved by an earlier
    `loop` of the same run (so `ratchet.py loop` alone resumes). UsageError
    names the first bad value."""
    names = list(record.fields(Options))
    merged = {k: v for k, v in (saved or {}).items() if k in names and v is not None}
    merged.update({k: v for k, v in given.items() if k in names and v is not None})
    cmd = (merged.get("agent_command") or "").strip()
    if not cmd:
        raise UsageError("--agent-command is required: the command that runs one agent step, "
                         "e.g. \"claude -p --output-format json --permission-mode acceptEdits\"")
    for key, flag in (("agent_timeout_seconds", "--agent-timeout-seconds"), ("max_wall_seconds", "--max-wall-seconds"),
                      ("max_agent_cost_usd", "--max-agent-cost-usd")):
        v = merged.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
            raise UsageError(f"{flag} must be a number > 0 (got {v!r})")
    for key, flag, hi in (("max_agent_tokens", "--max-agent-tokens", None), ("parallel", "--parallel", MAX_PARALLEL)):
        v = merged.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1 or (hi and v > hi)):
            raise UsageError(f"{flag} must be a whole number from 1{f' to {hi}' if hi else ' up'} (got {v!r})")
    merged["agent_command"] = cmd
    return Options(**merged)


# --- one agent call -----------------------------------------------------------

class AgentCall:
    """One agent process for iteration `it` in `workdir`: the prompt is
    written, the process started; `collect` waits for it and reads it."""

    def __init__(self, run, opts: Options, it: int, workdir: str, slot: tuple | None = None,
                 arm: str | None = None):
        store = run.store
        k = slot[0] if slot else None
        self.arm = arm
        self.prompt_file = store.agent_path(it, "prompt.md", k)
        self.out_file, self.err_file = store.agent_path(it, "out", k), store.agent_path(it, "err", k)
        store_files.write_plain(self.prompt_file, prompt.build_prompt(run, it, slot=slot, arm=arm))
        cmd, on_stdin = agent.command(opts.agent_command, self.prompt_file)
        env = {"RATCHET_PROMPT_FILE": self.prompt_file, "RATCHET_ITERATION": str(it), "RATCHET_REPO": run.repo}
        if slot:
            env["RATCHET_SLOT"] = str(k)
        self.root = store.root
        self.marker = runner.new_marker()
        self.child = None
        self._spawn = lambda: runner.Child(cmd, workdir, self.out_file, self.err_file, env,
                                           self.prompt_file if on_stdin else None, self.marker,
                                           record_dir=store.path("procs"))  # how a killed loop's next command finds its keeper
        self.done = False

    def start(self) -> "AgentCall":
        self.child = self._spawn()
        faults.point("agent")
        return self

    def collect(self, timeout: float | None) -> tuple:
        """(TrialRun, agent.Report, the record's `agent` dict)."""
        try:
            tr = self.child.finish(timeout)
        finally:
            self.done = True
        rep = agent.parse_report(_read(self.out_file))
        # once read: only the head and tail of a huge output stay, as for trials (clip.py)
        cut = {ext: n for ext, path in (("out", self.out_file), ("err", self.err_file)) for n in [clip.trim(path)] if n}
        info = {"exit_code": tr.exit_code, "timed_out": tr.timed_out, "seconds": round(tr.seconds, 3),
                "cost_usd": rep.cost_usd, "tokens": rep.tokens, "usage": rep.usage,
                "reported": rep.reported, "prompt": os.path.relpath(self.prompt_file, self.root),
                "log": os.path.relpath(self.out_file, self.root)}
        if tr.survivors:
            info["survivors"] = tr.survivors
        if cut:
            info["clipped"] = cut
        return tr, rep, info

    def kill(self) -> None:
        if self.child is not None and not self.done:
            self.child.kill()
            self.done = True


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _OUTPUT_READ_LIMIT))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def failure(tr, rep, timeout: float | None, log: str) -> str | None:
    """Why an agent call counts as failed, or None when it did its job."""
    if tr.timed_out:
        return f"agent-error: the agent did not finish within {timeout:g}s (its process tree was killed); its edits were undone"
    if tr.exit_code != 0:
        return f"agent-error: the agent exited with code {tr.exit_code} (see .ratchet/{log}); its edits were undone"
    if rep.is_error:
        return f"agent-error: the agent reported an error: {rep.error}; its edits were undone"
    return None
