#!/usr/bin/env python3
"""Stop hook: send Claude back to work while a ratchet run says `next: continue`.

Why: "never stop early" in SKILL.md is prose; a model can still end its turn
after `baseline` or a verdict. The client runs this hook when the main agent
is about to end its turn; a `{"decision": "block", "reason": ...}` answer
sends the model back with the reason as its next instruction.

Contract: stdin is the Stop event JSON (session_id, transcript_path, cwd,
stop_hook_active); stdout is empty (let the turn end) or one JSON object
`{"decision": "block", "reason": "<one line>"}`; the exit code is always 0.

It blocks only when all of these hold, for the nearest folder above `cwd`
holding `.ratchet/config.json`:
- the run is active and its last verdict said `next: continue`:
  `.ratchet/state.json` readable, `stop` null, `iteration` >= 0 (a baseline
  was measured);
- the session is not a step of `ratchet.py loop` (which starts a fresh agent
  per iteration and decides itself when to go on: RATCHET_ITERATION in the
  environment, or `.ratchet/loop.json` `running` with a live pid);
- the user did not interrupt the turn (the transcript's last entries), and
  the session did call the ratchet CLI (its transcript names `ratchet.py`):
  a session doing something else in the repository is left alone;
- fewer than MAX_BLOCKS blocks in a row for this session without a new
  iteration. The count is the hook's own, in `.ratchet/stop-hook.json`
  (FORMATS.md): the client's `stop_hook_active` flag is known to stay false
  when the hook fires repeatedly, so it is not trusted. A new `iterate`
  (state.json `iteration` changed) starts the count again.
It never writes a file ratchet itself reads or seals; every doubt (an
unreadable file, an event it does not understand) lets the turn end.
Standard library only (python3 -S -I), a few file reads: milliseconds.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder out
import runfiles  # noqa: E402

MAX_BLOCKS = 3
COUNTER = "stop-hook.json"
FORMAT = 1
HERE = os.path.dirname(os.path.abspath(__file__))
CLI = os.path.join(os.path.dirname(HERE), "skills", "ratchet", "scripts", "ratchet.py")
INTERRUPT_MARKS = ("[Request interrupted by user", "[Request cancelled by user")


def _pid_alive(pid):
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _loop_running(ratchet_dir, environ):
    if environ.get("RATCHET_ITERATION") or environ.get("RATCHET_PROMPT_FILE"):
        return True
    loop = runfiles.read_json(os.path.join(ratchet_dir, "loop.json"))
    return bool(loop) and loop.get("status") == "running" and _pid_alive(loop.get("pid"))


def transcript_tail(transcript_path, limit=256 * 1024):
    """The last `limit` bytes of the session's transcript as text, or None when unreadable."""
    if not isinstance(transcript_path, str) or not transcript_path:
        return None
    try:
        with open(transcript_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def not_ours(tail):
    """True when the transcript shows the user interrupted the turn, or shows no ratchet
    CLI call at all (a session in this repository doing something else). An unreadable
    transcript proves neither."""
    if tail is None:
        return False
    lines = [l for l in tail.splitlines() if l.strip()][-3:]
    return any(mark in line for line in lines for mark in INTERRUPT_MARKS) or "ratchet.py" not in tail


def _write_counter(path, data):
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def decide(event, environ=None):
    """The block reason for a Stop event, or None to let the turn end (may update the counter file)."""
    environ = os.environ if environ is None else environ
    if not isinstance(event, dict):
        return None
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else os.getcwd()
    root = next(runfiles.runs_above(cwd), None)
    if root is None:
        return None
    ratchet_dir = os.path.join(root, ".ratchet")
    state = runfiles.state_of(root)
    if state is None or state.get("stop") is not None:
        return None
    iteration = state.get("iteration")
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        return None
    if _loop_running(ratchet_dir, environ) or not_ours(transcript_tail(event.get("transcript_path"))):
        return None
    session = event.get("session_id") if isinstance(event.get("session_id"), str) else ""
    path = os.path.join(ratchet_dir, COUNTER)
    last = runfiles.read_json(path) or {}
    same = last.get("session_id") == session and last.get("iteration") == iteration
    blocks = (last.get("blocks") if isinstance(last.get("blocks"), int) else MAX_BLOCKS) + 1 if same else 1
    if blocks > MAX_BLOCKS:
        return None
    _write_counter(path, {"format": FORMAT, "session_id": session, "run_id": state.get("run_id"),
                          "iteration": iteration, "blocks": blocks})
    run = state.get("run_id") or ""
    return (f"ratchet run {run} is still active and its last verdict said `next: continue` (iteration {iteration} "
            f"done): start the next iteration now (one change, then `python3 \"{CLI}\" iterate --hypothesis ... "
            f"--description ...`); only the CLI's stop conditions end the run (reminder {blocks} of {MAX_BLOCKS}; "
            f"to end it early the user runs `ratchet.py stop`).")


def main():
    try:
        reason = decide(json.loads(sys.stdin.buffer.read() or b"null"))
    except Exception:  # never in the way: an error here lets the turn end
        return 0
    if reason:
        json.dump({"decision": "block", "reason": reason}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
