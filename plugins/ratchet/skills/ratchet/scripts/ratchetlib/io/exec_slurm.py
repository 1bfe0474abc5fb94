"""Trials as Slurm batch jobs (`init --executor slurm`).

One trial is one job: `sbatch --parsable --no-requeue` of the user's command
(`--wrap`, so it runs under /bin/sh like a local trial), named with the run
id and the trial (`executor.job_name`), in the repository (`--chdir`), with
the submitting environment (`--export=ALL`: RATCHET_TRIAL_ID, --seed-env...),
its stdout and stderr written by Slurm straight into the trial's report
files. ratchet then polls `scontrol show job` (executor.wait, backing off
to executor.POLL_MAX seconds) until the job reaches a final state, and
reads that state back: `sacct` when the cluster keeps accounting, `scontrol` when it does not (a
single-node cluster), sacct again if slurmctld already forgot the job.
COMPLETED is the only success: FAILED, CANCELLED, TIMEOUT, PREEMPTED,
NODE_FAIL (and every other final state) is a crash with the state named,
even when the command printed a metric first. `--no-requeue` because a
pre-empted or node-failed job that Slurm re-ran would mix two runs into one
measurement.

On ratchet's trial timeout, Ctrl-C or SIGTERM the job is `scancel`ed and
ratchet waits until `squeue` no longer lists it (at most CANCEL_WAIT
seconds); a job still listed then is returned as a survivor (UNCLEAN).
`cancel_prefix` cancels every job of the user whose name begins with the
run's prefix: `stop` and the command after a SIGKILLed one use it.

Only the Slurm client commands are called (sbatch, scontrol, squeue,
scancel, sacct); nothing here needs root or a Slurm library.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import time

from ..core import faults
from ..core.errors import UsageError
from . import critical, executor, store_files

COMMANDS = ("sbatch", "squeue", "scontrol", "scancel")
SUCCESS = "COMPLETED"
ACTIVE = {"UNREACHABLE", "PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
CANCEL_WAIT = 60.0
RESIGNAL = 5.0  # seconds between scancels of a job still listed
CALL_TIMEOUT = 60.0
# Options ratchet sets itself: a user's value would break capture, naming or the wait.
OWNED = ("--job-name", "-J", "--output", "-o", "--error", "-e", "--wait", "-W", "--parsable", "--wrap",
         "--chdir", "-D", "--requeue", "--array", "-a")


def check_options(opts: list) -> None:
    """UsageError for an option ratchet owns (see OWNED)."""
    for o in opts:
        name = o.split("=", 1)[0]
        if name in OWNED or (len(name) > 2 and name[:2] in OWNED and not name.startswith("--")):
            raise UsageError(f"--executor-options: {name} is set by ratchet for every slurm trial (job name, "
                             f"output files, the wait); leave it out")


def _call(argv: list, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=CALL_TIMEOUT)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]} did not answer within {CALL_TIMEOUT:g}s")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def is_submitter(argv: list) -> bool:
    """Whether a process's command line is `submit`'s sbatch (executor.cancel_run waits for it)."""
    return bool(argv) and os.path.basename(argv[0]) == "sbatch"


def submit(opts: list, command: str, cwd: str, out: str, err: str, env: dict, name: str,
           node: str | None = None, avoid=()) -> tuple:
    """(job id, None) or (None, why sbatch refused). `avoid`: nodes to --exclude."""
    argv = ["sbatch", "--parsable", "--no-requeue", f"--job-name={name}", f"--chdir={cwd}", "--export=ALL",
            f"--output={os.path.abspath(out)}", f"--error={os.path.abspath(err)}", *opts]
    if node:
        argv.append(f"--nodelist={node}")
    if avoid:
        argv.append("--exclude=" + ",".join(avoid))
    r = _call(argv + ["--wrap", command], env)
    job = r.stdout.strip().split(";")[0].strip()
    if r.returncode != 0 or not job.isdigit():
        return None, f"sbatch refused the job (exit {r.returncode}): {_last_line(r.stderr or r.stdout)}"
    return job, None


UNREACHABLE = {"JobState": "UNREACHABLE"}  # scontrol could not ask slurmctld: the job's state is unknown, not final


def show_job(job: str) -> dict | None:
    """`scontrol show job -o` as a dict; None once slurmctld no longer knows the
    job; UNREACHABLE when the controller did not answer (a restart, a timeout)."""
    r = _call(["scontrol", "show", "job", "-o", job])
    if r.returncode != 0 or "JobState=" not in r.stdout:
        return None if "invalid job id" in (r.stderr or "").lower() else UNREACHABLE
    fields = {}
    for word in r.stdout.split():
        if "=" in word:
            k, _, v = word.partition("=")
            fields.setdefault(k, v)
    return fields


def accounting() -> bool:
    """Whether the cluster keeps accounting (sacct can answer)."""
    r = _call(["scontrol", "show", "config"])
    for line in r.stdout.splitlines():
        if line.strip().startswith("AccountingStorageType"):
            return "accounting_storage/none" not in line
    return False


def sacct(job: str) -> dict | None:
    """The job's final state from accounting: {state, exit, node}; None when unknown."""
    r = _call(["sacct", "--noheader", "--parsable2", "--allocations", "-j", job,
               "--format=State,ExitCode,NodeList"])
    rows = [ln.split("|") for ln in r.stdout.splitlines() if ln.count("|") == 2]
    if r.returncode != 0 or not rows:
        return None
    state, code, node = rows[0]
    return {"state": state.split()[0] if state.strip() else "UNKNOWN", "exit": code, "node": node}


