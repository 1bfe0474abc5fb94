"""A trial that leaves processes behind in every way a process can escape.

`python spawner.py PIDFILE MODE [PATTERN ...]`: starts one process per
PATTERN (default: the first five, 7 pids with this one), each of which appends its first pid to
PIDFILE, then, once all are noted (this process's pid too), prints
`score: 1` and exits (MODE `exit`) or sleeps (MODE `hang`). Every process it
starts keeps PIDFILE in its command line, so a re-forker's later
generations can be counted too (`tagged`). Patterns:

  child        a plain child
  grandchild   a grandchild under a middle process
  setsid       a child in its own session
  double-fork  a daemon: own session, its middle process exits
  env-clear    a daemon that also cleared its environment (no RATCHET_TRIAL_ID)
  reforker     an env-clearing daemon that forks and exits continuously, so
               its pid keeps changing (a new one every ~1-2 ms; one process alive at a time, sometimes two)
  breeder      an env-clearing daemon that starts a new child every 5 ms
  fd-closer    an env-clearing daemon that also closed the trial's stdout/stderr
               and moved to / (what a careful daemon does): nothing in it names the trial

Every process it starts ends by itself LIFETIME seconds after it began (a
re-forker's generations share their first one's deadline, kept across fork),
and a breeder stops breeding after BROOD children: an escape is still a real
escape while it lasts, but one that escaped cannot load the machine for long.

Used by tests/test_hygiene.py and bench/hygiene.py.
"""

import os
import sys
import time

LIFETIME = 60.0   # seconds any process started here lives at most
BROOD = 200       # children a breeder starts at most (one every 5 ms: 1 s of breeding)

PATTERNS = ("child", "grandchild", "setsid", "double-fork", "env-clear", "reforker", "breeder", "fd-closer")


def note(pidfile, pid=None):
    with open(pidfile, "a") as f:
        f.write(f"{pid or os.getpid()}\n")


def fork(body, *args):
    if os.fork() == 0:
        try:
            body(*args)
        finally:
            os._exit(0)


def sleeper(pidfile):
    note(pidfile)
    time.sleep(LIFETIME)


def grandchild(pidfile):
    fork(sleeper, pidfile)
    sleeper(pidfile)


def in_session(pidfile):
    os.setsid()
    sleeper(pidfile)


def daemon(pidfile):
    os.setsid()
    fork(sleeper, pidfile)  # the middle process exits: the daemon is re-parented


def envless(pidfile, role):
    """Own session, double fork, then this script again with an empty environment."""
    os.setsid()
    if os.fork() == 0:
        os.execve(sys.executable, [sys.executable, __file__, pidfile, "role", role], {})


def reforker(pidfile):
    note(pidfile)
    end = time.monotonic() + LIFETIME  # the clock is the machine's: every generation keeps this deadline
    while time.monotonic() < end:
        if os.fork():
            os._exit(0)  # the parent exits at once; the child carries on, under a new pid
        time.sleep(0.001)  # continuous, yet no hog of a shared machine's cores and pids


def breeder(pidfile):
    note(pidfile)
    end = time.monotonic() + LIFETIME
    for _ in range(BROOD):
        fork(time.sleep, max(0.0, end - time.monotonic()))
        time.sleep(0.005)
    time.sleep(max(0.0, end - time.monotonic()))


def fd_closer(pidfile):
    note(pidfile)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    time.sleep(LIFETIME)


ROLES = {"env-clear": sleeper, "reforker": reforker, "breeder": breeder, "fd-closer": fd_closer}
STARTS = {"child": lambda p: fork(sleeper, p), "grandchild": lambda p: fork(grandchild, p),
          "setsid": lambda p: fork(in_session, p), "double-fork": lambda p: fork(daemon, p)}
DEFAULT = PATTERNS[:5]
EXPECTED = {"grandchild": 2}  # pids each pattern notes (1 unless said)


def expected(patterns) -> int:
    """How many pids PIDFILE holds once every pattern is up (this process's included)."""
    return 1 + sum(EXPECTED.get(p, 1) for p in patterns)


def main(argv):
    pidfile, mode = argv[1], argv[2]
    if mode == "role":  # a daemon after its env-clearing exec
        ROLES[argv[3]](pidfile)
        return
    patterns = argv[3:] or DEFAULT
    note(pidfile)
    for p in patterns:
        STARTS[p](pidfile) if p in STARTS else fork(envless, pidfile, p)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        with open(pidfile) as f:
            if len(f.read().split()) >= expected(patterns):
                break
        time.sleep(0.01)
    print("score: 1", flush=True)
    if mode == "hang":
        time.sleep(LIFETIME)


if __name__ == "__main__":
    main(sys.argv)
