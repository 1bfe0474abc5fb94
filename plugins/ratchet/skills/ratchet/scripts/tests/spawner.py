"""A trial that leaves processes behind in every way a process can escape.

`python spawner.py PIDFILE MODE`: starts a child, a grandchild (under a
middle process), a child in its own session (setsid), a double-forked daemon
in its own session, and a double-forked one that also cleared its
environment (so it carries no RATCHET_TRIAL_ID); each appends its pid to
PIDFILE. Once all 7 pids are written (this process's too) it prints
`score: 1` and exits (MODE `exit`) or sleeps (MODE `hang`). Used by
tests/test_hygiene.py and bench/hygiene.py.
"""

import os
import sys
import time

PIDFILE, MODE = sys.argv[1], sys.argv[2]
EXPECTED = 7


def note():
    with open(PIDFILE, "a") as f:
        f.write(f"{os.getpid()}\n")


def sleeper():
    note()
    time.sleep(300)
    os._exit(0)


def fork(body):
    if os.fork() == 0:
        try:
            body()
        finally:
            os._exit(0)


def grandchild():
    fork(sleeper)
    sleeper()


def in_session():
    os.setsid()
    sleeper()


def daemon():
    os.setsid()
    fork(sleeper)  # the middle process exits: the daemon is re-parented


def envless_daemon():
    os.setsid()
    if os.fork() == 0:
        os.execve("/bin/sh", ["sh", "-c", f"echo $$ >> '{PIDFILE}'; exec sleep 300"], {})


note()
for body in (sleeper, grandchild, in_session, daemon, envless_daemon):
    fork(body)
end = time.monotonic() + 20
while time.monotonic() < end:
    with open(PIDFILE) as f:
        if len(f.read().split()) >= EXPECTED:
            break
    time.sleep(0.01)
print("score: 1", flush=True)
if MODE == "hang":
    time.sleep(300)
