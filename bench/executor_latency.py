#!/usr/bin/env python3
"""What a trial costs on each executor: wall time of a trivial trial (`echo
score: 1`) run locally, as a Slurm job and as a Ray job, and the time from a
trial timeout to the job being gone (scancel + squeue empty; ray job stop).

The engines are the real ones the e2e tests use: a single-node Slurm cluster
started for the bench (tests/slurm_cluster.py: needs root and Debian's
slurm-wlm + munge) and a local Ray head (tests/ray_head.py: needs the test
venv .ci/cache/ray-venv or RATCHET_RAY_BIN). An engine that is not there is
reported as skipped. Loopback only; every daemon is stopped at the end.

Usage: python3 bench/executor_latency.py [--trials N]   (~1-2 min with both engines)
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "plugins", "ratchet", "skills", "ratchet", "scripts")
sys.path.insert(0, SCRIPTS)

from ratchetlib.io import exec_ray, exec_slurm, procs, runner  # noqa: E402
from tests import ray_head, slurm_cluster  # noqa: E402


def figures(label: str, times: list) -> str:
    return (f"{label:<28} median {statistics.median(times):6.2f} s   min {min(times):6.2f} s   "
            f"max {max(times):6.2f} s   (n={len(times)})")


def local(tmp: str, n: int) -> list:
    out = []
    for k in range(n):
        t0 = time.monotonic()
        runner.run("echo score: 1", tmp, os.path.join(tmp, f"l{k}.out"), os.path.join(tmp, f"l{k}.err"), 30)
        out.append(time.monotonic() - t0)
    return out


def remote(eng, opts: list, tmp: str, n: int, tag: str) -> tuple:
    runs = []
    for k in range(n):
        name = f"ratchet-bench-{tag}-{os.getpid()}-{k}"
        t0 = time.monotonic()
        got = eng.run(opts, "echo score: 1", tmp, os.path.join(tmp, f"{tag}{k}.out"), os.path.join(tmp, f"{tag}{k}.err"),
                      60, dict(os.environ), None, name, None, {procs.MARKER: name})
        runs.append(time.monotonic() - t0)
        assert got["failure"] is None, got
    name = f"ratchet-bench-{tag}-{os.getpid()}-slow"
    got = eng.run(opts, "sleep 120", tmp, os.path.join(tmp, f"{tag}s.out"), os.path.join(tmp, f"{tag}s.err"), 3,
                  dict(os.environ), None, name, None, {procs.MARKER: name})
    assert got["timed_out"] and not got["left"], got
    return runs, got["seconds"] - 3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    n = ap.parse_args().trials
    tmp = tempfile.mkdtemp(prefix="ratchet-bench-exec-")
    os.chmod(tmp, 0o755)
    print(figures("local (runner.run)", local(tmp, n)))
    why = slurm_cluster.missing()
    if why:
        print(f"slurm: skipped ({why})")
    else:
        cluster = slurm_cluster.Cluster()
        try:
            cluster.start()
            os.environ["SLURM_CONF"] = cluster.conf
            runs, cancel = remote(exec_slurm, [], tmp, n, "s")
            print(figures("slurm (sbatch, 1 node)", runs))
            print(f"{'slurm timeout -> gone':<28} {cancel:6.2f} s after the deadline (scancel, squeue empty)")
        finally:
            os.environ.pop("SLURM_CONF", None)
            cluster.stop()
    why = ray_head.missing()
    if why:
        print(f"ray: skipped ({why})")
    else:
        head = ray_head.Head()
        try:
            head.start()
            saved = dict(os.environ)
            os.environ.update(PATH=head.env["PATH"], RAY_USAGE_STATS_ENABLED="0")
            runs, cancel = remote(exec_ray, [f"--address={head.address}"], tmp, n, "r")
            os.environ.clear()
            os.environ.update(saved)
            print(figures("ray (job submit, 1 CPU)", runs))
            print(f"{'ray timeout -> stopped':<28} {cancel:6.2f} s after the deadline (ray job stop, status STOPPED)")
        finally:
            head.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
