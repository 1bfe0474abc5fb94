"""A local stand-in for a cluster scheduler (Slurm, Ray, SkyPilot), for
testing `--cancel-command` without a cluster.

    standin_scheduler.py serve JOBDIR                  # the scheduler daemon
    standin_scheduler.py submit JOBDIR SECONDS SCORE   # like `sbatch --wait`
    standin_scheduler.py cancel JOBDIR                 # like `scancel --name`

The daemon is started by the test, outside the ratchet process that runs
the trials (a `ratchet.py` subprocess), so its workers share nothing with
the trial's process tree, like a job on another machine: ratchet's tree
kill (process group, descendants, orphans re-parented to it, the
environment marker) cannot reach them. `submit` names the job after
$RATCHET_TRIAL_ID (as `--job-name` would) and drops a request in JOBDIR;
the daemon starts the worker with that variable removed from its
environment and records it in JOBDIR/<id>.job; `submit` polls until the
worker writes JOBDIR/<id>.report and prints it (the metric). `cancel`
reads JOBDIR/<id>.job, kills the worker and leaves JOBDIR/<id>.cancelled
holding $RATCHET_TRIAL_STDOUT.
"""

import json
import os
import signal
import subprocess
import sys
import time


def serve(jobdir):
    workers = []
    while True:
        for name in sorted(os.listdir(jobdir)):
            if not name.endswith(".submit"):
                continue
            path = os.path.join(jobdir, name)
            with open(path) as f:
                req = json.load(f)
            os.unlink(path)
            job = name[: -len(".submit")]
            env = {k: v for k, v in os.environ.items() if k != "RATCHET_TRIAL_ID"}
            w = subprocess.Popen([sys.executable, __file__, "worker", os.path.join(jobdir, job + ".report"),
                                  req["seconds"], req["score"]], env=env, start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            workers.append(w)
            with open(os.path.join(jobdir, job + ".job.tmp"), "w") as f:
                json.dump({"pid": w.pid}, f)
            os.replace(os.path.join(jobdir, job + ".job.tmp"), os.path.join(jobdir, job + ".job"))
        for w in workers:
            w.poll()
        time.sleep(0.02)


def submit(jobdir, seconds, score):
    job = os.environ["RATCHET_TRIAL_ID"]
    report = os.path.join(jobdir, job + ".report")
    with open(os.path.join(jobdir, job + ".submit.tmp"), "w") as f:
        json.dump({"seconds": seconds, "score": score}, f)
    os.replace(os.path.join(jobdir, job + ".submit.tmp"), os.path.join(jobdir, job + ".submit"))
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
    path = os.path.join(jobdir, job + ".job")
    for _ in range(100):  # the daemon may not have started it yet
        if os.path.exists(path):
            break
        time.sleep(0.05)
    with open(path) as f:
        pid = json.load(f)["pid"]
    try:  # the worker's command line names its report: a pid reused since is left alone
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            mine = f"{job}.report".encode() in f.read()
    except OSError:
        mine = not os.path.isdir("/proc")
    try:
        if mine:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    with open(os.path.join(jobdir, job + ".cancelled"), "w") as f:
        f.write(os.environ.get("RATCHET_TRIAL_STDOUT", ""))


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    {"serve": serve, "submit": submit, "worker": worker, "cancel": cancel}[verb](*args)
