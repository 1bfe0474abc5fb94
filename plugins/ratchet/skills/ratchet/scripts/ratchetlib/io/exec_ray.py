"""Trials as Ray jobs (`init --executor ray`), submitted over Ray's Jobs REST API.

One trial is what `ray job submit --no-wait --submission-id <job name>
--working-dir . -- sh -c COMMAND` from the repository would do, done with
urllib from ratchet's own process (no `ray` CLI, no Python+Ray import per
trial): the working tree is packaged as Ray packages it (ray_package.py:
`.gitignore`/`.rayignore`, Ray's default excludes, the runtime env's
`excludes`, and `.ratchet/` and `.git/`), `GET /api/packages/gcs/<name>`
asks whether Ray already has that content, `PUT` sends it when not, and
`POST /api/jobs/` submits the job with `runtime_env.working_dir` the
package's gcs:// URI. The job is read back from the same API: status
(SUCCEEDED is the only success; FAILED and STOPPED are a crash with the
status named), `driver_exit_code`, and the logs, which become the trial's
stdout (Ray merges the entrypoint's stdout and stderr). On ratchet's trial
timeout, Ctrl-C or SIGTERM the job is stopped (POST .../stop) and ratchet
waits until Ray reports it ended.

--executor-options are the `ray job submit` options, translated into the
request (TRANSLATED: --runtime-env-json, --metadata-json,
--entrypoint-num-cpus/-gpus/-memory, --entrypoint-label-selector, --address);
any other is refused at init, as are the ones ratchet sets (OWNED) and the
runtime env fields whose local files the CLI would read (_LOCAL_FIELDS).

The address is `--address` in --executor-options, else RAY_ADDRESS, else
http://127.0.0.1:8265; it must be the http(s) dashboard address.

A Ray job does not inherit the submitting shell's environment, so what
ratchet adds to a trial's environment (RATCHET_TRIAL_ID, --seed-env) goes
into the runtime env's `env_vars`. The entrypoint is `sh -c COMMAND` joined
with shlex.join (POSIX), as the CLI joins it, so the command reaches the
job's shell exactly as a local trial's `sh -c` gets it.

Pairs: the entrypoint (the driver) of the second run of a pair is pinned to
the first run's node with `entrypoint_resources {"node:<ip>": 0.001}`
(Ray's per-node resource). Only the entrypoint is pinned: tasks and actors
the job starts are placed by Ray's scheduler, which ratchet cannot pin.

Files the job writes stay in Ray's copy of the working directory, so the
metric must be printed (`--report-source stdout`, checked at init).
"""

from __future__ import annotations

import json
import os
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request

from ..core import faults
from ..core.errors import UsageError
from . import critical, executor, ray_package, store_files

COMMANDS = ()  # nothing to find on PATH: the submit is HTTP from ratchet itself
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
# `ray job submit` option -> (the POST /api/jobs/ field, how its value is read); --address is the URL
TRANSLATED = {"--runtime-env-json": ("runtime_env", "object"), "--metadata-json": ("metadata", "strings"),
              "--entrypoint-num-cpus": ("entrypoint_num_cpus", float),
              "--entrypoint-num-gpus": ("entrypoint_num_gpus", float),
              "--entrypoint-memory": ("entrypoint_memory", int),
              "--entrypoint-label-selector": ("entrypoint_label_selector", "strings"), "--address": (None, str)}
# runtime env fields whose local files the CLI would read or upload itself (ratchet does not)
_LOCAL_FIELDS = {"working_dir": "ratchet sets it to the repository's package",
                 "py_modules": "local modules are not uploaded: give remote URIs only",
                 "pip": "a requirements file is read by the CLI: give the list of packages",
                 "uv": "a requirements file is read by the CLI: give the list of packages",
                 "conda": "a local YAML file is read by the CLI: give the environment as an object or a name"}


def _value(opts: list, name: str) -> str | None:
    """The value of `--name X` or `--name=X` among the options (the last one)."""
    found = None
    for i, o in enumerate(opts):
        if o == name and i + 1 < len(opts):
            found = opts[i + 1]
        elif o.startswith(name + "="):
            found = o.split("=", 1)[1]
    return found


def _read(name: str, kind, raw: str):
    if kind in (float, int, str):
        try:
            return kind(raw)
        except ValueError:
            raise UsageError(f"--executor-options: {name} {raw!r} is not {'an integer' if kind is int else 'a number'}"
                             ) from None
    try:
        got = json.loads(raw)
    except ValueError as e:
        raise UsageError(f"--executor-options: {name} is not JSON ({e})") from None
    if not isinstance(got, dict):
        raise UsageError(f"--executor-options: {name} must be a JSON object")
    if kind == "strings" and not all(isinstance(v, str) for v in got.values()):
        raise UsageError(f"--executor-options: {name} must map names to strings")
    return got


def _check_env(env: dict) -> None:
    for key, why in _LOCAL_FIELDS.items():
        value = env.get(key)
        local = (key == "working_dir" or (key == "py_modules" and any("://" not in str(m) for m in value or []))
                 or (key in ("pip", "uv") and isinstance(value, str))
                 or (key == "conda" and isinstance(value, str) and value.endswith((".yaml", ".yml"))))
        if key in env and local:
            raise UsageError(f"--executor-options: --runtime-env-json {key!r} is not supported ({why})")
    if not isinstance(env.get("excludes", []), list) or not all(isinstance(x, str) for x in env.get("excludes", [])):
        raise UsageError("--executor-options: --runtime-env-json 'excludes' must be a list of patterns")
    ev = env.get("env_vars", {})
    if not isinstance(ev, dict) or not all(isinstance(v, str) for v in ev.values()):
        raise UsageError("--executor-options: --runtime-env-json 'env_vars' must map names to strings")


