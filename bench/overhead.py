"""Shared by loop_overhead.py and trial_overhead.py: ratchet's own cost,
as ratios to what any correct implementation must pay (issue 18).

  read ratio     `status`, `history --last 10`, `tail` wall time over a bare
                 interpreter start (`python3 -c pass`), at 10 and 10,000
                 records, bytecode cached as a user has it;
  iterate ratio  one `ratchet.py iterate` over its floor: one interpreter
                 start + the same number of trial runs of the benchmark
                 (read from the record ratchet wrote) + one `git commit`;
                 the median of per-round paired ratios (each round times
                 both, side by side, so load drifts hit both alike); again
                 at 10 records with `python3 -S` on both sides, as the read
                 ratios are (this machine's site costs ~30 ms a user's does
                 not: with it, ratchet's own cost looks smaller);
  git processes  per `iterate`, counted by a `git` first on PATH that logs
                 each call and execs the real one (a separate, untimed
                 iterate, so the wrapper's own start never enters a time).

Several script folders (`--against DIR`: another checkout's
plugins/ratchet/skills/ratchet/scripts, e.g. `git archive main`) are measured
in the same run, interleaved: before/after tables side by side.

A 10,000-record history is made by a few real iterations, then the last
record re-sealed under new iteration numbers (the run's own key, through
that checkout's seal module) and state.json's counter moved to match: the
file ratchet reads is the size a long night leaves. The last REPORTS
iterations get the last one's trial reports too (hard links), since a run
keeps every trial's report files under .ratchet/reports/.
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

BENCH = "sh -c 'echo score: $(cat value.txt)'"
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
READ_VERBS = (("status",), ("history", "--last", "10"), ("tail",))


def sh(repo, *args):
    subprocess.run(args, cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)


def ratchet(scripts, repo, *args, env=None):
    p = subprocess.run([sys.executable, os.path.join(scripts, "ratchet.py"), "-C", repo, *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or ENV)
    if p.returncode != 0:
        raise SystemExit(f"ratchet {args[0]} failed ({p.returncode}): {p.stderr or p.stdout}")
    return p.stdout


def new_repo(root, name):
    repo = os.path.join(root, name)
    os.makedirs(repo)
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.name", "bench")
    sh(repo, "git", "config", "user.email", "bench@invalid")
    with open(os.path.join(repo, "value.txt"), "w") as f:
        f.write("100\n")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "start")
    time.sleep(2.1)  # a user's repository was not made a moment ago: out of the racy window of stat checks
    return repo


def new_run(scripts, root, name, records):
    """A run with `records` records after its baseline (see the module doc)."""
    repo = new_repo(root, name)
    ratchet(scripts, repo, "init", "--run-command", BENCH, "--direction", "max", "--metric-name", "score",
            "--report-source", "stdout", "--iterations", "1000000", "--escalation", "halt=1000000",
            "--verify-every", "0")
    ratchet(scripts, repo, "baseline")
    for it in range(1, min(records, 3) + 1):
        edit(repo, it, "keep")
        ratchet(scripts, repo, "iterate", "--hypothesis", f"h{it}")
    if records > 3:
        _pad(scripts, repo, records)
    return repo


_PAD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ratchetlib.io import seal, store as st
s = st.Store(sys.argv[2]); n = int(sys.argv[3])
recs = s.records()
last = seal.strip(recs[-1]) if hasattr(seal, "strip") else {k: v for k, v in recs[-1].items() if k != "seal"}
run_id, key = seal.key_for(s.root, seal.RECORDS)
with open(s.file("results"), "ab") as f:
    for i in range(last["iter"] + 1, n + 1):
        f.write(seal.record_line({**last, "iter": i}, run_id, key))
state = s.read_state()
if isinstance(state, dict):  # a checkout from before the typed run state
    state["iteration"] = n
else:
    from ratchetlib.core import state as core_state
    state = core_state.from_json({**state.to_json(), "iteration": n})
s.write_state(state)
import glob, os, shutil  # the last iteration's trial reports, as the last REPORTS iterations' (n's for `tail`)
for p in glob.glob(os.path.join(s.root, "reports", "iter-%04d-trial-*" % last["iter"])):
    shutil.copy(p, p.replace("iter-%04d-" % last["iter"], "iter-%04d-" % n))
    for i in range(max(last["iter"] + 1, n - int(sys.argv[4])), n):
        os.link(p, p.replace("iter-%04d-" % last["iter"], "iter-%04d-" % i))
"""
REPORTS = 1000  # iterations whose trial reports a padded run holds: a night's worth in .ratchet/reports/


