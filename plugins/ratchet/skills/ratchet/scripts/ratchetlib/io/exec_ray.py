"""Trials as Ray jobs (`init --executor ray`).

One trial is one `ray job submit --no-wait --submission-id <job name>
--working-dir .` from the repository (the CLI packages the working tree,
so the candidate's files are what the job runs; `.ratchet/` and `.git/` are
excluded).
The plugin stays stdlib-only: it calls the `ray` CLI to submit and reads
the job back from the Jobs REST API of the same address (urllib): status
(SUCCEEDED is the only success; FAILED and STOPPED are a crash with the
status named), `driver_exit_code`, and the logs, which become the trial's
stdout (Ray merges the entrypoint's stdout and stderr). On ratchet's trial
timeout, Ctrl-C or SIGTERM the job is stopped (POST .../stop) and ratchet
waits until Ray reports it ended.

The address is `--address` in --executor-options, else RAY_ADDRESS, else
http://127.0.0.1:8265; it must be the http(s) dashboard address.

A Ray job does not inherit the submitting shell's environment, so what
ratchet adds to a trial's environment (RATCHET_TRIAL_ID, --seed-env) goes
into the runtime env's `env_vars`. The entrypoint is `sh -c COMMAND`: the
CLI joins it with shlex.join (POSIX), so the command reaches the job's shell
exactly as a local trial's `sh -c` gets it.

Pairs: the entrypoint (the driver) of the second run of a pair is pinned to
the first run's node with `--entrypoint-resources '{"node:<ip>": 0.001}'`
(Ray's per-node resource). Only the entrypoint is pinned: tasks and actors
the job starts are placed by Ray's scheduler, which ratchet cannot pin.

Files the job writes stay in Ray's copy of the working directory, so the
metric must be printed (`--report-source stdout`, checked at init).
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

from ..core import faults
from ..core.errors import UsageError
from . import critical, executor, store_files

COMMANDS = ("ray",)
SUCCESS = "SUCCEEDED"
ACTIVE = {"PENDING", "RUNNING"}
POLL_FIRST = 0.3
CANCEL_WAIT = 60.0
# Ray 2.60 accepts a stop of a job still PENDING (its entrypoint's resources never came) and leaves it
# pending: once every job left has been PENDING this long after the stop, it is reported left at once
PENDING_GRACE = 10.0
CALL_TIMEOUT = 120.0
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
OWNED = ("--submission-id", "--job-id", "--working-dir", "--no-wait", "--runtime-env", "--entrypoint-resources")


def _value(opts: list, name: str) -> Optional[str]:
    """The value of `--name X` or `--name=X` among the options (the last one)."""
    found = None
    for i, o in enumerate(opts):
        if o == name and i + 1 < len(opts):
            found = opts[i + 1]
        elif o.startswith(name + "="):
            found = o.split("=", 1)[1]
    return found


def check_options(opts: list) -> None:
    for o in opts:
        name = o.split("=", 1)[0]
        if name in OWNED:
            raise UsageError(f"--executor-options: {name} is set by ratchet for every ray trial (submission id, "
                             f"working directory, node pinning){'; use --runtime-env-json' if name == '--runtime-env' else ''}")
    raw = _value(opts, "--runtime-env-json")
    if raw is not None:
        try:
            env = json.loads(raw)
        except ValueError as e:
            raise UsageError(f"--executor-options: --runtime-env-json is not JSON ({e})") from None
        if not isinstance(env, dict):
            raise UsageError("--executor-options: --runtime-env-json must be a JSON object")
    address = _value(opts, "--address")
    if address is not None and not address.startswith(("http://", "https://")):
        raise UsageError(f"--executor-options: --address {address!r} must be the dashboard's http(s) address "
                         f"(e.g. http://127.0.0.1:8265): ratchet reads the job back over the Jobs REST API")


def address(opts: list) -> str:
    return (_value(opts, "--address") or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS).rstrip("/")


def _api(addr: str, path: str, method: str = "GET") -> Optional[object]:
    """JSON from the Jobs REST API; None when the job is unknown or Ray does not answer."""
    req = urllib.request.Request(addr + path, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def job_status(addr: str, job: str) -> Optional[dict]:
    got = _api(addr, f"/api/jobs/{urllib.parse.quote(job)}")
    return got if isinstance(got, dict) and got.get("status") else None


def _runtime_env(user_json: Optional[str], added: dict) -> str:
    """The user's --runtime-env-json with ratchet's env_vars and `.ratchet/` excluded."""
    user = json.loads(user_json or "{}")
    merged = {**user, "env_vars": {**(user.get("env_vars") or {}), **added}}
    merged["excludes"] = list(user.get("excludes") or []) + [".ratchet/", ".git/"]
    return json.dumps(merged)


def _without(opts: list, name: str) -> list:
    """The options less `--name X` / `--name=X`."""
    out, skip = [], False
    for o in opts:
        if skip:
            skip = False
        elif o == name:
            skip = True
        elif not o.startswith(name + "="):
            out.append(o)
    return out


def is_submitter(argv: list) -> bool:
    """Whether a process's command line is `submit`'s `ray job submit` (the `ray` script,
    run by its Python; executor.cancel_run waits for it)."""
    words = [os.path.basename(w) for w in argv[:2]]
    return "ray" in words and argv[words.index("ray") + 1:words.index("ray") + 3] == ["job", "submit"]


def submit(opts: list, command: str, cwd: str, env: dict, added: dict, name: str, node: Optional[str]) -> tuple:
    """(job id, None) or (None, why ray refused)."""
    renv = _runtime_env(_value(opts, "--runtime-env-json"), added)
    argv = ["ray", "job", "submit", "--no-wait", f"--submission-id={name}", "--working-dir", ".",
            f"--runtime-env-json={renv}", *_without(_without(opts, "--runtime-env-json"), "--address"),
            f"--address={address(opts)}"]
    if node:
        argv.append("--entrypoint-resources=" + json.dumps({f"node:{node}": 0.001}))
    try:
        r = subprocess.run(argv + ["--", "sh", "-c", command], cwd=cwd, env={**env, "RAY_USAGE_STATS_ENABLED": "0"},
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                           timeout=CALL_TIMEOUT)
    except FileNotFoundError:
        return None, "ray: command not found"
    except subprocess.TimeoutExpired:
        return None, f"ray job submit did not return within {CALL_TIMEOUT:g}s"
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
        return None, f"ray job submit refused the job (exit {r.returncode}): {(lines[-1] if lines else '')[:300]}"
    return name, None


def where(opts: list) -> str:
    """What identifies the cluster of a job later (UNCLEAN, clean): its address."""
    return address(opts)


def _node(info: dict) -> Optional[str]:
    """The driver's node IP, from driver_agent_http_address (http://IP:PORT)."""
    host = urllib.parse.urlparse(info.get("driver_agent_http_address") or "").hostname
    return host or None


