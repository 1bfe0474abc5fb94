#!/usr/bin/env python3
"""Context cost of the ratchet loop: the plugin's always-on and /ratchet token
cost, bytes the agent reads per iteration, and `status` time against history length.

    python3 bench/context_cost.py [--iterations 200] [--sizes 100,1000,10000] [--plugin-only]

Part 0 installs the plugin from this checkout into a scratch HOME (a local
marketplace: `claude plugin marketplace add`, `claude plugin install`) and
prints what `claude plugin details ratchet` projects: the always-on tokens
added to every session and each component's on-invoke cost (the skill body
read at `/ratchet`), next to the body's own size. It needs the Claude Code
client (RATCHET_CLAUDE_BIN, .ci/cache, or `claude` on PATH) and is skipped,
saying so, without one; telemetry, updates and non-essential traffic are off.

Part 1 drives a scripted, deterministic loop (a seeded RNG plays the agent:
keeps, reverts, near misses, crashes, no-change, repeated hypotheses, ideas,
bandit arms, critic picks) through the real CLI, in-process (`cli.main.main`),
with every learning feature on (`--strategy bandit --critic`), and counts the
bytes each verb the skill uses prints: `status` then `iterate` every iteration,
`history --last 10` every 10th, `ideas add` now and then.

Part 2 builds histories of 100 / 1,000 / 10,000 records by writing synthetic
records and the state they fold into straight to `.ratchet/` (fast), then
times `status`, `status --json` and, for contrast, `history --json` (which
reads every record) side by side, and runs a few real `iterate` calls on the
largest history to show the verdict's size does not grow.

Nothing here contacts the network; everything lives in a temporary folder.
"""

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "plugins", "ratchet", "skills", "ratchet", "scripts")
sys.path.insert(0, SCRIPTS)

from ratchetlib.core import record  # noqa: E402
from ratchetlib.cli.main import main as ratchet_main  # noqa: E402
from ratchetlib.learn import bandit, learning, program
from ratchetlib.io import workspace
from ratchetlib.core import state as runstate  # noqa: E402

MECHANISMS = ["hash map for the lookups", "binary search on the sorted keys", "cache the parsed header",
              "unroll the inner loop", "preallocate the output buffer", "batch the small writes",
              "avoid the copy in the hot path", "use a bytearray instead of str joins",
              "move the invariant out of the loop", "precompute the lookup table",
              "parallelize the independent chunks", "store the points as parallel arrays",
              "replace recursion by an explicit stack", "memoize the pure helper",
              "short-circuit the common case", "vectorize the distance computation"]


