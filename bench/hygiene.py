#!/usr/bin/env python3
"""Processes surviving a trial (issue 9, part 2), counted over many trials.

Each trial runs tests/spawner.py, which starts a child, a grandchild, a
setsid child, a double-forked daemon and a double-forked daemon that cleared
its environment (7 processes with itself). Modes, side by side in one run:
  exit     the trial's main process exits, leaving the other 6 behind
  timeout  the whole tree hangs until --trial-timeout kills it
  killed   ratchet itself is SIGKILLed while the tree hangs; what the next
           command does (runner.kill_left_by, by the dead command's marker
           prefix) is all that cleans up: without ratchet there is no
           subreaper, so the env-clearing daemon (1 of 7) is out of reach
After each trial the bench checks every recorded pid and counts the live ones.

Usage: python3 bench/hygiene.py [--trials 20]    (Linux; ~1 s per timeout trial)
"""

import argparse
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

from ratchetlib.io import runner  # noqa: E402

SPAWNER = os.path.join(SCRIPTS, "tests", "spawner.py")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# A ratchet command reduced to its trial: runner.run of the spawner, to be SIGKILLed mid-trial.
KILLED = ("import sys; sys.path.insert(0, sys.argv[1]); from ratchetlib import runner; "
          "runner.run(sys.argv[2], sys.argv[3], sys.argv[3] + '/o', sys.argv[3] + '/e', timeout=60)")


def killed_trial(d: str, pidfile: str) -> float:
    """Start the trial in a separate 'ratchet', SIGKILL it once the tree is up, then recover as the next command does."""
    cmd = f"{sys.executable} {SPAWNER} {pidfile} hang"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, SCRIPTS, cmd, d])
    while not (os.path.exists(pidfile) and len(open(pidfile).read().split()) >= 7):
        time.sleep(0.01)
    start = runner.pid_start(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    runner.kill_left_by(proc.pid, start)
    return time.monotonic() - t0


def trial(mode: str) -> tuple:
    d = tempfile.mkdtemp(prefix="hygiene-")
    try:
        pidfile = os.path.join(d, "pids")
        t0 = time.monotonic()
        if mode == "killed":
            seconds = killed_trial(d, pidfile)
        else:
            runner.run(f"{sys.executable} {SPAWNER} {pidfile} {mode}", d, os.path.join(d, "o"), os.path.join(d, "e"),
                       timeout=1.0 if mode == "hang" else 30.0)
            seconds = time.monotonic() - t0
        with open(pidfile) as f:
            pids = [int(p) for p in f.read().split()]
        runner.wait_gone(pids, 0.5)
        left = [p for p in pids if alive(p)]
        for p in left:  # leave the machine clean even when the count is not 0
            runner.kill_pid(p)
        return len(pids), len(left), seconds
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="trials per mode (default 20)")
    a = ap.parse_args()
    total_started = total_left = 0
    print(f"{'mode':8} {'trials':>6} {'started':>8} {'surviving':>9} {'s/trial':>8}")
    killed = None
    for label, mode in (("exit", "exit"), ("timeout", "hang"), ("killed", "killed")):
        runs = [trial(mode) for _ in range(a.trials)]
        started, left = sum(r[0] for r in runs), sum(r[1] for r in runs)
        print(f"{label:8} {a.trials:6d} {started:8d} {left:9d} {sum(r[2] for r in runs) / a.trials:8.2f}")
        if mode == "killed":
            killed = (started, left)
        else:
            total_started, total_left = total_started + started, total_left + left
    print(f"processes surviving a trial: {total_left} of {total_started} started "
          f"(child, grandchild, setsid, double-fork, env-clearing double-fork; subreaper: {runner._become_subreaper()})")
    print(f"processes surviving a SIGKILLed ratchet once the next command ran: {killed[1]} of {killed[0]} "
          f"(s/trial there: the next command's sweep)")


if __name__ == "__main__":
    main()
