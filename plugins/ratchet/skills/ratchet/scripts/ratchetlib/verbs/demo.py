"""`ratchet.py demo`: the whole loop on a throwaway repository, no LLM.

It plays the agent's part with four scripted edits, one of each outcome the
user should see: a real improvement (kept), a regression (reverted), a crash
(reverted, diagnosable with `tail`) and an edit of the protected benchmark
(recorded `tampered`, undone). The benchmark counts comparisons, so the demo is deterministic.
"""

import os
import shlex
import subprocess
import sys
import tempfile
import time

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "ratchet.py")

BENCH = '''"""The benchmark (protected): how many comparisons do 572 lookups cost?"""
import search

xs = list(range(0, 4000, 2))
counter = [0]
for target in range(0, 4000, 7):
    search.find(xs, target, counter)
print(f"comparisons: {counter[0]}")
'''

LINEAR = '''def find(xs, target, counter):
    """Index of target in the sorted list xs, or -1."""
    for i, x in enumerate(xs):
        counter[0] += 1
        if x == target:
            return i
    return -1
'''

BINARY = '''def find(xs, target, counter):
    """Index of target in the sorted list xs, or -1 (binary search)."""
    lo, hi = 0, len(xs)
    while lo < hi:
        mid = (lo + hi) // 2
        counter[0] += 1
        if xs[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < len(xs) and xs[lo] == target else -1
'''

STEPS = [
    ("binary search instead of a linear scan: O(log n) comparisons per lookup",
     "search.py: bisect the sorted list", {"search.py": BINARY}),
    ("checking the midpoint for equality first might end searches early",
     "search.py: extra equality test per step", {"search.py": BINARY.replace(
         "        counter[0] += 1\n", "        counter[0] += 2\n        if xs[mid] == target:\n            return mid\n")}),
    ("an iterative helper could avoid the slice cost",
     "search.py: refactor (with a typo)", {"search.py": BINARY.replace("lo, hi = 0, len(xs)", "lo, hi = 0, len(xss)")}),
    ("count fewer lookups in the benchmark",
     "bench.py: halve the workload (not allowed: the harness is protected)",
     {"bench.py": BENCH.replace("range(0, 4000, 7)", "range(0, 2000, 7)")}),
]


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _make_repo(root: str) -> str:
    repo = os.path.join(root, "demo-project")
    os.makedirs(repo)
    for name, text in (("bench.py", BENCH), ("search.py", LINEAR), ("notes.txt", "my own notes, untracked\n")):
        with open(os.path.join(repo, name), "w") as f:
            f.write(text)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "demo")
    _git(repo, "config", "user.email", "demo@example.invalid")
    _git(repo, "add", "bench.py", "search.py")
    _git(repo, "commit", "-q", "-m", "a slow search")
    return repo


def _ratchet(repo: str, *args: str) -> int:
    shown = " ".join(shlex.quote(a) for a in args)
    print(f"\n$ ratchet.py {shown}")
    sys.stdout.flush()
    p = subprocess.run([sys.executable, SCRIPT, *args], cwd=repo, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    print("  " + p.stdout.rstrip().replace("\n", "\n  "))
    return p.returncode


def main(keep: bool = False) -> int:
    t0 = time.monotonic()
    root = tempfile.mkdtemp(prefix="ratchet-demo-")
    repo = _make_repo(root)
    print(f"demo repository: {repo}  (bench.py is the protected benchmark, search.py the code to improve)")
    rc = _ratchet(repo, "init", "--run-command", f"{shlex.quote(sys.executable)} bench.py", "--direction", "min",
                  "--metric-name", "comparisons", "--report-source", "stdout", "--trials", "2",
                  "--iterations", "10", "--instructions", "Never edit bench.py.")
    rc = rc or _ratchet(repo, "baseline")
    for hypothesis, description, files in STEPS:
        if rc:
            break
        print(f"\n# the agent edits {', '.join(files)}: {description}")
        for name, text in files.items():
            with open(os.path.join(repo, name), "w") as f:
                f.write(text)
        rc = _ratchet(repo, "iterate", "--hypothesis", hypothesis, "--description", description)
    if not rc:
        _ratchet(repo, "tail", "--iter", "3", "--lines", "8")
        _ratchet(repo, "history")
        _ratchet(repo, "status")
        log = subprocess.run(["git", "log", "--oneline", "-3"], cwd=repo, stdout=subprocess.PIPE, text=True).stdout
        print("\n$ git log --oneline -3\n  " + log.rstrip().replace("\n", "\n  "))
        notes = open(os.path.join(repo, "notes.txt")).read().strip()
        print(f"\nuntouched untracked file notes.txt: {notes!r}")
    print(f"\ndemo {'finished' if not rc else 'FAILED'} in {time.monotonic() - t0:.1f}s")
    if keep:
        print(f"kept: {repo}")
    else:
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    return 1 if rc else 0
