"""`ratchet.py chain`: a follow-up run that starts at a stopped run's best.

A run ends on a stop condition (or `stop`); what it learned is its best
commit. `chain --rationale "why" [init flags that change]` starts a new run
from there: the parent's configuration with the given flags replaced, a new
experiment branch created at the parent's best commit, the parent archived
as `init` archives any earlier run, and a read-only `parent.json` saying
where the new run came from (see lineage.py). The follow-up measures its own
baseline, so a change of `--trials` or of the benchmark is measured afresh.
"""

from __future__ import annotations


from ..io import workspace
from ..keep import recover
from ..verbs import session
from ..io import lineage
from ..core.config import Config
from ..core.errors import UsageError
from ..io.store import now_iso
from ..io.store_lock import Lock


def _margin_flag(value: float, relative: bool) -> str:
    return f"{value!r}%" if relative else repr(value)


def _limit_flag(limit: dict) -> str:
    return f"{limit['name']}{limit['op']}{limit['value']!r}"


def _metric_flag(m: dict) -> str:
    margin = m.get("margin")
    return f"{m['name']}:{m['direction']}" + (f":{_margin_flag(margin['value'], margin['relative'])}" if margin else "")


def parent_flags(cfg: Config) -> dict:
    """The init flags that reproduce `cfg` (the instructions as their final text)."""
    margin = cfg.min_improvement
    auto = {".ratchet", cfg.source.path} | set(cfg.auto_protected)
    return {"run_command": cfg.run_command, "direction": cfg.direction, "metric_name": cfg.metric_name,
            "report_source": cfg.report_source, "metric_pattern": cfg.metric_pattern, "trials": cfg.trials,
            "iterations": cfg.iterations, "threshold": cfg.threshold, "patience": cfg.patience,
            "min_improvement": _margin_flag(margin.value, margin.relative),
            "max_consecutive_crashes": cfg.max_consecutive_crashes,
            "trial_timeout_seconds": cfg.trial_timeout_seconds, "cancel_command": cfg.cancel_command,
            "executor": cfg.executor, "executor_options": cfg.executor_options,
            "critic": cfg.critic,
            "instructions": cfg.instructions, "instructions_file": None, "editable": list(cfg.editable),
            "protect": [p for p in cfg.protect if p not in auto], "artifact_glob": list(cfg.artifact_globs),
            "artifacts_on_revert": cfg.artifacts_on_revert, "strategy": cfg.strategy,
            "arms": ",".join(cfg.arms) if cfg.strategy else None,
            "escalation": ",".join(f"{k}={v}" for k, v in sorted((cfg.escalation or {}).items())) or None,
            "metric": [_metric_flag(m) for m in cfg.metrics] or None,
            "constraint": [_limit_flag(c) for c in cfg.constraints] or None,
            "warn": [_limit_flag(w) for w in cfg.warnings] or None,
            "guard_command": cfg.guard_command, "guard_metric": [_limit_flag(g) for g in cfg.guard_metrics] or None,
            "guard_timeout_seconds": cfg.guard_timeout_seconds, "holdout_command": cfg.holdout_command,
            "decision": cfg.decision, "target": cfg.target, "alpha": cfg.alpha, "beta": cfg.beta,
            "max_trials": cfg.max_trials, "seed_env": cfg.seed_env, "calibration_runs": cfg.calibration_runs,
            "verify_every": cfg.verify_every}


def chain(cwd: str, rationale: str, changes: dict) -> tuple:
    """Start the follow-up run; return (new run, parent record)."""
    rationale = " ".join((rationale or "").split())
    if not rationale:
        raise UsageError("--rationale is required: one line on why the follow-up run and what it changes")
    parent = workspace.open_run(cwd)
    with Lock(parent.store, "chain"):
        recover.recover(parent)
    st, cfg = parent.state, parent.config
    if not st.stop:
        raise UsageError(f"run {cfg.run_id} is still going; a chain starts from a stopped run: "
                         f"`ratchet.py stop` it first (or let it reach a stop condition)")
    if st.iteration < 0 or not st.incumbent_sha:
        raise UsageError(f"run {cfg.run_id} has no baseline, so no best to start from; use `init` instead")
    args = parent_flags(cfg)
    if "instructions" in changes or "instructions_file" in changes:
        args.update(instructions="", instructions_file=None)
    args.update(changes)
    grand = lineage.parent_of(parent.store.root)
    record = {"parent_run_id": cfg.run_id, "parent_branch": cfg.branch, "parent_start_commit": cfg.start_commit,
              "start_commit": st.incumbent_sha, "metric_name": cfg.metric_name, "direction": cfg.direction,
              "baseline": st.baseline, "best": st.best, "best_iter": st.best_iter,
              "iterations": st.iteration, "stop": st.stop, "verified": st.verified,
              "rationale": rationale, "changed_flags": sorted(changes),
              "chain": list((grand or {}).get("chain") or []) + [cfg.run_id], "created": now_iso()}
    start = {"sha": st.incumbent_sha, "original_branch": cfg.original_branch, "parent": record}
    run = session.init(cwd, args, start=start)
    return run, record


def verb_flags(parsed: dict) -> dict:
    """The init flags given to `chain` (argparse leaves the others out)."""
    return {k: v for k, v in parsed.items() if k not in ("verb", "cwd", "json", "rationale")}


def describe(record: dict, new_branch: str | None) -> str:
    changed = ", ".join("--" + f.replace("_", "-") for f in record["changed_flags"]) or "none"
    return (f"chained from run {record['parent_run_id']}: starts at its best {record['best']!r} "
            f"(iter {record['best_iter']}, commit {record['start_commit'][:10]}) on {new_branch}; "
            f"changed flags: {changed}")