def cli(repo, *argv):
    """Run the CLI in-process; return (exit code, stdout)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = ratchet_main(["-C", repo, *argv])
    if code not in (0,):
        raise SystemExit(f"ratchet {' '.join(argv)} failed ({code}): {err.getvalue()}{out.getvalue()}")
    return code, out.getvalue()


def git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_repo(root, name):
    repo = os.path.join(root, name)
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "bench")
    git(repo, "config", "user.email", "bench@example.invalid")
    with open(os.path.join(repo, "value.txt"), "w") as f:
        f.write("score: 1000\n")
    git(repo, "add", "value.txt")
    git(repo, "commit", "-q", "-m", "start")
    return repo


INIT = ["init", "--run-command", "cat value.txt", "--direction", "max", "--metric-name", "score",
        "--report-source", "stdout", "--min-improvement", "0.5%", "--strategy", "bandit", "--critic",
        "--instructions", "Do not weaken any assertion; keep the output identical."]


def set_value(repo, text):
    with open(os.path.join(repo, "value.txt"), "w") as f:
        f.write(text)


def summary(sizes):
    return f"median {statistics.median(sizes):6.0f} B   max {max(sizes):5d} B   (n={len(sizes)})"


def scripted_loop(root, iterations, seed=7):
    """Part 1: bytes printed per verb over a scripted loop."""
    rng = random.Random(seed)
    repo = make_repo(root, "loop")
    cli(repo, *INIT, "--iterations", str(iterations))
    cli(repo, "baseline")
    value, streak, reverted = 1000.0, 0, []
    sizes = {"iterate": [], "status": [], "history --last 10": [], "ideas add": []}
    outcomes, walls = {}, []
    t0 = time.monotonic()
    for i in range(1, iterations + 1):
        _, status = cli(repo, "status")
        sizes["status"].append(len(status.encode()))
        arm = re.search(r"iterate --arm (\S+)", status)
        arm = arm.group(1) if arm and rng.random() < 0.8 else rng.choice(bandit.DEFAULT_ARMS)
        if i % 10 == 0:
            _, hist = cli(repo, "history", "--last", "10")
            sizes["history --last 10"].append(len(hist.encode()))
        if i % 7 == 0:
            _, out = cli(repo, "ideas", "add", f"try {rng.choice(MECHANISMS)} in module {rng.randint(1, 9)}")
            sizes["ideas add"].append(len(out.encode()))
        roll = rng.random()
        if streak >= 6 or roll < 0.3:
            kind, new = "keep", value * (1 + rng.uniform(0.01, 0.06))
        elif roll < 0.55:
            kind, new = "revert", value * (1 - rng.uniform(0.0, 0.05))
        elif roll < 0.8:
            kind, new = "near miss", value * (1 + rng.uniform(0.0001, 0.004))
        elif roll < 0.92:
            kind, new = "crash", None
        else:
            kind, new = "no-change", value
        if reverted and rng.random() < 0.25:
            hypothesis = rng.choice(reverted) + rng.choice(("", " again", " (variant)"))
        else:
            hypothesis = f"{rng.choice(MECHANISMS)} in module {rng.randint(1, 9)} should cut work per call"
        set_value(repo, "score: oops\n" if new is None else f"score: {new!r}\n")
        pick = rng.choice(("a", "b", "none"))
        t = time.perf_counter()
        _, out = cli(repo, "iterate", "--hypothesis", hypothesis, "--description", f"step {i}", "--arm", arm,
                     "--proposal-a", f"A: small local tweak {i}", "--proposal-b", f"B: structural change {i}",
                     "--critic-pick", pick, "--critic-reason", "bigger expected effect against the noise")
        walls.append(time.perf_counter() - t)
        sizes["iterate"].append(len(out.encode()))
        decision = json.load(open(os.path.join(repo, ".ratchet", "state.json")))
        rec_kind = re.search(r"iter \d+: (\S+)", out).group(1).lower()
        outcomes[rec_kind] = outcomes.get(rec_kind, 0) + 1
        if rec_kind == "keep":
            value, streak = new, 0
        else:
            streak += 1
            if rec_kind == "revert":
                reverted.append(hypothesis)
        if decision.get("stop"):
            break
    seconds = time.monotonic() - t0
    n = len(sizes["iterate"])
    print(f"== part 1: scripted loop, {n} iterations through the real CLI ({seconds:.1f} s) ==")
    print("outcomes: " + ", ".join(f"{v} {k}" for k, v in sorted(outcomes.items())))
    for verb, got in sizes.items():
        if got:
            print(f"  {verb:<18} {summary(got)}")
    per_iter = [a + b for a, b in zip(sizes["iterate"], sizes["status"])]
    print(f"  {'iterate + status':<18} {summary(per_iter)}")
    k = min(20, len(walls) // 2)
    print(f"  iterate wall time: median {statistics.median(walls[:k]) * 1e3:.0f} ms over the first {k}, "
          f"{statistics.median(walls[-k:]) * 1e3:.0f} ms over the last {k}")
    doc = os.path.getsize(os.path.join(repo, ".ratchet", "program.md"))
    print(f"  program.md {doc} B (cap {program.MAX_BYTES} B)")
    return sizes


def synthetic_record(i, rng, incumbent):
    kind = rng.choices(("keep", "revert", "crash", "no-change"), (25, 55, 12, 8))[0]
    avg = None if kind in ("crash", "no-change") else incumbent * (1 + rng.uniform(-0.04, 0.05))
    if kind == "keep":
        avg = incumbent * (1 + rng.uniform(0.006, 0.05))
    trials = [] if kind == "no-change" else [{"trial": 1, "exit_code": 1 if kind == "crash" else 0, "seconds": 0.01,
                                              "score": avg, "status": "crash" if kind == "crash" else "ok",
                                              "report": f"reports/iter-{i:04d}-trial-01.txt"}]
    return {"iter": i, "hypothesis": f"{rng.choice(MECHANISMS)} in module {rng.randint(1, 99)}",
            "description": f"synthetic step {i}", "trial_scores": [t["score"] for t in trials], "avg": avg,
            "decision": kind, "kept": kind == "keep", "sha": None, "incumbent": incumbent,
            "delta": None if avg is None else avg - incumbent, "timestamp": "2026-01-01T00:00:00Z",
            "reason": "synthetic", "trials": trials, "changed": ["value.txt"], "patch": None,
            "critic": {"pick": rng.choice("ab"), "reason": "synthetic"}, "seconds": 0.1,
            "arm": rng.choice(bandit.DEFAULT_ARMS), "similar": None}


def build_history(root, n, seed=11):
    """A run whose results.jsonl holds n records plus the state they fold into."""
    rng = random.Random(seed)
    repo = make_repo(root, f"hist-{n}")
    cli(repo, *INIT, "--iterations", str(n + 1000), "--escalation", f"halt={n + 1000}")
    cli(repo, "baseline")
    run = workspace.open_run(repo)
    state, band = run.state, bandit.new_state(list(run.config.arms))
    incumbent = state.incumbent_score
    lines = []
    for i in range(1, n + 1):
        rec = synthetic_record(i, rng, incumbent)
        if rec["kept"]:
            rec["sha"], incumbent = state.incumbent_sha, rec["avg"]
        state = runstate.apply_record(state, rec, run.config)
        band = bandit.update(band, rec["arm"], rec["decision"], None, iteration=i)
        lines.append(json.dumps({"format": 1, **rec}, separators=(",", ":")))
    with open(run.store.path("results.jsonl"), "a") as f:
        f.write("\n".join(lines) + "\n")
    state = record.replace(state, stop=None)  # a bench fixture: the history, still running
    bandit.save(learning.bandit_path(run), band)
    run.save(state)
    learning.write_program(run, state)
    return repo


def timed(repo, *argv, repeat=15):
    times, out = [], ""
    for _ in range(repeat):
        t = time.perf_counter()
        _, out = cli(repo, *argv)
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(out.encode())


def history_sizes(root, sizes):
    """Part 2: status time and size against history length."""
    print("\n== part 2: status against history length (median of 15 in-process calls) ==")
    print(f"  {'records':>8} {'results.jsonl':>14} {'status':>10} {'status B':>9} {'status --json':>14}"
          f" {'history --json':>15}")
    last = None
    for n in sizes:
        repo = build_history(root, n)
        size = os.path.getsize(os.path.join(repo, ".ratchet", "results.jsonl"))
        st, st_bytes = timed(repo, "status")
        sj, _ = timed(repo, "status", "--json")
        hj, _ = timed(repo, "history", "--json", repeat=3)
        print(f"  {n:>8} {size / 1e6:>11.2f} MB {st * 1e3:>7.1f} ms {st_bytes:>7} B {sj * 1e3:>11.1f} ms"
              f" {hj * 1e3:>12.1f} ms")
        last = repo
    verdicts = []
    for k in range(5):
        set_value(last, f"score: {1e9 + k}\n" if k % 2 else "score: 1\n")
        _, out = cli(last, "iterate", "--hypothesis", f"real iterate {k} on a long history", "--arm", "rewrite")
        verdicts.append(len(out.encode()))
    print(f"  iterate on the {sizes[-1]}-record history: {summary(verdicts)}")


def find_claude():
    explicit = os.environ.get("RATCHET_CLAUDE_BIN")
    cached = os.path.join(ROOT, ".ci", "cache", "node_modules", ".bin", "claude")
    return explicit or (cached if os.access(cached, os.X_OK) else shutil.which("claude"))


def plugin_cost(root):
    """Part 0: `claude plugin details` of the plugin installed from this checkout."""
    print("== part 0: plugin context cost (claude plugin details) ==")
    skill = os.path.join(ROOT, "plugins", "ratchet", "skills", "ratchet", "SKILL.md")
    with open(skill, encoding="utf-8") as f:
        body = f.read().split("\n---\n", 1)[-1]
    print(f"  SKILL.md body: {len(body)} chars (~{len(body) / 4:.0f} tokens at 4 chars/token)")
    claude = find_claude()
    if not claude:
        print("  skipped: no claude client (set RATCHET_CLAUDE_BIN)")
        return
    market = os.path.join(root, "market")
    os.makedirs(os.path.join(market, ".claude-plugin"))
    shutil.copy(os.path.join(ROOT, ".claude-plugin", "marketplace.json"), os.path.join(market, ".claude-plugin"))
    shutil.copytree(os.path.join(ROOT, "plugins"), os.path.join(market, "plugins"),
                    ignore=shutil.ignore_patterns("__pycache__", "tests"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(HOME=os.path.join(root, "home"), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
               DISABLE_TELEMETRY="1", DISABLE_AUTOUPDATER="1", DISABLE_ERROR_REPORTING="1")
    os.makedirs(env["HOME"])
    for argv in (["plugin", "marketplace", "add", market], ["plugin", "install", "ratchet@ratchet"],
                 ["plugin", "details", "ratchet"]):
        p = subprocess.run([claude, *argv], cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        if p.returncode != 0:
            raise SystemExit(f"claude {' '.join(argv)} failed: {p.stdout[-500:]}")
    out = p.stdout
    always = re.search(r"Always-on:\s*(\S+) tok", out)
    print(f"  always-on: {always.group(1) if always else '?'} tokens added to every session")
    table = out.split("always-on  on-invoke", 1)[-1]
    for line in table.splitlines():
        m = re.match(r"\s+(\S+)\s+(<?\s?~?\S+)\s+(~\S+)\s*$", line)
        if m:
            print(f"  {m.group(1):<20} always-on {m.group(2):>6}   on-invoke {m.group(3)}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--plugin-only", action="store_true", help="only part 0")
    a = p.parse_args(argv)
    root = tempfile.mkdtemp(prefix="ratchet-bench-")
    try:
        plugin_cost(root)
        if a.plugin_only:
            return 0
        scripted_loop(root, a.iterations)
        history_sizes(root, [int(x) for x in a.sizes.split(",")])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
