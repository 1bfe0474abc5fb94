#!/usr/bin/env python3
"""How long the plugin's hooks (plugins/ratchet/hooks/protect.py, stop.py) take per call.

Runs each hook as Claude Code does (a fresh `python3 -S -I` process, the event
JSON on stdin) against a scratch repository with an active ratchet run (after
its baseline, so the Stop hook blocks), for a denied and an allowed edit, a
denied and an allowed Bash command (a long pipeline, the worst case for the
command-line reader), a repository with no run, and the Stop hook blocking
and letting go, side by side with a bare `python3 -c pass` (the
interpreter's own start-up, which no hook in Python can avoid). Prints the
median and 95th percentile wall time of each, in ms; the budget is 50 ms.

    python3 bench/hook_latency.py [--calls N]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOK = os.path.join(ROOT, "plugins", "ratchet", "hooks", "protect.py")
STOP = os.path.join(ROOT, "plugins", "ratchet", "hooks", "stop.py")
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
        subprocess.run([sys.executable, RATCHET, "baseline"], cwd=path, check=True, stdout=subprocess.DEVNULL)


def event(repo, rel):
    return json.dumps({"session_id": "bench", "cwd": repo, "hook_event_name": "PreToolUse", "tool_name": "Edit",
                       "tool_input": {"file_path": os.path.join(repo, rel), "old_string": "a", "new_string": "b"},
                       "permission_mode": "default", "tool_use_id": "toolu_bench"}).encode()


def bash_event(repo, command):
    return json.dumps({"session_id": "bench", "cwd": repo, "hook_event_name": "PreToolUse", "tool_name": "Bash",
                       "tool_input": {"command": command, "description": "bench"},
                       "permission_mode": "default", "tool_use_id": "toolu_bench"}).encode()


def stop_event(repo, transcript, session):
    return json.dumps({"session_id": session, "cwd": repo, "hook_event_name": "Stop", "stop_hook_active": False,
                       "transcript_path": transcript}).encode()


PIPELINE = ("cd tests && grep -rn score . | sort | uniq -c > /tmp/ratchet-bench-counts.txt; "
            "cat ../sol.py | tee /tmp/ratchet-bench-sol.txt && sed -n 1p ../bench.py && git status --short")


def _child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(argv, stdin, calls, env=None):
    """(wall ms, CPU ms) per call, and the last stdout; CPU time barely moves with the machine's load."""
    times = []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), _child_cpu()
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        times.append(((time.perf_counter() - t0) * 1000, (_child_cpu() - c0) * 1000))
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
        transcript = os.path.join(scratch, "transcript.jsonl")
        with open(transcript, "w") as f:
            f.write('{"type": "assistant", "text": "python3 ratchet.py baseline"}\n' * 200)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}
        cases = [("python3 -S -I -c pass (start-up only)", py + ["-c", "pass"], b"", None),
                 ("Edit: deny bench.py (active run)", py + [HOOK], event(active, "bench.py"), True),
                 ("Edit: allow sol.py (active run)", py + [HOOK], event(active, "sol.py"), False),
                 ("Edit: allow, no run in the repo", py + [HOOK], event(idle, "bench.py"), False),
                 ("Bash: deny echo >> bench.py", py + [HOOK], bash_event(active, "echo 1 >> bench.py"), True),
                 ("Bash: allow a 7-command pipeline", py + [HOOK], bash_event(active, PIPELINE), False),
                 ("Stop: block (run says continue)", py + [STOP], None, True),
                 ("Stop: allow, no run in the repo", py + [STOP], stop_event(idle, transcript, "s"), False),
                 ("Edit without -S -I: deny bench.py", [sys.executable, HOOK], event(active, "bench.py"), True)]
        rows = []
        for k in range(calls):  # round robin, so load drifts on a shared machine hit every case alike
            for i, (name, argv, stdin, denies) in enumerate(cases):
                if stdin is None:  # a new session each call: the Stop hook's count starts at 1 and it blocks
                    stdin = stop_event(active, transcript, f"bench-{k}")
                t, out = timed(argv, stdin, 1, env)
                if denies is not None and bool(out) != denies:
                    sys.exit(f"{name}: unexpected output {out!r}")
                rows.append((i, t))
        print(f"{'case':<42} {'median ms':>10} {'p95 ms':>8} {'CPU ms':>7}   ({calls} calls each; CPU: median "
              f"user+sys of the process)")
        base = None
        for i, (name, *_rest) in enumerate(cases):
            t = sorted(x[0] for j, ts in rows if j == i for x in ts)
            cpu = statistics.median(x[1] for j, ts in rows if j == i for x in ts)
            med, p95 = statistics.median(t), t[int(0.95 * (len(t) - 1))]
            base = med if base is None else base
            extra = "" if i == 0 else f"   ({med - base:+.1f} ms over start-up)"
            print(f"{name:<42} {med:>10.1f} {p95:>8.1f} {cpu:>7.1f}{extra}")
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
