"""A local stand-in for a cluster scheduler (Slurm, Ray, SkyPilot), for
testing `--cancel-command` without a cluster.

    standin_scheduler.py submit JOBDIR SECONDS SCORE   # like `sbatch --wait`
    standin_scheduler.py cancel JOBDIR                 # like `scancel --name`

`submit` names the job after $RATCHET_TRIAL_ID (as `--job-name` would),
starts a worker in a new session with that variable removed from its
environment (a job on another machine shares nothing with the local
process tree, so ratchet's tree kill cannot reach it), records the worker
in JOBDIR/<id>.job, then polls until the worker writes JOBDIR/<id>.report
and prints the report (the metric). `cancel` reads JOBDIR/<id>.job, kills
the worker and leaves JOBDIR/<id>.cancelled holding $RATCHET_TRIAL_STDOUT.
"""

import json
import os
import signal
import subprocess
import sys
import time


def submit(jobdir, seconds, score):
    job = os.environ["RATCHET_TRIAL_ID"]
    report = os.path.join(jobdir, job + ".report")
    env = {k: v for k, v in os.environ.items() if k != "RATCHET_TRIAL_ID"}
    worker = subprocess.Popen([sys.executable, __file__, "worker", report, seconds, score], env=env,
                              start_new_session=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(jobdir, job + ".job"), "w") as f:
        json.dump({"pid": worker.pid}, f)
    while not os.path.exists(report):
        time.sleep(0.05)
    print(open(report).read(), end="")


def worker(report, seconds, score):
    time.sleep(float(seconds))
    with open(report + ".tmp", "w") as f:
        f.write(f"score: {score}\n")
    os.replace(report + ".tmp", report)


def cancel(jobdir):
    job = os.environ["RATCHET_TRIAL_ID"]
    with open(os.path.join(jobdir, job + ".job")) as f:
        pid = json.load(f)["pid"]
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    with open(os.path.join(jobdir, job + ".cancelled"), "w") as f:
        f.write(os.environ.get("RATCHET_TRIAL_STDOUT", ""))


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    {"submit": submit, "worker": worker, "cancel": cancel}[verb](*args)
