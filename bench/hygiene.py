#!/usr/bin/env python3
"""Processes surviving a trial, per escape pattern, counted over many trials (issue 15, point 4).

Each trial runs tests/spawner.py with one escape pattern (child, grandchild,
setsid, double-fork, env-clear, reforker, breeder, fd-closer: see spawner.py).
Modes:
  alive   ratchet runs the trial to its end: 3 trials in 4 exit and leave the
          pattern behind, 1 in 4 hangs until --trial-timeout kills it
  killed  ratchet (runner.run with a trial record, in a process of its own) is
          SIGKILLed once the tree is up; then what the next command runs
          (leftovers.sweep in a process of its own, as recovery does on taking
          over the lock)
  keeper  as killed, and the trial's keeper is SIGKILLed too, before the next
          command (the worst case: nothing contains the tree any more)
After each trial the bench counts the live processes that carry the trial's
tag (every process the spawner starts keeps its pid file in its command
line, so a re-forker's later generations count too). `recorded` are the
survivors the sweep returned as left or suspect, i.e. what recovery writes
to .ratchet/UNCLEAN and reports; `unrecorded` must be 0 in every mode, and
`surviving` must be 0 in alive and killed.

Usage: python3 bench/hygiene.py [--trials 200] [--modes alive,killed,keeper] [--patterns a,b]
(Linux; about 0.4 s per alive or killed trial, --trial-timeout for a hanging one)
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "plugins", "ratchet", "skills", "ratchet", "scripts")
sys.path.insert(0, SCRIPTS)
sys.path.insert(0, os.path.join(SCRIPTS, "tests"))

from ratchetlib.io import keeper, leftovers, procs, runner  # noqa: E402  (leftovers: finding the keepers to kill)
import spawner  # noqa: E402

SPAWNER = os.path.abspath(spawner.__file__)

# A ratchet command reduced to its trial: runner.run of the spawner (with a record), to be SIGKILLed mid-trial.
KILLED = ("import sys; sys.path.insert(0, sys.argv[1]); from ratchetlib.io import runner; "
          "runner.run(sys.argv[2], sys.argv[3], sys.argv[3] + '/o', sys.argv[3] + '/e', timeout=60, "
          "record_dir=sys.argv[3] + '/procs')")


SWEEP = ("import json, sys; sys.path.insert(0, sys.argv[1]); from ratchetlib.io import leftovers; "
         "print(json.dumps(leftovers.sweep(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))")


def tagged(tag: bytes) -> list:
    """Live (non-zombie) processes whose command line holds `tag`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if tag not in f.read():
                    continue
        except OSError:
            continue
        stat = keeper.stat_fields(name)
        if stat and stat[0] not in (b"Z", b"X"):
            found.append(int(name))
    return found


def noted(pidfile: str) -> list:
    try:
        with open(pidfile) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def wait_up(pidfile: str, want: int, proc=None) -> None:
    end = time.monotonic() + 30
    while len(noted(pidfile)) < want and time.monotonic() < end and (proc is None or proc.poll() is None):
        time.sleep(0.005)


def killed_trial(d: str, cmd: str, want: int, pidfile: str, keeper_too: bool) -> tuple:
    """SIGKILL a 'ratchet' mid-trial (and its keeper), then sweep as the next command does."""
    proc = subprocess.Popen([sys.executable, "-c", KILLED, SCRIPTS, cmd, d])
    wait_up(pidfile, want, proc)
    start = runner.pid_start(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if keeper_too:
        ks = leftovers.keepers_of(leftovers._records(os.path.join(d, "procs"), runner.marker_prefix(proc.pid, start)))
        for k in ks:
            procs.kill_pid(k)
        procs.wait_gone(list(ks))
    t0 = time.monotonic()  # the next command is a process of its own (what it left is not its descendant)
    out = subprocess.run([sys.executable, "-c", SWEEP, SCRIPTS, str(proc.pid), str(start), os.path.join(d, "procs")],
                         stdout=subprocess.PIPE, check=True).stdout
    _, left, suspects = json.loads(out)
    return time.monotonic() - t0, {p["pid"] for p in left} | {p["pid"] for p in suspects}


def trial(pattern: str, mode: str, k: int, timeout: float) -> tuple:
    """(started, surviving, recorded, seconds) of one trial."""
    d = tempfile.mkdtemp(prefix="hygiene-")
    pidfile = os.path.join(d, "pids")
    tag = pidfile.encode()
    want = spawner.expected([pattern])
    try:
        recorded = set()
        if mode == "alive":
            hang = k % 4 == 3
            t0 = time.monotonic()
            r = runner.run(f"{sys.executable} {SPAWNER} {pidfile} {'hang' if hang else 'exit'} {pattern}", d,
                           os.path.join(d, "o"), os.path.join(d, "e"), timeout=timeout if hang else 60.0)
            seconds = time.monotonic() - t0
            recorded = {p["pid"] for p in r.survivors}
        else:
            seconds, recorded = killed_trial(d, f"{sys.executable} {SPAWNER} {pidfile} hang {pattern}", want, pidfile,
                                             mode == "keeper")
        started = max(len(noted(pidfile)), want)
        keeper.reap()  # orphans re-parented to this process (a subreaper) once their keeper died
        procs.wait_gone(tagged(tag), 0.3)
        left = tagged(tag)
        if left:  # leave the machine clean even when the count is not 0
            keeper.freeze_kill(lambda: tagged(tag))
            keeper.reap()
        return started, len(left), len(set(left) & recorded), seconds
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="trials per pattern and mode (default 20)")
    ap.add_argument("--modes", default="alive,killed,keeper", help="comma-separated: alive, killed, keeper")
    ap.add_argument("--patterns", default=",".join(spawner.PATTERNS), help="comma-separated spawner patterns")
    ap.add_argument("--trial-timeout", type=float, default=1.0, help="timeout of the hanging alive trials (s)")
    a = ap.parse_args()
    runner._become_subreaper()  # as ratchet is
    modes, patterns = a.modes.split(","), a.patterns.split(",")
    print(f"{'pattern':12} {'mode':7} {'trials':>6} {'started':>8} {'surviving':>9} {'recorded':>8} "
          f"{'unrecorded':>10} {'s/trial':>8}")
    totals = {m: [0, 0, 0] for m in modes}
    t_all = time.monotonic()
    for pattern in patterns:
        for mode in modes:
            runs = [trial(pattern, mode, k, a.trial_timeout) for k in range(a.trials)]
            started, left, rec = (sum(r[i] for r in runs) for i in range(3))
            totals[mode] = [totals[mode][0] + started, totals[mode][1] + left, totals[mode][2] + rec]
            print(f"{pattern:12} {mode:7} {a.trials:6d} {started:8d} {left:9d} {rec:8d} {left - rec:10d} "
                  f"{sum(r[3] for r in runs) / a.trials:8.2f}", flush=True)
    for mode, (started, left, rec) in totals.items():
        print(f"{mode}: {left} of {started} processes started survived, {left - rec} of them unrecorded "
              f"({a.trials} trials x {len(patterns)} patterns)")
    print(f"subreaper: {runner._become_subreaper()}; {time.monotonic() - t_all:.0f} s in all")


if __name__ == "__main__":
    main()