def listed(addr: str, job: str) -> bool:
    info = job_status(addr, job)
    return bool(info and info["status"] in ACTIVE)


def cancel(addr: str, jobs: list, wait: float = CANCEL_WAIT) -> list:
    """Stop the jobs, then wait until Ray reports each ended; the ones still
    pending or running (PENDING_GRACE: a job that never started is not waited
    for the whole `wait`)."""
    for j in jobs:
        _api(addr, f"/api/jobs/{urllib.parse.quote(j)}/stop", "POST")
    t0, left = time.monotonic(), list(jobs)

    def gone() -> bool:
        infos = [(j, job_status(addr, j)) for j in left]
        left[:] = [j for j, info in infos if info and info["status"] in ACTIVE]
        never_started = all(info["status"] == "PENDING" for _, info in infos if info and info["status"] in ACTIVE)
        return not left or (never_started and time.monotonic() - t0 >= PENDING_GRACE)
    executor.wait(gone, t0 + wait, None, t0, first=0.1, most=1.0)
    return left


def jobs_named(addr: str, prefix: str) -> list:
    """(id, name) of the cluster's pending or running jobs whose id starts with `prefix`."""
    got = _api(addr, "/api/jobs/")
    return [(j["submission_id"], j["submission_id"]) for j in (got if isinstance(got, list) else [])
            if isinstance(j, dict) and str(j.get("submission_id") or "").startswith(prefix)
            and j.get("status") in ACTIVE]


def _logs(addr: str, job: str) -> str:
    got = _api(addr, f"/api/jobs/{urllib.parse.quote(job)}/logs")
    return got.get("logs", "") if isinstance(got, dict) else ""


def run(opts: list, command: str, cwd: str, out: str, err: str, timeout: Optional[float], env: dict,
        progress, name: str, node: Optional[str], added: dict, avoid=(), placed=None) -> dict:
    """Submit, wait, read back; the same result dict as exec_slurm.run. `avoid` is
    not honoured: Ray cannot keep an entrypoint off a node (a lane only pins)."""
    addr = address(opts)
    t0 = time.monotonic()
    job, why = submit(opts, command, cwd, env, added, name, node)
    for path in (out, err):
        store_files.capture(path).close()
    if job is None:
        return {"job": None, "state": None, "exit_code": None, "node": None, "timed_out": False,
                "failure": why, "left": [], "seconds": time.monotonic() - t0}
    deadline = None if timeout is None else t0 + timeout
    seen = {"info": None, "queued": None}

    def ended() -> bool:
        info = seen["info"] = job_status(addr, job)
        if seen["queued"] is None and info is not None and info["status"] != "PENDING":
            seen["queued"] = time.monotonic() - t0
        if placed and info is not None and _node(info):
            placed(_node(info))
        return info is not None and info["status"] not in ACTIVE
    faults.point("trial")  # the job is submitted and ratchet may die now: the next command cancels it
    try:
        timed_out = not executor.wait(ended, deadline, progress, t0, first=POLL_FIRST)
    except BaseException:
        critical.blocked(lambda: cancel(addr, [job]))
        raise
    info, queued = seen["info"], seen["queued"]
    left = cancel(addr, [job]) if timed_out else []
    info = job_status(addr, job) or info or {}
    seconds = time.monotonic() - t0
    with store_files.capture(out) as f:
        f.write(_logs(addr, job).encode("utf-8", "replace"))
    state = info.get("status") or "UNKNOWN"
    code = info.get("driver_exit_code")
    failure = None
    if not timed_out and state != SUCCESS:
        failure = (f"ray job {job} ended {state} (exit {code if code is not None else '?'}"
                   + (f": {str(info.get('message'))[:200]}" if info.get("message") else "") + ")")
    return {"job": job, "state": state, "exit_code": code if isinstance(code, int) else (0 if state == SUCCESS else 1),
            "node": _node(info), "timed_out": timed_out, "failure": failure, "left": left, "seconds": seconds,
            "queued": None if queued is None else round(queued, 1)}

