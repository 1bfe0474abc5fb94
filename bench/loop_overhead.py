#!/usr/bin/env python3
"""What `ratchet.py loop` itself costs per iteration, beyond the agent and the benchmark.

A throwaway repository, a benchmark that is one `sh` line (`score: N` from a
file), and a no-op agent (one `sh` line that writes the file and prints the
HYPOTHESIS line). `loop` runs N iterations in one process; ratchet records
every agent call's and every trial's own duration, so

    overhead per iteration = (loop wall time - sum(agent) - sum(trials)) / N

(the loop runs in this process, so its one-time process start is left out),
split into the decision step it shares with `iterate` and its own part

which is what ratchet spends on the prompt (git diff, history), the state
files (atomic writes with fsync), git (status, commit or patch + restore)
and bookkeeping. Two agents: one that improves every time (each iteration a
keep: a commit) and one that never does (each a revert: patch + restore).
For comparison, the same N iterations driven the in-session way, one
`ratchet.py iterate` process per iteration, are timed side by side.

    python3 bench/loop_overhead.py [N] [--against DIR]... [--ratios]
        (N default 30; each case runs 3 times, the best is shown)

First it prints issue 18's figures (bench/overhead.py): `status`, `history
--last 10` and `tail` over a bare interpreter start (twice: as python3
starts here, and with site disabled on both sides, `python3 -S`, the
clean-machine estimate) and `iterate` over its floor, at 10 and 10,000 records, and the git processes per `iterate`; with
`--against DIR` (another checkout's scripts folder) both side by side.
`--ratios` prints only those.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "plugins", "ratchet", "skills", "ratchet", "scripts")
RATCHET = os.path.join(SCRIPTS, "ratchet.py")
REPEATS = 3
BENCH = "sh -c 'echo score: $(cat value.txt)'"
AGENTS = {
    "keep": "sh -c 'echo $((100 + RATCHET_ITERATION)) > value.txt; echo HYPOTHESIS: more'",
    "revert": "sh -c 'echo 1 > value.txt; echo HYPOTHESIS: less'",
}


def sh(repo, *args):
    subprocess.run(args, cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ratchet(repo, *args):
    p = subprocess.run([sys.executable, RATCHET, "-C", repo, *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f"ratchet {args[0]} failed ({p.returncode}): {p.stderr or p.stdout}")
    return p.stdout


def new_run(root, name, n):
    repo = os.path.join(root, name)
    os.makedirs(repo)
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.name", "bench")
    sh(repo, "git", "config", "user.email", "bench@invalid")
    with open(os.path.join(repo, "value.txt"), "w") as f:
        f.write("100\n")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "start")
    ratchet(repo, "init", "--run-command", BENCH, "--direction", "max", "--metric-name", "score",
            "--report-source", "stdout", "--iterations", str(n), "--escalation", "halt=1000")  # all reverts: no halt
    ratchet(repo, "baseline")
    return repo


def records(repo):
    with open(os.path.join(repo, ".ratchet", "results.jsonl")) as f:
        return [json.loads(line) for line in f][1:]


def startup(root):
    """Wall time of a ratchet process that does almost nothing (`status`)."""
    repo = new_run(root, "startup", 1)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        ratchet(repo, "status")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_loop(root, name, kind, n):
    """`loop` in this process (no process start in the figure), with the
    shared decision step (session.step, as `iterate` runs it) timed apart."""
    sys.path.insert(0, SCRIPTS)
    from ratchetlib.cli import main as cli
    from ratchetlib.verbs import session
    from ratchetlib.verbs.loop import headless
    repo = new_run(root, f"loop-{name}", n)
    spent = {"step": 0.0}
    real_step = session.step

    def timed_step(*a, **k):
        t = time.perf_counter()
        try:
            return real_step(*a, **k)
        finally:
            spent["step"] += time.perf_counter() - t
    headless.session.step = timed_step
    try:
        with open(os.devnull, "w") as null:
            saved, sys.stdout = sys.stdout, null
            try:
                t0 = time.perf_counter()
                code = cli.main(["-C", repo, "loop", "--agent-command", AGENTS[kind]])
                wall = time.perf_counter() - t0
            finally:
                sys.stdout = saved
    finally:
        headless.session.step = real_step
    assert code == 0, code
    recs = records(repo)
    assert len(recs) == n and all(r["decision"] == kind for r in recs), [r["decision"] for r in recs]
    agent = sum(r["agent"]["seconds"] for r in recs)
    trials = sum(t["seconds"] for r in recs for t in r["trials"])
    prompt = statistics.mean(os.path.getsize(os.path.join(repo, ".ratchet", r["agent"]["prompt"])) for r in recs)
    return {"wall": wall, "agent": agent, "trials": trials, "overhead": (wall - agent - trials) / n,
            "decide": (spent["step"] - trials) / n, "prompt_bytes": prompt}


def time_iterate(root, name, kind, n):
    """The in-session way: the agent's edit, then one `ratchet.py iterate` process."""
    repo = new_run(root, f"iterate-{name}", n)
    env = dict(os.environ)
    t0 = time.perf_counter()
    for it in range(1, n + 1):
        env["RATCHET_ITERATION"] = str(it)
        subprocess.run(AGENTS[kind], shell=True, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
        ratchet(repo, "iterate", "--hypothesis", "h")
    wall = time.perf_counter() - t0
    recs = records(repo)
    trials = sum(t["seconds"] for r in recs for t in r["trials"])
    return {"wall": wall, "trials": trials, "per_iter": wall / n}


def main():
    import argparse
    import overhead
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=30)
    ap.add_argument("--against", action="append", default=[], metavar="DIR")
    ap.add_argument("--ratios", action="store_true", help="only issue 18's ratios")
    ap.add_argument("--rounds", type=int, default=10)
    opts = ap.parse_args()
    overhead.report(opts.against, SCRIPTS, rounds=opts.rounds)
    if opts.ratios:
        return
    print()
    n = opts.n
    root = tempfile.mkdtemp(prefix="ratchet-bench-")
    try:
        start = startup(root)
        print(f"ratchet loop overhead, {n} iterations per case, python {sys.version.split()[0]}, {os.cpu_count()} cpu(s)")
        print(f"process start + imports (one `status` call, median of 5): {start * 1000:.0f} ms")
        for kind in ("keep", "revert"):
            runs = [(time_loop(root, f"{kind}-{r}", kind, n), time_iterate(root, f"{kind}-{r}", kind, n))
                    for r in range(REPEATS)]
            lp = min((r[0] for r in runs), key=lambda x: x["overhead"])
            it = min((r[1] for r in runs), key=lambda x: x["per_iter"])
            own = lp["overhead"] - lp["decide"]
            spread = ", ".join(f"{r[0]['overhead'] * 1000:.0f}" for r in runs)
            print(f"\n{kind} every iteration (best of {REPEATS} side-by-side runs; all: {spread} ms):")
            print(f"  loop: {lp['wall']:.2f} s = agent {lp['agent']:.2f} s + trials {lp['trials']:.2f} s"
                  f" + ratchet {lp['wall'] - lp['agent'] - lp['trials']:.2f} s")
            print(f"  loop overhead beyond agent and benchmark: {lp['overhead'] * 1000:.1f} ms per iteration =")
            print(f"    decision (the same code `iterate` runs: scope check, state, git): {lp['decide'] * 1000:.1f} ms")
            print(f"    loop's own (prompt {lp['prompt_bytes'] / 1024:.1f} KiB, buffer, agent spawn): {own * 1000:.1f} ms")
            print(f"  in-session, one `iterate` process per iteration: {it['per_iter'] * 1000:.1f} ms per iteration"
                  f" (incl. process start); loop/in-session ratio {lp['wall'] / it['wall']:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
