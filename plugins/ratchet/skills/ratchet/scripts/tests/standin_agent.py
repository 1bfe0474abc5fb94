"""A scripted stand-in for an agent CLI, for the headless loop's tests.

    python3 standin_agent.py PLAN.json [PROMPT_FILE]

PLAN maps "ITER" or "ITER:SLOT" (RATCHET_ITERATION, RATCHET_SLOT) to an
action; "default" is used for any other step. The prompt comes from
PROMPT_FILE when given (the `{prompt_file}` form), else from stdin. Action
keys, applied in this order:

    prompt_copy  path: save the prompt received there
    mark         path: write this process's pid there once started
    write        {relative path: text}: edit files in the working directory
    commit       message: `git add -A && git commit` (an agent committing itself)
    child        path: start a setsid'd grandchild that sleeps; its pid goes there
    hang         seconds to sleep before answering (a stuck agent)
    say          the final message (default: HYPOTHESIS/DESCRIPTION lines)
    claude       {"cost": usd, "usage": {...}, "is_error": bool}: answer as
                 Claude Code's `--output-format json` would
    exit         exit code (default 0)
"""

import json
import os
import subprocess
import sys
import time


def main():
    plan = json.load(open(sys.argv[1]))
    it = os.environ.get("RATCHET_ITERATION", "?")
    slot = os.environ.get("RATCHET_SLOT")
    act = plan.get(f"{it}:{slot}") if slot else None
    act = act or plan.get(it) or plan.get("default") or {}
    text = open(sys.argv[2]).read() if len(sys.argv) > 2 else sys.stdin.read()
    if act.get("prompt_copy"):
        with open(act["prompt_copy"], "w") as f:
            f.write(text)
    if act.get("mark"):
        with open(act["mark"] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(act["mark"] + ".tmp", act["mark"])
    for rel, body in (act.get("write") or {}).items():
        os.makedirs(os.path.dirname(rel) or ".", exist_ok=True)
        with open(rel, "w") as f:
            f.write(body)
    if act.get("commit"):
        subprocess.run(["git", "add", "-A"], check=True)
        subprocess.run(["git", "-c", "user.name=agent", "-c", "user.email=agent@invalid", "commit", "-qm",
                        act["commit"]], check=True)
    if act.get("child"):
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
        with open(act["child"], "w") as f:
            f.write(str(p.pid))
    if act.get("hang"):
        time.sleep(act["hang"])
    say = act.get("say", f"Changed it.\nHYPOTHESIS: step {it} should help\nDESCRIPTION: edit {it}"
                            + (f" (slot {slot})" if slot else ""))
    if "claude" in act:
        c = act["claude"]
        print(json.dumps({"type": "result", "subtype": "error_during_execution" if c.get("is_error") else "success",
                          "is_error": bool(c.get("is_error")), "result": say,
                          "total_cost_usd": c.get("cost", 0.0), "usage": c.get("usage", {})}))
    else:
        print(say)
    sys.exit(act.get("exit", 0))


if __name__ == "__main__":
    main()