def _pad(scripts, repo, n):
    subprocess.run([sys.executable, "-c", _PAD, scripts, repo, str(n), str(REPORTS)], check=True, env=ENV)


def edit(repo, it, kind):
    """The agent's change: a better value (kind keep) or a worse one (revert)."""
    with open(os.path.join(repo, "value.txt"), "w") as f:
        f.write(f"{100 + it}\n" if kind == "keep" else "1\n")


def _wall(argv, cwd=None, shell=False):
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t


def read_ratios(versions: dict, root: str, sizes=(10, 10000), rounds: int = 15) -> dict:
    """{mode: {(version, size, verb): (median ms, median ratio to python3 -c pass)}}, mode "site" as
    python3 starts here and "-S" with site disabled on both sides (`python3 -S`): this machine's
    site runs a sandbox .pth (certifi, ~30 ms) a user's does not have, which hides our own import
    cost; the -S ratio is the clean-machine estimate."""
    runs = {(v, n): new_run(s, root, f"read-{v}-{n}", n) for v, s in versions.items() for n in sizes}
    for (v, n), repo in runs.items():  # bytecode cached before anything is timed
        for verb in READ_VERBS:
            ratchet(versions[v], repo, *verb)
    out = {}
    for mode, flag in (("site", []), ("-S", ["-S"])):
        times, ratios = {}, {}
        for _ in range(rounds):
            base = _wall([sys.executable, *flag, "-c", "pass"])
            times.setdefault("pass", []).append(base)
            for (v, n), repo in runs.items():
                for verb in READ_VERBS:
                    t = _wall([sys.executable, *flag, os.path.join(versions[v], "ratchet.py"), "-C", repo, *verb])
                    times.setdefault((v, n, verb[0]), []).append(t)
                    ratios.setdefault((v, n, verb[0]), []).append(t / base)
        out[mode] = {k: (statistics.median(times[k]) * 1000, statistics.median(r)) for k, r in ratios.items()}
        out[mode]["pass"] = (statistics.median(times["pass"]) * 1000, 1.0)
    return out


