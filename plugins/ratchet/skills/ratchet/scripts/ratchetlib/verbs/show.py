"""What the verdict, `baseline` and `status` print: the inputs gathered from
the run, then rendered by present/views.py (which reads no file).

The verdict renders from the learning snapshot `learning.persist` made while
recording the iteration (`run.learned`), so printing it does not read
bandit.json and ideas.json again; only a verdict with no fresh record falls
back to reading them. `status` reads them once (`learning.facts`, shared
with its --json), and the holdout, a chained run's origin and loop.json.
"""


from __future__ import annotations

from ..core import headline
from ..io import lineage
from ..io.store_lock import _alive
from ..learn import learning
from ..present import views


def _verified(run) -> str | None:
    """The verified-gain line of the run's state (the verify of HEAD), or None."""
    st = run.state
    return headline.verified_line(headline.of_head(st), run.config.direction, st.log_scale)


def verdict(run, rec: dict, notes: list) -> str:
    """The answer to `iterate`, `decide`, `run-trial` and `resume`."""
    snap = run.learned
    if snap is None or snap.get("record_iter") != rec.get("iter"):
        snap = learning.facts(run, rec=rec)
    return views.verdict_text(run.config, run.state, rec, notes, learned=learning.verdict_lines(run.state, rec, snap),
                         verified=_verified(run), verify_error=run.verify_error,
                         holdout_ran=bool(run.holdout))


def baseline_verdict(run, rec: dict, notes: list) -> str:
    from ..keep import paired
    return views.baseline_text(run.config, run.state, rec, notes, paired.calibration_lines(run.config, rec, run.state))


def holdout_view(run) -> dict | None:
    """What `status` may show of the holdout: all of it once the run has
    stopped, only whether it ran while the agent is still optimizing."""
    if not run.config.holdout_command:
        return None
    from ..measure import holdout
    doc = holdout.load(run.store.root)
    if run.state.stop:
        return doc or {"summary": "not run yet; run `ratchet.py holdout`"}
    return {"measured": doc is not None, "summary": "hidden until the run stops"}


def loop_record(run) -> dict | None:
    """loop.json, marked killed when it says running but its process is gone."""
    loop = run.store.read_loop()
    if loop and loop.get("status") == "running" and not _alive(loop):
        loop = {**loop, "status": "killed", "reason": f"pid {loop.get('pid')} is gone; `ratchet.py loop` resumes"}
    return loop


def run_status(run, recent: list, snap: dict, trend: str = "", notes: list | None = None,
           busy: dict | None = None) -> str:
    """`notes`: what this status just recovered; `busy`: the lock of the live
    command working now (status then only looks)."""
    facts = {"trend": trend, "learned": learning.status_lines(run.state, snap),
             "verified": headline.gain_line(run.state, run.config.direction, run.config.decision == "paired"),
             "holdout": holdout_view(run), "origin": lineage.summary(run.store), "loop": loop_record(run),
             "notes": notes, "busy": busy}
    return views.status_text(run.config, run.state, recent, facts)
