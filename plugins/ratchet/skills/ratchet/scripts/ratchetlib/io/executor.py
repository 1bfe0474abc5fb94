"""Where a trial runs: `init --executor local|slurm|ray` (the seam).

`local` (the default, and every run configured before executors existed)
is runner.run: the command in its own session on this machine. `slurm`
(exec_slurm.py) and `ray` (exec_ray.py) submit the same command as one
remote job per trial and wait for it; the run command stays the user's own,
the executor only decides where it runs. `--executor-options` is split like
a shell line and passed to the engine's submit (sbatch options; the
`ray job submit` options exec_ray translates into its Jobs API request),
validated at init. An engine's COMMANDS are what must be on PATH (Slurm's
client; none for Ray, whose submit is HTTP from ratchet itself).

Every job is named `job_name(run id, iteration, trial)`: `ratchet-<run id>-`,
then the iteration, the trial and a random part (a re-measured iteration
never reuses a name; Ray needs unique submission ids). Because the run id
leads the name, `cancel_run` finds and cancels every job of the run (after
waiting out a killed command's submission still in flight):
`stop`, and the command that takes over the lock of a SIGKILLed ratchet,
call it; a job it could not cancel is written to .ratchet/UNCLEAN.

A job's RATCHET_TRIAL_ID is its name, not a local marker: its processes
belong to the scheduler (on a single-node cluster they run on this machine,
and the sweep for a killed command's marker must not kill them; the
scheduler's cancel does).

Lanes (`loop --parallel N` on a cluster measures N candidates at once, one
thread each): the trials a thread runs inside `lane(key)` are one
candidate's. Every job of a lane after its first is pinned to the node the
first ran on (one candidate, one node type), and a lane's first job avoids
the nodes the other lanes hold, from the moment their first job is seen
running there (`placed`). Avoiding is Slurm's `--exclude`; when no other
node can take it, sbatch refuses and the job is submitted again without,
sharing a node rather than never running; Ray has no exclusion, so there
a lane only pins. Two first jobs submitted at the same moment can still
land on one node: `--exclusive` in --executor-options rules that out.
`halt()` (Ctrl-C, SIGTERM) stops every lane from submitting again.

Pairs: the second run of a pair (trial 2p, after 2p-1; verify's 102 after
101 likewise) is pinned to the node the first run ran on, so a pair never
compares two node types (`_PINNED`, kept in memory: a pair is always run by
one command). Each trial records its `job` (executor, id, name, state, node).

`run` returns a runner.TrialRun (a `RemoteRun`, which adds `job` and
`failure`: a final state other than success, named), so the engine treats
a remote trial exactly like a local one.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import shlex
import threading
import time

from . import procs, runner
from ..core.errors import UsageError

KINDS = ("local", "slurm", "ray")


class _Engines(dict):
    """kind -> its module (exec_slurm, exec_ray), imported when first used."""

    def __missing__(self, kind):
        if kind not in ("slurm", "ray"):
            raise KeyError(kind)
        self[kind] = importlib.import_module(f"{__package__}.exec_{kind}")
        return self[kind]

    def __contains__(self, kind):
        return kind in ("slurm", "ray")

    def get(self, kind, default=None):
        return self[kind] if kind in self else default


ENGINES = _Engines()
_PINNED = {}  # (run id, iteration, pair) -> the node the pair's first run ran on
_LANES = {}   # lane key -> the node its first job ran on (None until it has run)
_LOCAL = threading.local()
_HALT = threading.Event()


class Halted(Exception):
    """A lane's thread was about to submit a job after `halt()`."""


@contextlib.contextmanager
def lane(key):
    """Run this thread's trials as one candidate's lane (module docstring)."""
    _LANES[key], _LOCAL.lane = None, key
    try:
        yield
    finally:
        _LANES.pop(key, None)
        _LOCAL.lane = None


def _hold(key, node: str) -> None:
    """Lane `key` holds `node` (its first job was seen there); kept once set."""
    if not _LANES.get(key):
        _LANES[key] = node


def halt(on: bool = True) -> None:
    """Stop (on) or allow again (off) every lane's next submission."""
    (_HALT.set if on else _HALT.clear)()


def _lane_node(node: str | None) -> tuple:
    """(the node to pin to, the nodes to avoid) for this thread's next job; in
    a lane its own node replaces a pair's pin (trial numbers of two lanes can
    form one pair)."""
    key = getattr(_LOCAL, "lane", None)
    if key is None:
        return node, []
    if _HALT.is_set():
        raise Halted("the round was interrupted: no new job")
    node = _LANES.get(key)
    return node, [] if node else sorted({n for k, n in list(_LANES.items()) if k != key and n})


class RemoteRun(runner.TrialRun):
    job: dict | None = None       # {executor, id, name, state, node}
    failure: str | None = None    # why a job that ended is a crash (its final state), None on success


def options(kind: str, text: str) -> list:
    """The --executor-options words; UsageError for bad quoting or an option ratchet sets."""
    try:
        words = shlex.split(text or "")
    except ValueError as e:
        raise UsageError(f"--executor-options {text!r} cannot be split like a shell line ({e})") from None
    if words and kind == "local":
        raise UsageError("--executor-options needs --executor slurm or ray (a local trial has no options)")
    if kind in ENGINES:
        ENGINES[kind].check_options(words)
    return words


