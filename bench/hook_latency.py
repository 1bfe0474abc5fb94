#!/usr/bin/env python3
"""How long the PreToolUse hook (plugins/ratchet/hooks/protect.py) takes per call.

Runs the hook as Claude Code does (a fresh `python3` process, the event JSON on
stdin) against a scratch repository with an active ratchet run, for a denied
edit, an allowed edit and a repository with no run, side by side with a bare
`python3 -c pass` (the interpreter's own start-up, which no hook in Python can
avoid). Prints the median and 95th percentile wall time of each, in ms.

    python3 bench/hook_latency.py [--calls N]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOK = os.path.join(ROOT, "plugins", "ratchet", "hooks", "protect.py")
RATCHET = os.path.join(ROOT, "plugins", "ratchet", "skills", "ratchet", "scripts", "ratchet.py")


def git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_repo(path, with_run):
    os.makedirs(os.path.join(path, "tests"))
    for name, text in (("bench.py", "print('score: 1')\n"), ("sol.py", "x = 1\n"), ("tests/test_a.py", "")):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "-c", "user.name=b", "-c", "user.email=b@b.invalid", "add", "-A")
    git(path, "-c", "user.name=b", "-c", "user.email=b@b.invalid", "commit", "-qm", "start")
    if with_run:
        subprocess.run([sys.executable, RATCHET, "init", "--run-command", "python3 bench.py", "--direction", "max",
                        "--metric-name", "score", "--report-source", "stdout", "--protect", "tests"],
                       cwd=path, check=True, stdout=subprocess.DEVNULL)


def event(repo, rel):
    return json.dumps({"session_id": "bench", "cwd": repo, "hook_event_name": "PreToolUse", "tool_name": "Edit",
                       "tool_input": {"file_path": os.path.join(repo, rel), "old_string": "a", "new_string": "b"},
                       "permission_mode": "default", "tool_use_id": "toolu_bench"}).encode()


def timed(argv, stdin, calls):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        times.append((time.perf_counter() - t0) * 1000)
        if p.returncode != 0:
            sys.exit(f"{argv} failed: {p.stderr.decode()}")
    return times, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=40)
    calls = ap.parse_args().calls
    scratch = tempfile.mkdtemp(prefix="ratchet-hook-bench-")
    try:
        active, idle = os.path.join(scratch, "active"), os.path.join(scratch, "idle")
        make_repo(active, True)
        make_repo(idle, False)
        py = [sys.executable, "-S", "-I"]  # as hooks.json runs it: no site, no user environment
        cases = [("python3 -S -I -c pass (start-up only)", py + ["-c", "pass"], b"", None),
                 ("hook: deny bench.py (active run)", py + [HOOK], event(active, "bench.py"), True),
                 ("hook: allow sol.py (active run)", py + [HOOK], event(active, "sol.py"), False),
                 ("hook: allow, no run in the repo", py + [HOOK], event(idle, "bench.py"), False),
                 ("hook without -S -I: deny bench.py", [sys.executable, HOOK], event(active, "bench.py"), True)]
        rows = []
        for _ in range(calls):  # round robin, so load drifts on a shared machine hit every case alike
            for i, (name, argv, stdin, denies) in enumerate(cases):
                t, out = timed(argv, stdin, 1)
                if denies is not None and bool(out) != denies:
                    sys.exit(f"{name}: unexpected output {out!r}")
                rows.append((i, t))
        print(f"{'case':<42} {'median ms':>10} {'p95 ms':>8}   ({calls} calls each)")
        base = None
        for i, (name, *_rest) in enumerate(cases):
            t = sorted(x for j, ts in rows if j == i for x in ts)
            med, p95 = statistics.median(t), t[int(0.95 * (len(t) - 1))]
            base = med if base is None else base
            extra = "" if i == 0 else f"   ({med - base:+.1f} ms over start-up)"
            print(f"{name:<42} {med:>10.1f} {p95:>8.1f}{extra}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
