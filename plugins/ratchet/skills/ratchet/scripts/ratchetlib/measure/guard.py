"""The guard: a regression gate run on a candidate the metric would keep.

`--guard-command CMD` (typically the test suite) runs once, in the
repository with the candidate in place, only after the trials said "keep":
most candidates are reverted on the metric, so the gate costs nothing on the
common path. A non-zero exit, a timeout (`--guard-timeout-seconds`) or a
`--guard-metric` limit not met (same syntax as `--constraint`, read from the
guard's output; a missing metric fails) turns the keep into `guard-failed`:
reverted, with the patch kept in `.ratchet/patches/` so the agent can
re-apply it with a fix. stdout and stderr go, interleaved, to
`reports/iter-NNNN-guard.txt` (`ratchet.py tail --guard`). The guard's
process tree is killed like a trial's. It also runs once at `baseline`: a
guard that fails on the unmodified code would reject every change.
"""

import os

from ..io import clip, runner, store_files
from ..core import constraints
from . import heartbeat, metrics
from ..core.text import num


def report_path(store, iteration: int) -> str:
    return store.file("reports", f"iter-{iteration:04d}-guard.txt")


def run(cfg, repo: str, store, iteration: int) -> dict:
    """Run the guard once; {"status": ok|failed|timeout, "detail", ...}."""
    out = report_path(store, iteration)
    err = out[: -len(".txt")] + ".err"
    # `exec 2>&1` first: one file, stdout and stderr in the order they were written.
    beat = heartbeat.for_trial(f"guard of iter {iteration}", cfg.guard_timeout_seconds)
    tr = runner.run("exec 2>&1\n" + cfg.guard_command, repo, out, err, cfg.guard_timeout_seconds, progress=beat,
                    record_dir=store.path("procs"))  # names its keeper to the next command should this one be killed
    if os.path.exists(err) and os.path.getsize(err) == 0:
        store_files.remove_path(err)
    result = {"exit_code": tr.exit_code, "seconds": round(tr.seconds, 4),
              "report": os.path.relpath(out, store.root), "metrics": {}}
    passed = tr.exit_code == 0 and not tr.timed_out
    found = {lim["name"]: metrics.extract(out, lim["name"]).value for lim in cfg.guard_metrics} if passed else {}
    clip.trim(out)  # after the metrics were read: the head and tail of a huge output stay
    if tr.timed_out:
        return {**result, "status": "timeout", "detail": f"guard timed out after {cfg.guard_timeout_seconds:g}s"}
    if tr.exit_code != 0:
        return {**result, "status": "failed", "detail": f"guard exited with code {tr.exit_code}"}
    for limit in cfg.guard_metrics:
        value = found[limit["name"]]
        result["metrics"][limit["name"]] = value
        if not constraints.holds(limit, value):
            got = "missing" if value is None else num(value)
            return {**result, "status": "failed", "detail": f"guard metric {constraints.show(limit)} not met ({got})"}
    return {**result, "status": "ok", "detail": "guard passed"}
