"""The handlers of the run's lifecycle verbs (init, baseline, iterate,
decide, run-trial, score, stop, holdout, verify): call the engine, then
print what it did (emit: JSON or printable text). Exit status: None/0, or
the engine's errors mapped by cli.main."""

import os

from ..core import headline
from ..verbs import session
from ..learn import critic, learning
from ..verbs import show
from .emit import emit, verdict_json


def _critic(args):
    return critic.critic_record(args.critic_pick, args.critic_reason, args.proposal_a, args.proposal_b)


def cmd_init(a):
    from .flags import default_report_source  # argparse's module: iterate is read without it (quickargs)
    flags = {k: v for k, v in vars(a).items() if k not in ("verb", "cwd", "json")}
    assumed = default_report_source(flags)
    run = session.init(a.cwd, flags)
    cfg = run.config
    human = (f"run {cfg.run_id} started on branch {cfg.branch} (from {cfg.original_branch or cfg.start_commit[:10]})\n"
             + ("report source: stdout (no --report-source given; the metric is read from the command's "
                "output)\n" if assumed else "")
             + f"protected: {', '.join(cfg.protect)}\n"
             + (f"auto-protected because a command names them: {', '.join(cfg.auto_protected)} "
                f"(list them in --editable to let the agent change them)\n" if cfg.auto_protected else "")
             + ("warning: found no file of the benchmark in the run command, so nothing of its harness is "
                "protected; name it with --protect PATH (init again), or the agent may edit what measures it\n"
                if not cfg.auto_protected and not a.protect else "")
             + f"pinned: {run.state.harness['files']} protected file(s), SHA-256 checked around every trial batch\n"
             f"editable: {', '.join(cfg.editable) or 'every other path'}\n"
             + (f"archived the previous run to .ratchet/runs/{run.state.archived}\n" if run.state.archived else "")
             + "".join(line + "\n" for line in learning.init_lines(cfg))
             + "next: run `ratchet.py baseline`")
    emit(a, human, {"config": cfg.to_dict(), "archived": run.state.archived})


def cmd_baseline(a):
    run, rec, notes = session.baseline(a.cwd)
    emit(a, show.baseline_verdict(run, rec, notes), verdict_json(run, rec, notes))


def cmd_iterate(a):
    run, rec, notes = session.iterate(a.cwd, a.hypothesis, a.description, _critic(a), a.arm)
    emit(a, show.verdict(run, rec, notes), verdict_json(run, rec, notes))


def cmd_decide(a):
    run, rec, notes = session.decide(a.cwd, a.hypothesis, a.description, _critic(a), a.arm)
    emit(a, show.verdict(run, rec, notes), verdict_json(run, rec, notes))


def _best_artifacts(run) -> list:
    from ..io import artifacts
    line = artifacts.summary(run.store.root) if run.config.artifact_globs else ""
    return [line] if line else []


def cmd_holdout(a):
    run = session.run_holdout(a.cwd)
    emit(a, "holdout: " + run.holdout["summary"], run.holdout)


def cmd_stop(a):
    run, notes = session.stop(a.cwd)
    cfg = run.config
    human = "\n".join([f"recovered: {n}" for n in notes] + [
        f"run {cfg.run_id} stopped: {run.state.stop}"] + (
        [f"holdout: {run.holdout['summary']}"] if run.holdout else []) + _verified_lines(run) + [
        f"you are on {cfg.original_branch or 'the run branch'}; the experiment stays on {cfg.branch}",
        f"inspect it: git log --oneline {cfg.start_commit[:10]}..{cfg.branch}   "
        f"git diff {cfg.start_commit[:10]} {cfg.branch}",
        "report: ratchet.py report --html · a clean branch to merge: ratchet.py finalize"] + _best_artifacts(run))
    emit(a, human, {"run_id": cfg.run_id, "stop": run.state.stop, "branch": cfg.branch, "recovered": notes,
                     "holdout": run.holdout})


def _verified_lines(run) -> list:
    if run.verify_error:
        return [f"verify could not run: {run.verify_error}"]
    line = headline.gain_line(run.state, run.config.direction, run.config.decision == "paired")
    return [line] if line else []


def cmd_run_trial(a):
    run, trial, rec, notes = session.run_one(a.cwd)
    if rec is not None:
        emit(a, show.verdict(run, rec, notes), verdict_json(run, rec, notes))
        return
    report = os.path.join(run.store.root, trial["report"])
    if trial["status"] == "ok":
        msg = f"trial {trial['trial']}: {run.config.metric_name} = {trial['score']!r} ({trial['detail']})"
    else:
        msg = (f"trial {trial['trial']}: {trial['status']} ({trial['detail']}); if the report holds the metric, "
               f"read it and run `ratchet.py score VALUE`")
    emit(a, "\n".join([f"recovered: {n}" for n in notes] + [msg, f"report: {report}"]), {"trial": trial, "report": report})


def cmd_score(a):
    t = session.score(a.cwd, a.value, a.trial)
    emit(a, f"trial {t['trial']}: score {t['score']!r} recorded; run `run-trial` for more trials or `decide`", t)


def cmd_verify(a):
    run, verified, notes = session.verify(a.cwd, a.pairs)
    line = (headline.verified_line(verified, run.config.direction, run.state.log_scale)
            or "nothing to verify: no change has been kept yet")
    stopped = [f"next: stop ({run.state.stop})"] if verified and run.state.stop else []
    emit(a, "\n".join([f"recovered: {n}" for n in notes] + [line] + stopped),
         {"verified": verified, "recovered": notes, "stop": run.state.stop})