def translate(opts: list) -> dict:
    """The --executor-options as POST /api/jobs/ fields (TRANSLATED; `address` the URL); UsageError
    for an option ratchet sets (OWNED) or does not translate."""
    out, i = {}, 0
    while i < len(opts):
        name, eq, raw = opts[i].partition("=")
        if name in OWNED:
            raise UsageError(f"--executor-options: {name} is set by ratchet for every ray trial (submission id, "
                             f"working directory, node pinning){'; use --runtime-env-json' if name == '--runtime-env' else ''}")
        if name not in TRANSLATED:
            raise UsageError(f"--executor-options: {opts[i]!r} is not an option ratchet translates for Ray's Jobs API "
                             f"(it takes {', '.join(TRANSLATED)})")
        if not eq:
            if i + 1 >= len(opts):
                raise UsageError(f"--executor-options: {name} needs a value")
            i, raw = i + 1, opts[i + 1]
        field, kind = TRANSLATED[name]
        out[field or "address"] = _read(name, kind, raw)
        i += 1
    _check_env(out.get("runtime_env", {}))
    addr = out.get("address")
    if addr is not None and not addr.startswith(("http://", "https://")):
        raise UsageError(f"--executor-options: --address {addr!r} must be the dashboard's http(s) address "
                         f"(e.g. http://127.0.0.1:8265): ratchet submits and reads the job over the Jobs REST API")
    return out


def check_options(opts: list) -> None:
    translate(opts)


def address(opts: list) -> str:
    return (_value(opts, "--address") or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS).rstrip("/")


def _request(addr: str, path: str, method: str = "GET", data: bytes | None = None, ctype: str = "",
             timeout: float = CALL_TIMEOUT) -> tuple:
    """(HTTP status, body text) of one call; (None, why) when Ray does not answer."""
    req = urllib.request.Request(addr + path, method=method, data=b"" if method != "GET" and data is None else data,
                                 headers={"Content-Type": ctype} if ctype else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        return None, str(getattr(e, "reason", None) or e)


def _api(addr: str, path: str, method: str = "GET") -> object | None:
    """JSON from the Jobs REST API; None when the job is unknown or Ray does not answer."""
    status, text = _request(addr, path, method, timeout=30)
    if status is None or not 200 <= status < 300:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def job_status(addr: str, job: str) -> dict | None:
    got = _api(addr, f"/api/jobs/{urllib.parse.quote(job)}")
    return got if isinstance(got, dict) and got.get("status") else None


def _runtime_env(user: dict, added: dict) -> dict:
    """The user's runtime env with ratchet's env_vars and `.ratchet/`, `.git/` excluded."""
    merged = {**user, "env_vars": {**(user.get("env_vars") or {}), **added}}
    merged["excludes"] = list(user.get("excludes") or []) + [".ratchet/", ".git/"]
    return merged


def is_submitter(argv: list) -> bool:
    """Always False: a ray trial is submitted by an HTTP request from ratchet's own
    process, so no submit command outlives a killed ratchet (executor.cancel_run has
    none to wait for; a request cut short by the kill either created the job, which
    the listing finds, or did not)."""
    return False


def _why(status: int | None, text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (f"HTTP {status}: " if status else "") + (lines[-1] if lines else "no answer")[:300]


def upload(addr: str, root: str, excludes: list) -> tuple:
    """(gcs:// URI, None) of the working directory's package, sent unless Ray has it; (None, why)."""
    try:
        pkg = ray_package.package(root, excludes)
    except ray_package.PackageError as e:
        return None, f"cannot package the working directory: {e}"
    path = f"/api/packages/gcs/{pkg.name}"
    status, text = _request(addr, path)
    if status == 404:
        try:
            data = ray_package.zip_bytes(pkg)
        except ray_package.PackageError as e:
            return None, f"cannot package the working directory: {e}"
        status, text = _request(addr, path, "PUT", data, "application/octet-stream")
    if status != 200:
        return None, f"ray refused the working directory's package {pkg.name} ({_why(status, text)})"
    return "gcs://" + pkg.name, None


def submit(opts: list, command: str, cwd: str, env: dict, added: dict, name: str, node: str | None) -> tuple:
    """(job id, None) or (None, why ray refused): the package, then POST /api/jobs/, as
    `ray job submit --no-wait --working-dir . -- sh -c COMMAND` would. `env` is unused:
    a Ray job gets only its runtime env (`added`)."""
    fields = translate(opts)
    addr, _ = address(opts), fields.pop("address", None)
    renv = _runtime_env(fields.pop("runtime_env", {}), added)
    renv["working_dir"], why = upload(addr, cwd, renv["excludes"])
    if why:
        return None, why
    body = {"entrypoint": shlex.join(["sh", "-c", command]), "submission_id": name, "runtime_env": renv,
            "metadata": fields.pop("metadata", {}), **fields}
    if node:
        body["entrypoint_resources"] = {f"node:{node}": 0.001}
    status, text = _request(addr, "/api/jobs/", "POST", json.dumps(body).encode(), "application/json")
    if status != 200:
        return None, f"ray refused the job ({_why(status, text)})"
    return name, None


def where(opts: list) -> str:
    """What identifies the cluster of a job later (UNCLEAN, clean): its address."""
    return address(opts)


def _node(info: dict) -> str | None:
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


def run(opts: list, command: str, cwd: str, out: str, err: str, timeout: float | None, env: dict,
        progress, name: str, node: str | None, added: dict, avoid=(), placed=None) -> dict:
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