def _state(fields: dict) -> str:
    return (fields.get("JobState") or "UNKNOWN").split()[0]


def final(job: str, fields: dict | None) -> dict:
    """{state, exit, node, source}: what the job ended as."""
    if fields is not None and accounting():
        end = time.monotonic() + 10.0  # slurmdbd records the end a moment after slurmctld
        while True:
            got = sacct(job)
            if got and got["state"] not in ACTIVE:
                return {**got, "node": fields.get("BatchHost") or got["node"], "source": "sacct"}
            if time.monotonic() > end:
                break
            time.sleep(0.5)
    if fields is not None:
        return {"state": _state(fields), "exit": fields.get("ExitCode", "?"),
                "node": fields.get("BatchHost") or fields.get("NodeList"), "source": "scontrol"}
    got = sacct(job)
    if got:
        return {**got, "source": "sacct"}
    return {"state": "UNKNOWN", "exit": "?", "node": None, "source": "none"}


def _queued(fields: dict | None) -> float | None:
    """Seconds the job waited in the queue (StartTime - SubmitTime), None when unknown."""
    import datetime
    try:
        start = datetime.datetime.fromisoformat(fields["StartTime"])
        return max(0.0, (start - datetime.datetime.fromisoformat(fields["SubmitTime"])).total_seconds())
    except (TypeError, KeyError, ValueError):
        return None


def exit_code(text: str) -> int | None:
    """Slurm's `EXIT:SIGNAL` as one exit code (128+signal when a signal ended it)."""
    code, _, sig = str(text).partition(":")
    try:
        c, s = int(code), int(sig or 0)
    except ValueError:
        return None
    return 128 + s if s and not c else c


def where(opts: list) -> str:
    """What identifies the cluster of a job later: the client's SLURM_CONF (or the default)."""
    return os.environ.get("SLURM_CONF", "")


def _env(where: str) -> dict | None:
    return {**os.environ, "SLURM_CONF": where} if where else None


def listed(where: str, job: str) -> bool:
    """Whether squeue still lists the job (pending, running, completing)."""
    r = _call(["squeue", "--noheader", "-j", job, "-o", "%T"], _env(where))
    if r.returncode != 0:
        return "invalid job id" not in (r.stderr or "").lower()  # an unreachable controller: assume it is
    return bool(r.stdout.strip())


