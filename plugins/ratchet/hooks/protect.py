#!/usr/bin/env python3
"""PreToolUse hook: deny Edit, Write, MultiEdit and NotebookEdit on the
evaluation harness while a ratchet run is active in that repository.

Contract: stdin is the hook event JSON (tool_name, tool_input, cwd, ...);
stdout is empty (allow) or one PreToolUse JSON with permissionDecision
"deny" and a reason the model can act on; the exit code is always 0.

Deny only when the target path is inside a folder holding an active ratchet
run (`.ratchet/config.json` and `.ratchet/state.json` both readable, state
`stop` null) and matches that run's protected pathspecs, by the CLI's own
rules (ratchetlib/paths.py); a path in one of `loop --parallel`'s slot
worktrees (`.ratchet/worktrees/slot-K/`) is checked as the same path in the
repository. Both the path as given and its resolved form
(symlinks followed) are checked. Anything else is allowed, and so is every
doubt: no run, a stopped run, a path outside the repository, a missing or
unreadable state file, an event this script does not understand. The CLI's
SHA-256 check of the harness stands behind this hook either way; the hook
only saves the agent an iteration and tells it why.

Standard library plus ratchetlib.paths only, so it answers in tens of
milliseconds (bench/hook_latency.py measures it).
"""

import json
import os
import sys

TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path", "NotebookEdit": "notebook_path"}
WORKTREES = ".ratchet/worktrees/"
SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "skills", "ratchet", "scripts")


def _read_json(path):
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _active_runs(path):
    """(root, config) of every active run in a folder above `path`, nearest first."""
    folder = os.path.dirname(path)
    while True:
        if os.path.isfile(os.path.join(folder, ".ratchet", "config.json")):
            cfg = _read_json(os.path.join(folder, ".ratchet", "config.json"))
            state = _read_json(os.path.join(folder, ".ratchet", "state.json"))
            if cfg is not None and state is not None and state.get("stop") is None:
                yield folder, cfg
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def _reason(rel, spec, cfg):
    editable = ", ".join(cfg.get("editable") or ()) or "every path that is not protected"
    return (f"{rel} is part of the evaluation harness of the active ratchet run {cfg.get('run_id', '')} "
            f"(protected by '{spec}'), which is never edited. Change the code under optimization instead "
            f"(editable: {editable}). A protected file changed any other way is caught by its SHA-256: "
            f"the iteration is recorded `tampered` and reverted.")


def decide(event):
    """The deny reason for a hook event, or None to allow."""
    if not isinstance(event, dict):
        return None
    key = TOOLS.get(event.get("tool_name"))
    tool_input = event.get("tool_input")
    target = tool_input.get(key) if key and isinstance(tool_input, dict) else None
    if not isinstance(target, str) or not target.strip():
        return None
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else os.getcwd()
    full = os.path.normpath(os.path.join(cwd, os.path.expanduser(target)))
    sys.path.insert(0, SCRIPTS)
    from ratchetlib import paths
    for candidate in dict.fromkeys((full, os.path.realpath(full))):
        for root, cfg in _active_runs(candidate):
            rel = os.path.relpath(candidate, root).replace(os.sep, "/")
            if rel == "." or rel.startswith("../"):
                continue
            if rel.startswith(WORKTREES):  # `loop --parallel`: a slot's worktree is a copy of the repository
                rel = rel.split("/", 3)[3] if rel.count("/") >= 3 else "."
                if rel == ".":
                    continue
            protect = cfg.get("protect")
            for spec in protect if isinstance(protect, list) else ():
                if isinstance(spec, str) and paths.matches(rel, spec):
                    return _reason(rel, spec, cfg)
    return None


def main():
    try:
        reason = decide(json.loads(sys.stdin.buffer.read() or b"null"))
    except Exception:  # never in the way: an error here allows the edit
        return 0
    if reason:
        json.dump({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                          "permissionDecisionReason": reason}}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