def validate(kind: str | None, text: str | None) -> tuple:
    """(kind, options text) as stored in config.json; UsageError otherwise."""
    kind = (kind or "local").strip()
    if kind not in KINDS:
        raise UsageError(f"--executor {kind!r} is not one of {', '.join(KINDS)}")
    options(kind, text or "")
    missing = missing_commands(kind)
    if missing:
        raise UsageError(f"--executor {kind}: {', '.join(missing)} not found on PATH; {FIXES[kind]}")
    return kind, (text or "").strip()


def missing_commands(kind: str) -> list:
    """The engine's client commands not on PATH."""
    import shutil  # only for a remote executor's check (issue 18: shutil loads its compression modules)
    return [c for c in getattr(ENGINES.get(kind), "COMMANDS", ()) if shutil.which(c) is None]


def prefix(run_id: str) -> str:
    return f"ratchet-{run_id}-"


def job_name(run_id: str, iteration: int, k: int) -> str:
    return f"{prefix(run_id)}i{iteration}-t{k}-{os.urandom(3).hex()}"


def run(cfg, command: str, cwd: str, out: str, err: str, timeout: float | None, env: dict | None,
        progress, *, cancel_command=None, cancel_log=None, trial: tuple = (0, 0), record_dir=None):
    """Run one trial where the config says; a runner.TrialRun either way."""
    kind = getattr(cfg, "executor", "local") or "local"
    if kind == "local":
        return runner.run(command, cwd, out, err, timeout, env, progress,
                          cancel_command=cancel_command, cancel_log=cancel_log, record_dir=record_dir)
    missing = missing_commands(kind)
    if missing:
        raise UsageError(f"--executor {kind}: {', '.join(missing)} not found on PATH (they were at init); "
                         f"{FIXES[kind]}")
    iteration, k = trial
    name = job_name(cfg.run_id, iteration, k)
    # The job's RATCHET_TRIAL_ID is its name, not a local marker: its processes belong to the
    # scheduler (on a single-node cluster they run here, and the local sweep must not kill them).
    added = {**(env or {}), procs.MARKER: name}
    pair = (cfg.run_id, iteration, (k + 1) // 2)
    node = _PINNED.get(pair) if k % 2 == 0 and getattr(cfg, "decision", "") == "paired" else None
    node, avoid = _lane_node(node)
    eng, opts = ENGINES[kind], options(kind, cfg.executor_options)
    started = time.time()
    key = getattr(_LOCAL, "lane", None)
    placed = None if key is None else functools.partial(_hold, key)
    got = eng.run(opts, command, cwd, out, err or out, timeout, {**os.environ, **added}, progress, name, node, added,
                  avoid=avoid, placed=placed)
    if k % 2 == 1 and got.get("node"):
        _PINNED[pair] = got["node"]
    if placed and got.get("node"):
        placed(got["node"])
    job = {"executor": kind, "id": got["job"], "name": name, "state": got["state"], "node": got.get("node"),
           "queued": got.get("queued")}
    if node:
        job["pinned"] = node
    if got.get("avoided"):
        job["avoided"] = got["avoided"]
    survivors = tuple(_entry(kind, eng.where(opts), j, name) for j in got["left"])
    return RemoteRun(None if got["timed_out"] else got["exit_code"], got["seconds"], got["timed_out"], started,
                     survivors, name, None, job=job, failure=got["failure"])


POLL_FIRST, POLL_MAX = 0.2, 5.0


def wait(check, deadline: float | None, progress, t0: float, first: float = POLL_FIRST,
         most: float = POLL_MAX) -> bool:
    """Poll `check()` (True once the job has ended) until it is True or the
    `deadline` (time.monotonic(); None: none) passes: True when it ended,
    False on the deadline. The interval starts at `first` and grows by a
    quarter each poll up to `most` (a long job costs the scheduler one query
    every few seconds, a short one is seen ending within a fraction of a
    second); `progress` (the heartbeat, or None) is ticked with the time
    since `t0` and told `done()` however the wait ends. The one poll loop of
    every remote executor."""
    delay = first
    next_tick = None if progress is None else t0 + progress.interval
    try:
        while not check():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            if next_tick is not None and now >= next_tick:
                progress.tick(now - t0)
                next_tick = now + progress.interval
            wake = now + delay if deadline is None else min(now + delay, deadline)
            time.sleep(max(0.0, wake - now))
            delay = min(delay * 1.25, most)
        return True
    finally:
        if progress is not None:
            progress.done()


def _entry(kind: str, where: str, job: str, name: str) -> dict:
    """A job as an UNCLEAN `processes` entry (FORMATS.md): no pid, the job and its cluster."""
    return {"pid": None, "start": None, "job": f"{kind}:{job}", "where": where, "cmd": f"{kind} job {job} ({name})"}


def remote(cfg) -> bool:
    """Whether the run's trials are jobs on a cluster (not processes here)."""
    return (getattr(cfg, "executor", "local") or "local") != "local"


SUBMIT_WAIT = 30.0


def _await_submitters(eng, run_id: str) -> None:
    """Wait (up to SUBMIT_WAIT, then kill) for this machine's submit commands
    of the run's jobs still in flight. A SIGKILLed ratchet leaves its child
    sbatch running, and the job it creates after the listing below would run
    on with nobody to cancel it. They carry the run's marker, as the job's own
    processes do on a single-node cluster (the scheduler's to end), so the
    engine tells them apart by command line. An engine that submits from
    ratchet's own process (Ray, over HTTP) has none: its is_submitter is False."""
    def pending() -> list:
        return [p for p in procs.find_marked(prefix(run_id), prefix=True) if eng.is_submitter(procs.argv_of(p))]
    end = time.monotonic() + SUBMIT_WAIT
    while pending() and time.monotonic() < end:
        time.sleep(0.05)
    for pid in pending():
        procs.kill_pid(pid)


def cancel_run(cfg) -> tuple:
    """Cancel every job of the run still queued or running: ([cancelled], [still listed])
    as UNCLEAN entries; ([], []) for a local run. In-flight submissions of the run
    are waited for first (`_await_submitters`)."""
    kind = getattr(cfg, "executor", "local") or "local"
    if kind == "local" or missing_commands(kind):
        return [], []
    eng = ENGINES[kind]
    _await_submitters(eng, cfg.run_id)
    where = eng.where(options(kind, cfg.executor_options))
    found = eng.jobs_named(where, prefix(cfg.run_id))
    if not found:
        return [], []
    left = set(eng.cancel(where, [j for j, _ in found]))
    return [_entry(kind, where, j, n) for j, n in found if j not in left], \
           [_entry(kind, where, j, n) for j, n in found if j in left]


def _job_of(entry: dict) -> tuple:
    kind, _, job = str(entry.get("job") or "").partition(":")
    return (kind, job) if kind in ENGINES and job and not missing_commands(kind) else (None, None)


def still_listed(entries: list) -> list:
    """The UNCLEAN entries that are remote jobs still queued or running."""
    out = []
    for e in entries:
        kind, job = _job_of(e)
        if kind and ENGINES[kind].listed(str(e.get("where") or ""), job):
            out.append(e)
    return out


def cancel_entries(entries: list) -> None:
    """Cancel the remote jobs among UNCLEAN entries (ratchet.py clean)."""
    for e in entries:
        kind, job = _job_of(e)
        if kind:
            ENGINES[kind].cancel(str(e.get("where") or ""), [job], wait=10.0)


# --- doctor ---------------------------------------------------------------------

FIXES = {"slurm": "install the Slurm client (Debian/Ubuntu: apt-get install slurm-client) or run ratchet on a "
                  "login node, where sbatch, squeue, scontrol and scancel are on PATH"}  # ray: no command needed
PROBE_SECONDS = 60.0
PROBE_TOKEN = "ratchet-executor-probe-ok"


def doctor_checks(cfg, folder: str) -> list:
    """(status, message, fix) for the executor: its commands on PATH, then a
    one-second test job submitted and read back (output files in `folder`,
    which the cluster's nodes must see, like the repository)."""
    kind = getattr(cfg, "executor", "local") or "local"
    if kind == "local":
        return []
    missing = missing_commands(kind)
    if missing:
        return [("fail", f"--executor {kind}: {', '.join(missing)} not found on PATH", FIXES[kind])]
    eng, opts = ENGINES[kind], options(kind, cfg.executor_options)
    out, err = os.path.join(folder, "probe.out"), os.path.join(folder, "probe.err")
    name = f"ratchet-probe-{os.urandom(3).hex()}"
    added = {procs.MARKER: name}
    got = eng.run(opts, f"sleep 1; echo {PROBE_TOKEN}", folder, out, err, PROBE_SECONDS,
                  {**os.environ, **added}, None, name, None, added)
    try:
        with open(out, errors="replace") as f:
            printed = PROBE_TOKEN in f.read()
    except OSError:
        printed = False
    where = f"--executor {kind}" + (f" {cfg.executor_options}" if cfg.executor_options else "")
    if got["job"] is None:
        return [("fail", f"{where}: the test job was not accepted: {got['failure']}",
                 "correct --executor-options (or the cluster's address / SLURM_CONF)")]
    if got["timed_out"]:
        status = "fail" if got["left"] else "warn"
        return [(status, f"{where}: a 1 s test job ({got['job']}) did not finish within {PROBE_SECONDS:g}s "
                         f"(state {got['state']}); trials will wait as long",
                 "check the queue (squeue / ray status) and the partition or resources asked for")]
    if got["failure"] or not printed:
        return [("fail", f"{where}: the test job {got['job']} " + (got["failure"] or "printed nothing back"),
                 "the job's output must reach this machine: run from a folder the nodes share")]
    return [("ok", f"{where}: a 1 s test job ({got['job']}) ran on {got.get('node') or '?'} and reported back "
                   f"in {got['seconds']:.1f}s", None)]