def cancel(where: str, jobs: list, wait: float = CANCEL_WAIT) -> list:
    """scancel the jobs, then wait until squeue lists none of them; the ones still listed."""
    jobs = [j for j in jobs if j]
    if not jobs:
        return []
    _call(["scancel", *jobs], _env(where))
    t0 = time.monotonic()
    left, again = list(jobs), [t0 + RESIGNAL]

    def gone() -> bool:
        left[:] = [j for j in left if listed(where, j)]
        if left and time.monotonic() >= again[0]:  # still listed: signal again (a lost RPC, a slow node)
            _call(["scancel", *left], _env(where))
            again[0] += RESIGNAL
        return not left
    executor.wait(gone, t0 + wait, None, t0, first=0.1, most=1.0)
    return left


def jobs_named(where: str, prefix: str) -> list:
    """(id, name) of the user's listed jobs whose name starts with `prefix`."""
    r = _call(["squeue", "--noheader", "-u", getpass.getuser(), "-o", "%i|%j"], _env(where))
    out = []
    for line in r.stdout.splitlines():
        job, _, name = line.strip().partition("|")
        if job and name.startswith(prefix):
            out.append((job, name))
    return out


def run(opts: list, command: str, cwd: str, out: str, err: str, timeout: float | None, env: dict,
        progress, name: str, node: str | None, added: dict, avoid=(), placed=None) -> dict:
    """Submit, wait, read back. Returns {job, state, exit_code, node, timed_out,
    failure, left, avoided}. `env` is the job's whole environment (--export=ALL); `added` (what ratchet
    adds to it) matters only to Ray. `avoid`: nodes other candidates hold (executor lanes), excluded
    unless the user's options exclude nodes themselves or no other node could take the job (sbatch
    refuses it: it is submitted again without); `placed(node)` is called once the job is seen
    on a node. Ctrl-C/SIGTERM while waiting cancels the job, then re-raises."""
    for path in (out, err):  # a job cancelled before it started writes nothing: the files must exist
        store_files.capture(path).close()
    t0 = time.monotonic()
    avoid = [] if any(o.split("=", 1)[0] in ("--exclude", "-x") for o in opts) else list(avoid)
    job, why = submit(opts, command, cwd, out, err, env, name, node, avoid)
    if job is None and avoid:
        avoid = []
        job, why = submit(opts, command, cwd, out, err, env, name, node)
    if job is None:
        return {"job": None, "state": None, "exit_code": None, "node": None, "timed_out": False,
                "failure": why, "left": [], "seconds": time.monotonic() - t0}
    deadline = None if timeout is None else t0 + timeout
    seen = [None]

    def ended() -> bool:
        seen[0] = show_job(job)
        if placed and seen[0] and seen[0].get("BatchHost") not in (None, "", "(null)"):
            placed(seen[0]["BatchHost"])
        return seen[0] is None or _state(seen[0]) not in ACTIVE
    faults.point("trial")  # the job is submitted and ratchet may die now: the next command cancels it
    try:
        timed_out = not executor.wait(ended, deadline, progress, t0)
    except BaseException:
        critical.blocked(lambda: cancel("", [job]))
        raise
    fields = seen[0]
    left = cancel("", [job]) if timed_out else []
    seconds = time.monotonic() - t0
    if timed_out:
        fields = show_job(job)
    if fields is UNREACHABLE:
        fields = None  # sacct, or UNKNOWN: never a success
    end = final(job, fields)
    queued = _queued(fields)
    code = exit_code(end["exit"])
    failure = None
    if not timed_out and end["state"] != SUCCESS:
        failure = f"slurm job {job} ended {end['state']} (exit {end['exit']}, read from {end['source']})"
    return {"job": job, "state": end["state"], "exit_code": code, "node": end["node"], "timed_out": timed_out,
            "failure": failure, "left": left, "seconds": seconds,
            "queued": None if queued is None else round(queued, 1), "avoided": avoid}

