#!/usr/bin/env python3
"""What reading a tracker file costs per trial, and the file-clock lag behind MTIME_SLACK.

1. The lag: how far a file's modification time trails time.time() read just
   before writing it (the kernel stamps files from a coarse clock). A trial's
   file must never look older than the trial, so MTIME_SLACK must exceed it.
2. Per-trial wall time of trial.run_trial on a trivial command, side by side
   in one run: stdout (the core path) versus jsonl, tensorboard and wandb
   sources (move-aside, read, copy, and the MTIME_SLACK spacing between trials).

3. Issue 18's figures (bench/overhead.py): `iterate` over its floor (one
   interpreter start, the same trial runs, one git commit) and the read
   verbs over an interpreter start, at 10 and 10,000 records, and the git
   processes per `iterate`; `--against DIR` adds another checkout's scripts
   folder side by side; `--ratios` prints only these.

Usage: python3 bench/trial_overhead.py [--trials N] [--against DIR]... [--ratios]   (stdlib only)
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.abspath(os.path.join(HERE, "..", "plugins", "ratchet", "skills", "ratchet", "scripts"))
sys.path.insert(0, SCRIPTS)

from ratchetlib.io import workspace
from ratchetlib.measure import trial
from ratchetlib.measure import reading
from ratchetlib.verbs import session

WRITERS = {
    "stdout": "print('score: 1.5')",
    "jsonl:m.jsonl#score": "open('m.jsonl','w').write('{\"score\": 1.5}\\n')",
    "wandb:wandb#score": ("import os, time, json\nr='wandb/run-%s-%s' % (time.strftime('%Y%m%d_%H%M%S'), os.urandom(3).hex())\n"
                          "os.makedirs(r + '/files')\njson.dump({'score': 1.5}, open(r + '/files/wandb-summary.json', 'w'))"),
    "tensorboard:runs#score": None,  # filled in below with a real event file writer
}


def mtime_lag(samples: int, where: str) -> list:
    d = tempfile.mkdtemp(dir=where)
    lags = []
    try:
        for i in range(samples):
            p = os.path.join(d, f"f{i}")
            before = time.time()
            with open(p, "w") as f:
                f.write("x")
            lags.append(before - os.stat(p).st_mtime)
            time.sleep(0.0005)
    finally:
        shutil.rmtree(d)
    return lags


def tb_writer() -> str:
    sys.path.insert(0, os.path.join(HERE, "..", "plugins", "ratchet", "skills", "ratchet", "scripts"))
    import inspect
    from tests import test_sources as ts
    helpers = "\n".join(inspect.getsource(f) for f in (ts._varint, ts._field, ts.simple_value, ts.event,
                                                        ts._crc32c_bitwise, ts._masked, ts.record))
    return ("import os, struct, time\n" + helpers +
            "\nd='runs/%d' % time.time_ns()\nos.makedirs(d)\n"
            "open(d + '/events.out.tfevents.1.h','wb').write(record(event(time.time(), 1, simple_value('score', 1.5))))\n")


def make_repo(root: str, spec: str, writer: str) -> str:
    repo = os.path.join(root, spec.split(":")[0])
    os.makedirs(repo)
    with open(os.path.join(repo, "bench.py"), "w") as f:
        f.write(writer + "\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "b"]):
        subprocess.run(cmd, cwd=repo, check=True, stdout=subprocess.DEVNULL)
    session.init(repo, {"run_command": f"{sys.executable} bench.py", "direction": "max", "metric_name": "score",
                       "report_source": spec, "protect": ["bench.py"]})
    return repo


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--against", action="append", default=[], metavar="DIR")
    ap.add_argument("--ratios", action="store_true", help="only issue 18's ratios")
    ap.add_argument("--rounds", type=int, default=10)
    opts = ap.parse_args()
    n = opts.trials
    if opts.ratios:
        import overhead
        overhead.report(opts.against, SCRIPTS, rounds=opts.rounds)
        return 0
    for where in (tempfile.gettempdir(), os.getcwd()):
        lags = mtime_lag(2000, where)
        print(f"file mtime behind time.time() in {where}: max {max(lags) * 1000:.2f} ms, median "
              f"{statistics.median(lags) * 1000:.2f} ms over {len(lags)} writes (negative: never behind); "
              f"MTIME_SLACK = {reading.MTIME_SLACK * 1000:.0f} ms")
    WRITERS["tensorboard:runs#score"] = tb_writer()
    root = tempfile.mkdtemp(prefix="ratchet-bench-")
    try:
        repos = {spec: make_repo(root, spec, w) for spec, w in WRITERS.items()}
        runs = {spec: workspace.open_run(repo) for spec, repo in repos.items()}
        times = {spec: [] for spec in repos}
        for k in range(1, n + 1):  # interleaved, so load drifts hit every source alike
            for spec, run in runs.items():
                t0 = time.perf_counter()
                t = trial.run_trial(run, 1, k)
                times[spec].append(time.perf_counter() - t0)
                assert t["status"] == "ok" and t["score"] == 1.5, (spec, t)
        base = statistics.median(times["stdout"])
        print(f"per-trial wall time, median of {n} (trivial Python command):")
        for spec, ts_ in times.items():
            med = statistics.median(ts_)
            print(f"  {spec:<24} {med * 1000:7.1f} ms   {med / base:5.2f}x stdout   (+{(med - base) * 1000:.1f} ms)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    import overhead
    overhead.report(opts.against, SCRIPTS, rounds=opts.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