def _floor(repo, scratch, trials: int, it: int, flag=()) -> float:
    """One interpreter start, `trials` runs of the benchmark, one git commit."""
    t = time.perf_counter()
    subprocess.run([sys.executable, *flag, "-c", "pass"], env=ENV)
    for _ in range(trials):
        subprocess.run(BENCH, shell=True, cwd=repo, stdout=subprocess.DEVNULL, env=ENV)
    with open(os.path.join(scratch, "value.txt"), "w") as f:
        f.write(f"{it}\n")
    subprocess.run(["git", "commit", "-qam", f"floor {it}"], cwd=scratch, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t


def _trials_of_last(repo) -> int:
    import json
    with open(os.path.join(repo, ".ratchet", "results.jsonl"), "rb") as f:
        f.seek(max(0, os.path.getsize(f.name) - (1 << 16)))
        last = json.loads(f.read().splitlines()[-1])
    return len(last.get("trials") or []) + len(last.get("incumbent_trials") or [])


def iterate_ratios(versions: dict, root: str, sizes=(10, 10000), rounds: int = 10, kinds=("keep", "revert"),
                   flag=()) -> dict:
    """{(version, size, kind): (median iterate ms, median floor ms, median paired ratio, trials)};
    `flag` ("-S",): both interpreters started without site (see read_ratios)."""
    tag = "".join(flag).strip("-")
    runs = {(v, n, k): new_run(s, root, f"it{tag}-{v}-{n}-{k}", n) for v, s in versions.items() for n in sizes
            for k in kinds}
    scratch = new_repo(root, f"floor-scratch{tag}")
    seen = {key: [] for key in runs}
    for r in range(rounds):
        for (v, n, k), repo in runs.items():
            it = n + 1 + r
            edit(repo, it, k)
            t = _wall([sys.executable, *flag, os.path.join(versions[v], "ratchet.py"), "-C", repo, "iterate",
                       "--hypothesis", f"bench {it}"])
            trials = _trials_of_last(repo)
            floor = _floor(repo, scratch, trials, it, flag)
            seen[(v, n, k)].append((t, floor, trials))
    return {key: (statistics.median(x[0] for x in s) * 1000, statistics.median(x[1] for x in s) * 1000,
                  statistics.median(x[0] / x[1] for x in s), statistics.median(x[2] for x in s))
            for key, s in seen.items()}


_WRAPPER = """#!/bin/sh
echo git >> "{log}"
exec "{git}" "$@"
"""


def git_processes(versions: dict, root: str, kinds=("keep", "revert")) -> dict:
    """{(version, kind): git processes one `iterate` starts}."""
    bindir = os.path.join(root, "counting-bin")
    os.makedirs(bindir, exist_ok=True)
    log = os.path.join(root, "git-calls.log")
    with open(os.path.join(bindir, "git"), "w") as f:
        f.write(_WRAPPER.format(log=log, git=shutil.which("git")))
    os.chmod(os.path.join(bindir, "git"), 0o755)
    env = {**ENV, "PATH": bindir + os.pathsep + ENV.get("PATH", "")}
    out = {}
    for v, scripts in versions.items():
        for k in kinds:
            repo = new_run(scripts, root, f"git-{v}-{k}", 3)
            edit(repo, 10, k)
            open(log, "w").close()
            ratchet(scripts, repo, "iterate", "--hypothesis", "counted", env=env)
            with open(log) as f:
                out[(v, k)] = sum(1 for _ in f)
    return out


def versions_from(argv_against: list, here_scripts: str) -> dict:
    """{'this': this checkout's scripts, 'before': --against DIR, ...}."""
    out = {}
    for i, d in enumerate(argv_against):
        out["before" if i == 0 else f"before{i + 1}"] = os.path.abspath(d)
    out["this"] = here_scripts
    return out


def print_read(modes: dict, versions: dict, sizes=(10, 10000)) -> None:
    for mode, res in modes.items():
        _print_read(mode, res, versions, sizes)


def _print_read(mode: str, res: dict, versions: dict, sizes) -> None:
    what = ("python3 -c pass" if mode == "site" else
            "python3 -S -c pass, site disabled on both sides: the clean-machine estimate")
    print(f"read verbs vs a bare interpreter start ({what}: {res['pass'][0]:.1f} ms), median of rounds:")
    print(f"  {'verb':<22}" + "".join(f"{v + ' @' + str(n):>22}" for v in versions for n in sizes))
    for verb in READ_VERBS:
        cells = "".join(f"{res[(v, n, verb[0])][0]:8.1f} ms {res[(v, n, verb[0])][1]:5.2f}x   "
                        for v in versions for n in sizes)
        print(f"  {' '.join(verb):<22}" + cells)


def print_iterate(res: dict, git: dict, versions: dict, sizes=(10, 10000), kinds=("keep", "revert"),
                  mode: str = "site") -> None:
    what = "" if mode == "site" else "; python3 -S on both sides, the clean-machine estimate"
    print(f"iterate vs its floor (interpreter start + the same trial runs + one git commit{what}), "
          f"median of paired ratios:")
    for v in versions:
        for k in kinds:
            for n in sizes:
                it, fl, ratio, trials = res[(v, n, k)]
                print(f"  {v:<7} {k:<6} @{n:<6} iterate {it:7.1f} ms  floor {fl:6.1f} ms  ({trials:.0f} trials)"
                      f"  ratio {ratio:5.2f}x")
            if git:
                print(f"  {v:<7} {k:<6} git processes per iterate: {git[(v, k)]}")


def report(against: list, here_scripts: str, rounds: int = 10, sizes=(10, 10000)) -> None:
    """Print the three figures for this checkout and each `against` one, side by side."""
    import tempfile
    versions = versions_from(against, here_scripts)
    root = tempfile.mkdtemp(prefix="ratchet-overhead-")
    try:
        print(f"issue 18 figures, python {sys.version.split()[0]}, {os.cpu_count()} cpu(s), bytecode cached; "
              + ", ".join(f"{v} = {s}" for v, s in versions.items()))
        print_read(read_ratios(versions, root, sizes, rounds=max(rounds, 10)), versions, sizes)
        print_iterate(iterate_ratios(versions, root, sizes, rounds=rounds), git_processes(versions, root),
                      versions, sizes)
        print_iterate(iterate_ratios(versions, root, sizes[:1], rounds=rounds, flag=("-S",)), {}, versions,
                      sizes[:1], mode="-S")
    finally:
        shutil.rmtree(root, ignore_errors=True)
