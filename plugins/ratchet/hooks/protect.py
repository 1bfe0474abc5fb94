#!/usr/bin/env python3
"""PreToolUse hook: deny Claude's edit tools and Bash commands that would write
the evaluation harness, `.ratchet/` or `.git/` of a repository with a ratchet run.

Contract: stdin is the hook event JSON (tool_name, tool_input, cwd, ...);
stdout is empty (allow) or one PreToolUse JSON with permissionDecision
"deny" and a reason that names the file; the exit code is always 0.

What is denied, by the folder holding `.ratchet/config.json` above the path:
- anything under `.ratchet/` (the run's contract, state and records: ratchet's
  own, changed only through its verbs), whether the run is active or stopped;
- while the run is active (`.ratchet/state.json` readable, `stop` null): the
  run's protected pathspecs, by the CLI's own rules (ratchetlib/paths.py),
  and anything under `.git/` (the CLI makes every commit and revert).
A path in one of `loop --parallel`'s slot worktrees (`.ratchet/worktrees/
slot-K/`) is checked as the same path in the repository. Both the path as
given and its resolved form (symlinks followed) are checked. Edit, Write,
MultiEdit and NotebookEdit name their file; for Bash, shellwrites.py reads the
files the command line would write (redirections, tee, sed -i, cp/mv/rm, git
checkout --, ...; best effort: code that an interpreter runs, `python -c`
included, is out of its reach). Anything else is allowed, and so is every
doubt: no run, a path outside the repository, an unreadable state file, an
event this script does not understand. The CLI's SHA-256 check of the harness
stands behind this hook either way; the hook only saves the agent an
iteration and tells it why.

Standard library plus ratchetlib.core.paths only, so it answers in tens of
milliseconds (bench/hook_latency.py measures it).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder out
import runfiles  # noqa: E402

TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path", "NotebookEdit": "notebook_path"}
WORKTREES = ".ratchet/worktrees/"
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(os.path.dirname(HERE), "skills", "ratchet", "scripts")


def runs_above(path):
    """(root, config, active) of every ratchet run in a folder above `path`, nearest first.

    A run whose config.json is unreadable is skipped; `active` needs a
    readable state.json with `stop` null."""
    for folder in runfiles.runs_above(os.path.dirname(path)):
        cfg = runfiles.read_json(os.path.join(folder, ".ratchet", "config.json"))
        state = runfiles.state_of(folder)
        if cfg is not None:
            yield folder, cfg, state is not None and state.get("stop") is None


def _own_reason(rel, how, cfg):
    run = cfg.get("run_id", "")
    if rel == ".git" or rel.startswith(".git/"):
        return (f"{how}: {rel} is inside .git/ of the repository with the active ratchet run {run}; the ratchet "
                f"CLI makes every commit and revert itself. Do not commit, switch branches or write .git/: "
                f"make the change and call `iterate`.")
    return (f"{how}: {rel} is inside .ratchet/, the record of ratchet run {run} (its contract, state and "
            f"results), which only the ratchet CLI writes. Change settings through its verbs (`chain`, "
            f"`ideas`, `stop`), never by editing these files.")


def _reason(rel, spec, cfg, how=""):
    editable = ", ".join(cfg.get("editable") or ()) or "every path that is not protected"
    return (f"{how + ': ' if how else ''}{rel} is part of the evaluation harness of the active ratchet run {cfg.get('run_id', '')} "
            f"(protected by '{spec}'), which is never edited. Change the code under optimization instead "
            f"(editable: {editable}). A protected file changed any other way is caught by its SHA-256: "
            f"the iteration is recorded `tampered` and reverted.")


def path_reason(full, how="", tree=False):
    """The deny reason for writing the absolute path `full`, or None.

    `tree`: the write also reaches everything under `full` (rm -r, mv), so a
    protected path, `.ratchet/` or `.git/` below it is denied too."""
    from ratchetlib.core import paths
    for candidate in dict.fromkeys((full, os.path.realpath(full))):
        for root, cfg, active in runs_above(candidate + os.sep if tree else candidate):
            rel = os.path.relpath(candidate, root).replace(os.sep, "/")
            if rel.startswith("../") or rel == "..":
                continue
            if rel.startswith(WORKTREES):  # `loop --parallel`: a slot's worktree is a copy of the repository
                rel = rel.split("/", 3)[3] if rel.count("/") >= 3 else "."
                if rel == "." and not tree:
                    continue
            protect = [p for p in cfg.get("protect") or () if isinstance(p, str)] \
                if isinstance(cfg.get("protect"), list) else []
            owned = [".ratchet"] + ([".git"] if active else [])
            for spec in owned:
                if paths.matches(rel, spec) or (tree and (rel == "." or spec.startswith(rel + "/"))):
                    return _own_reason(rel if paths.matches(rel, spec) else spec, how or "write", cfg)
            if not active:
                continue
            for spec in protect:
                norm = paths.normalize(spec)
                if paths.matches(rel, spec) or (tree and (rel == "." or norm.startswith(rel + "/"))):
                    return _reason(rel if paths.matches(rel, spec) else norm, spec, cfg, how)
    return None


def decide(event):
    """The deny reason for a hook event, or None to allow."""
    if not isinstance(event, dict):
        return None
    tool_input = event.get("tool_input")
    if not isinstance(tool_input, dict):
        return None
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else os.getcwd()
    sys.path[:0] = [SCRIPTS, HERE]
    if event.get("tool_name") == "Bash":
        import shellwrites
        targets = [(w.path, w.how, w.tree) for w in shellwrites.writes(tool_input.get("command"), cwd)]
    else:
        key = TOOLS.get(event.get("tool_name"))
        target = tool_input.get(key) if key else None
        if not isinstance(target, str) or not target.strip():
            return None
        targets = [(os.path.normpath(os.path.join(cwd, os.path.expanduser(target))), event["tool_name"], False)]
    for full, how, tree in targets:
        reason = path_reason(full, how, tree)
        if reason:
            return reason
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
