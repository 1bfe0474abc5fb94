#!/usr/bin/env python3
"""ratchet: keep a code change only when a benchmark proves it helped.

Usage: ratchet.py VERB [flags]    (ratchet.py --help lists the verbs)

This file only parses flags and prints; the work is in ratchetlib/, whose
__init__.py maps every module by layer (rules, edges, workflows).
Exit codes: 0 ok, 2 usage or configuration error (nothing changed),
1 unexpected runtime failure (state left consistent), 130/143 interrupted;
`loop` also exits 3 when one of its budgets ran out (the run can go on).
"""

import sys

if sys.version_info < (3, 10):
    sys.stderr.write("ratchet: error: Python 3.10 or newer is required (this is %d.%d)\n" % sys.version_info[:2])
    sys.exit(2)

import os  # noqa: E402
import signal  # noqa: E402

if __name__ == "__main__":  # Ctrl-C while the modules load: nothing has started, so a quiet 130; main() takes over
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))

import argparse  # noqa: E402
import json  # noqa: E402

from ratchetlib import engine, learning, term, views  # noqa: E402
from ratchetlib.bandit import DEFAULT_ARMS  # noqa: E402
from ratchetlib.errors import RatchetError, UsageError, from_os_error  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit 2."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ratchet.py", description="Keep a code change only when a benchmark proves it helped.")
    p.add_argument("-C", dest="cwd", default=".", metavar="DIR", help="run as if started in DIR")
    sub = p.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    def verb(name, help_text):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("-C", dest="cwd", default=argparse.SUPPRESS, metavar="DIR", help=argparse.SUPPRESS)
        return sp

    sp = verb("init", "start a run: validate the flags, create the experiment branch")
    sp.add_argument("--run-command", required=True, help="shell command that prints the metric")
    sp.add_argument("--direction", choices=("max", "min"), help="required unless --metric is given")
    sp.add_argument("--metric-name", help="the primary metric (required unless --metric is given)")
    sp.add_argument("--report-source",
                    help="where the metric is read (default stdout): stdout, stderr, a report file, or KIND:PATH[#KEY] "
                         "for the files trainers write (json, jsonl, csv, hf, wandb, tensorboard, lightning; e.g. "
                         "jsonl:metrics.jsonl#val_loss; see FORMATS.md)")
    sp.add_argument("--metric-pattern", help="regex with one capture group, when no `NAME: value` line exists")
    sp.add_argument("--trials", type=_int, default=1,
                    help="paired: the minimum pairs (at least 2); mean: runs per iteration, averaged (default 1)")
    sp.add_argument("--iterations", type=_int, default=20, help="hard cap on iterations (default 20)")
    sp.add_argument("--threshold", type=_float, help="stop when the best crosses this value")
    sp.add_argument("--patience", type=_int, default=0, help="stop after K iterations without a keep (0 = off)")
    sp.add_argument("--min-improvement", default="0", help="margin to keep: absolute (0.5) or relative (2%%)")
    sp.add_argument("--decision", choices=("paired", "mean"), default="paired",
                    help="paired (default): incumbent and candidate run in alternating pairs, a sequential test "
                         "decides; mean: the mean of --trials runs against the incumbent's stored score")
    sp.add_argument("--target", type=_float, default=2.0, metavar="PCT",
                    help="paired: the improvement the test is built to detect, percent (default 2)")
    sp.add_argument("--alpha", type=_float, default=0.05, help="paired: false-keep rate at the margin (default 0.05)")
    sp.add_argument("--beta", type=_float, default=0.2, help="paired: miss rate at the target (default 0.2)")
    sp.add_argument("--max-trials", type=_int, default=10, help="paired: the pair cap per iteration (default 10)")
    sp.add_argument("--seed-env", metavar="VAR",
                    help="paired: export a fresh seed in VAR per pair, the same to both runs (common random numbers)")
    sp.add_argument("--calibration-runs", type=_int, default=5,
                    help="paired: runs of the start commit in `baseline` to measure the noise (default 5)")
    sp.add_argument("--verify-every", type=_int, default=25,
                    help="paired: re-measure start vs best every N iterations (0 = only at the stop; default 25)")
    sp.add_argument("--max-consecutive-crashes", type=_int, default=3)
    sp.add_argument("--trial-timeout-seconds", type=_float)
    sp.add_argument("--cancel-command", help="run when a trial times out or is interrupted, with RATCHET_TRIAL_ID set "
                                             "(cancels a remote job: scancel, ray job stop, sky cancel)")
    sp.add_argument("--executor", choices=("local", "slurm", "ray"), default="local",
                    help="where each trial runs: local (default), slurm (one sbatch job per trial) or ray "
                         "(one `ray job submit` per trial); see the README's \"Trials on other machines\"")
    sp.add_argument("--executor-options", default="", metavar="'OPTS'",
                    help="passed to sbatch / ray job submit, e.g. '--partition=gpu --gres=gpu:1 --time=1:00:00' "
                         "or '--address=http://127.0.0.1:8265'")
    sp.add_argument("--critic", action="store_true", help="critic mode: two proposers and a critic per iteration")
    sp.add_argument("--strategy", choices=("bandit",), help="bandit: suggest a strategy arm each iteration (UCB1)")
    sp.add_argument("--arms", metavar="A,B,C", help="the bandit's arms (default: " + ",".join(DEFAULT_ARMS) + ")")
    sp.add_argument("--escalation", metavar="refine=3,pivot=5,search=2,halt=3",
                    help="non-keeps before REFINE / PIVOT, failed pivots before SEARCH / HALT (any subset)")
    sp.add_argument("--instructions", default="", help="run-specific integrity rules, echoed every iteration")
    sp.add_argument("--instructions-file")
    sp.add_argument("--editable", nargs="+", default=[], metavar="PATHSPEC", help="what the agent may change")
    sp.add_argument("--protect", nargs="+", default=[], metavar="PATHSPEC", help="harness files, never edited")
    sp.add_argument("--artifact-glob", action="append", default=[], metavar="GLOB",
                    help="checkpoint files to keep: after a keep the newest match is copied to .ratchet/best/ "
                         "(repeatable)")
    sp.add_argument("--output", action="append", default=[], metavar="PATHSPEC",
                    help="what the benchmark writes (caches, logs, build outputs), beyond what its unmodified runs "
                         "write: a candidate's run may write there (repeatable)")
    sp.add_argument("--artifacts-on-revert", choices=("keep", "remove"), default="keep",
                    help="what happens to artifacts a reverted iteration's trials created (default keep)")
    sp.add_argument("--metric", action="append", metavar="NAME:max|min[:MARGIN]",
                    help="another primary metric, read like NAME: value (repeatable): keep when better on one, worse on none")
    sp.add_argument("--constraint", action="append", metavar="'NAME>=X'",
                    help="hard limit read from the report (>=, <=, >, <; repeatable): a violation reverts")
    sp.add_argument("--warn", action="append", metavar="'NAME<=X'", help="soft limit: recorded and shown, never reverts")
    sp.add_argument("--guard-command", help="regression gate (e.g. the tests) run on a candidate the metric would keep")
    sp.add_argument("--guard-metric", action="append", metavar="'NAME>=X'", help="limit read from the guard's output")
    sp.add_argument("--guard-timeout-seconds", type=_float)
    sp.add_argument("--holdout-command", help="evaluation the agent never sees, run on the start and final commits at the end")
    sp.add_argument("--branch", help="experiment branch name (default ratchet/<run-id>)")
    sp.add_argument("--no-branch", action="store_true", help="stay on the current branch")
    sp.add_argument("--json", action="store_true")

    init_parser = sp
    sp = verb("chain", "start a follow-up run at a stopped run's best commit, with some init flags changed")
    sp.add_argument("--rationale", required=True, help="one line: why this follow-up run, what it changes")
    _copy_init_flags(init_parser, sp, overrides=True)
    sp.add_argument("--json", action="store_true")

    sp = verb("baseline", "measure the unmodified start commit (iteration 0)")
    sp.add_argument("--json", action="store_true")

    for name, help_text in (("iterate", "measure the agent's change, keep or revert it (one call per iteration)"),
                            ("decide", "decide on the trials recorded with run-trial/score")):
        sp = verb(name, help_text)
        sp.add_argument("--hypothesis", required=True, help="one line: what should improve and why")
        sp.add_argument("--description", default="", help="one line: what was changed")
        sp.add_argument("--critic-pick", help="critic mode: a, b, or none (the critic rejected both)")
        sp.add_argument("--critic-reason", help="critic mode: why")
        sp.add_argument("--proposal-a", help="critic mode: proposer A's summary and plan, one line")
        sp.add_argument("--proposal-b", help="critic mode: proposer B's summary and plan, one line")
        sp.add_argument("--arm", help="--strategy bandit: the strategy arm this change used")
        sp.add_argument("--json", action="store_true")

    sp = verb("status", "compact state of the run")
    sp.add_argument("--json", action="store_true")
    sp = verb("history", "the records of the run")
    sp.add_argument("--last", type=_int, help="only the last N records")
    sp.add_argument("--all", action="store_true", help="the whole chain: earlier runs' records, then this run's")
    sp.add_argument("--json", action="store_true")
    sp = verb("tail", "the end of a trial's report, from the traceback when there is one")
    sp.add_argument("--iter", type=_int, dest="iteration")
    sp.add_argument("--trial", type=_int)
    sp.add_argument("--lines", type=_int, default=80)
    sp.add_argument("--guard", action="store_true", help="the guard's output instead of a trial's")
    sp = verb("stop", "end the run and return to the branch you started from")
    sp.add_argument("--json", action="store_true")
    sp = verb("run-trial", "run one trial of the current change and save its report")
    sp.add_argument("--json", action="store_true")
    sp = verb("score", "record the metric you read from the last trial's report")
    sp.add_argument("value")
    sp.add_argument("--trial", type=_int)
    sp.add_argument("--json", action="store_true")
    sp = verb("loop", "headless: run a fresh agent per iteration until the run stops or a budget runs out")
    sp.add_argument("--agent-command", help="shell command for one agent step; the prompt is its stdin, or the file "
                                            "named by {prompt_file} in it (saved for later `loop` calls)")
    sp.add_argument("--agent-timeout-seconds", type=_float, help="per agent call (default 1800)")
    sp.add_argument("--max-wall-seconds", type=_float, help="this loop's wall-clock budget")
    sp.add_argument("--max-agent-cost-usd", type=_float, help="the run's agent cost budget (agents that report it)")
    sp.add_argument("--max-agent-tokens", type=_int, help="the run's agent token budget (agents that report it)")
    sp.add_argument("--parallel", type=_int, help="N agents propose at once, each in its own git worktree")
    _copy_init_flags(init_parser, sp, prefix="init_")
    sp.epilog = ("Every `init` flag is accepted too: when the repository has no run, `loop` starts one with them "
                 "(init, then baseline); an existing run is continued. Exit 0: the run is over; 3: a budget ran out.")

    sp = verb("detect", "inspect the project: commands, tracker files, metrics, and a proposed init")
    sp.add_argument("--json", action="store_true")
    verb("reseal", "at a terminal only: show the run's contract and, once you type the run id, trust its "
                   "sealed files as they are now (a new machine without the key, or a change you made yourself)")
    sp = verb("clean", "after a trial's processes survived the kill: kill them again, check, unblock trials")
    sp.add_argument("--json", action="store_true")
    sp = verb("holdout", "evaluate the holdout on the start and the final commit now")
    sp.add_argument("--json", action="store_true")
    sp = verb("verify", "re-measure the start commit against the best in paired runs: the honest gain")
    sp.add_argument("--pairs", type=_int, help="pairs to run (default --max-trials)")
    sp.add_argument("--json", action="store_true")
    sp = verb("ideas", "the ideas backlog: add TEXT, list, done N")
    sp.add_argument("action", choices=("add", "list", "done"))
    sp.add_argument("arg", nargs="*", metavar="TEXT|N")
    sp.add_argument("--json", action="store_true")
    sp = verb("report", "the run as Markdown (start, best, verified gain, top wins, Pareto, holdout); --html: a page with charts")
    sp.add_argument("--html", nargs="?", const="", metavar="FILE",
                    help="also write a self-contained HTML report (default .ratchet/report.html)")
    sp.add_argument("--json", action="store_true")
    sp = verb("diff", "the change from the start commit to the best (or one iteration's), editable paths only")
    which = sp.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true", help="start commit to best (the default)")
    which.add_argument("--iter", type=_int, dest="iteration", metavar="N",
                       help="iteration N's change: its kept commit, or the patch its revert saved")
    sp = verb("finalize", "a clean branch from the start commit with the best state (your branches stay untouched)")
    sp.add_argument("--branch", help="the new branch's name (default ratchet/<run-id>-final)")
    sp.add_argument("--split", action="store_true", help="one commit per kept iteration, in order")
    sp.add_argument("--json", action="store_true")
    sp = verb("doctor", "preflight before init, with init's flags (none: the current run's): git, a clean tree, the "
                        "command runs, the metric is read, trial time, noise, protected paths, timeout")
    _copy_init_flags(init_parser, sp)
    sp.add_argument("--runs", type=_int, metavar="N",
                    help="runs of the command for the noise (default: up to 5 within 2 minutes)")
    sp.add_argument("--json", action="store_true")
    sp = verb("demo", "run the whole loop on a built-in example, no LLM needed")
    sp.add_argument("--keep", action="store_true", help="keep the demo repository and print its path")
    return p


LOOP_FLAGS = ("agent_command", "agent_timeout_seconds", "max_wall_seconds", "max_agent_cost_usd",
              "max_agent_tokens", "parallel")


def _copy_init_flags(src, dst, *, prefix: str = "", overrides: bool = False) -> None:
    """Give `dst` every `init` flag, none required, so a flag added to `init`
    is accepted everywhere an init line is: `loop` (dest prefixed `init_`,
    to start a run and loop on it), `doctor` (init's defaults, to check an
    init line as is) and `chain` (`overrides`: absent unless given, shown in
    its help, since only the flags that change are passed)."""
    for action in src._actions:
        if not action.option_strings or action.dest in ("help", "cwd", "json"):
            continue
        kw = {"dest": prefix + action.dest,
              "default": argparse.SUPPRESS if overrides else action.default,
              "help": action.help if overrides else argparse.SUPPRESS}
        if action.nargs == 0:
            kw["action"] = "store_true"
        elif isinstance(action, argparse._AppendAction):
            kw.update(action="append", type=action.type, metavar=action.metavar)
        else:
            kw.update(type=action.type, choices=action.choices, nargs=action.nargs, metavar=action.metavar)
        dst.add_argument(*action.option_strings, **kw)


def _emit(args, human: str, data, painted: bool = False) -> None:
    """Print `data` as JSON (text intact, as the agent or benchmark gave it)
    or `human`, made printable (term.printable: control characters and bidi
    overrides shown as visible escapes). A `painted` text carries ratchet's
    own colour and was made printable piece by piece by its view."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=1))
    else:
        print(human if painted else term.printable(human))


def _critic(args):
    return learning.critic_record(args.critic_pick, args.critic_reason, args.proposal_a, args.proposal_b)


def _verdict_json(run, rec, notes):
    return {"record": rec, "recovered": notes, "next": "stop" if run.state.get("stop") else "continue",
            "stop": run.state.get("stop")}


def default_report_source(flags: dict) -> bool:
    """Fill the report source a user left out with stdout, as `doctor` assumes;
    True when it did (init says so)."""
    if flags.get("run_command") and not flags.get("report_source"):
        flags["report_source"] = "stdout"
        return True
    return False


def cmd_init(a):
    flags = {k: v for k, v in vars(a).items() if k not in ("verb", "cwd", "json")}
    assumed = default_report_source(flags)
    run = engine.init(a.cwd, flags)
    cfg = run.config
    human = (f"run {cfg.run_id} started on branch {cfg.branch} (from {cfg.original_branch or cfg.start_commit[:10]})\n"
             + (f"report source: stdout (no --report-source given; the metric is read from the command's "
                f"output)\n" if assumed else "")
             + f"protected: {', '.join(cfg.protect)}\n"
             + (f"auto-protected because a command names them: {', '.join(cfg.auto_protected)} "
                f"(list them in --editable to let the agent change them)\n" if cfg.auto_protected else "")
             + ("warning: found no file of the benchmark in the run command, so nothing of its harness is "
                "protected; name it with --protect PATH (init again), or the agent may edit what measures it\n"
                if not cfg.auto_protected and not a.protect else "")
             + f"pinned: {run.state['harness']['files']} protected file(s), SHA-256 checked around every trial batch\n"
             f"editable: {', '.join(cfg.editable) or 'every other path'}\n"
             + (f"archived the previous run to .ratchet/runs/{run.state['archived']}\n" if run.state.get("archived") else "")
             + "".join(line + "\n" for line in learning.init_lines(cfg))
             + "next: run `ratchet.py baseline`")
    _emit(a, human, {"config": cfg.to_dict(), "archived": run.state.get("archived")})


def cmd_baseline(a):
    run, rec, notes = engine.baseline(a.cwd)
    _emit(a, views.baseline(run, rec, notes), _verdict_json(run, rec, notes))


def cmd_iterate(a):
    run, rec, notes = engine.iterate(a.cwd, a.hypothesis, a.description, _critic(a), a.arm)
    _emit(a, views.verdict(run, rec, notes), _verdict_json(run, rec, notes))


def cmd_decide(a):
    run, rec, notes = engine.decide(a.cwd, a.hypothesis, a.description, _critic(a), a.arm)
    _emit(a, views.verdict(run, rec, notes), _verdict_json(run, rec, notes))


def cmd_status(a):
    from ratchetlib import reporting
    run = engine.load(a.cwd)
    notes, busy = engine.recover_for_status(run)
    tail = run.store.records(last=reporting.TREND_WIDTH)  # a bounded tail: status never reads the whole history
    recent, trend = tail[-5:], reporting.trend(tail)
    st = run.state
    data = {"run_id": run.config.run_id, "iteration": st.get("iteration"), "best": st.get("best"),
            "baseline": st.get("baseline"), "stop": st.get("stop"), "state": st,
            "config": run.config.to_dict(), "recent": recent, "pareto": st.get("pareto"),
            "holdout": views.holdout_view(run), "loop": run.store.read_loop()}
    snap = learning.snapshot(run)
    data.update(hints=snap["hints"], escalation=snap["escalation"], arm=snap["arm"], ideas=snap["ideas"],
                open_ideas=snap["open_ideas"], critic=snap["critic"])
    data.update(trend=trend, recent_scores=[r.get("avg") for r in tail], recovered=notes, busy=busy)
    _emit(a, views.status(run, recent, snap, trend, notes, busy), data)


def cmd_history(a):
    if a.all:
        return _history_all(a)
    run = engine.load(a.cwd)
    recs = run.store.records(last=a.last) if a.last else run.store.records()
    summary = learning.critic_summary_of(recs)
    lines = [views.history_line(r) for r in recs] + ([summary["line"]] if summary else [])
    _emit(a, "\n".join(lines) or "no records yet", recs)


def _history_all(a):
    from ratchetlib import lineage
    run = engine.load(a.cwd)
    runs = lineage.runs(run.store, run.config.run_id)
    lines = []
    for r in runs:
        p = r["parent"]
        head = f"== run {r['run_id']}"
        if p:
            head += f" (chained from {p.get('parent_run_id')} at its best {p.get('best')!r}: {p.get('rationale', '')})"
        lines.append(views._clip(head + " ==", 200) if not r["missing"] else head + " (archive missing) ==")
        recs = r["records"][-a.last:] if a.last else r["records"]
        lines += [views.history_line(x) for x in recs] or ["no records"]
    _emit(a, "\n".join(lines), runs)


def cmd_chain(a):
    from ratchetlib import chain
    run, record = chain.chain(a.cwd, a.rationale, chain.verb_flags(vars(a)))
    cfg = run.config
    human = (chain.describe(record, cfg.branch) + "\n"
             + (f"archived the previous run to .ratchet/runs/{run.state['archived']}\n" if run.state.get("archived") else "")
             + "next: run `ratchet.py baseline`")
    _emit(a, human, {"config": cfg.to_dict(), "parent": record, "archived": run.state.get("archived")})


def cmd_tail(a):
    run = engine.load(a.cwd)
    store = run.store
    it = a.iteration
    if a.guard:
        return _tail_guard(run, it, a.lines)
    if it is None:
        cur, last = store.read_current(), store.records(last=1)
        it = cur["iter"] if cur and cur.get("trials") else (last[-1]["iter"] if last else 0)
    rec = next((r for r in store.records(last=50) if r["iter"] == it), None)
    trials = (rec or {}).get("trials") or []
    k = a.trial or next((t["trial"] for t in trials if t.get("status") != "ok"), None) or \
        (trials[-1]["trial"] if trials else 1)
    candidates = [store.report_path(it, k, ext) for ext in ("err", "txt", "out")]
    found = [p for p in candidates if os.path.exists(p) and os.path.getsize(p) > 0]
    if not found:
        raise UsageError(f"no captured output for iteration {it} trial {k}")
    tb = next((p for p in found if "Traceback (most recent call last)" in views.tail_text(p, 10 ** 6)), found[0])
    print(term.printable(f"== {os.path.relpath(tb, run.repo)} (iteration {it}, trial {k}) =="))
    print(term.printable(views.tail_text(tb, max(a.lines, 5))))


def _best_artifacts(run) -> list:
    from ratchetlib import artifacts
    line = artifacts.summary(run.store.root) if run.config.artifact_globs else ""
    return [line] if line else []


def _tail_guard(run, it, lines):
    from ratchetlib import guard
    if it is None:
        it = next((r["iter"] for r in reversed(run.store.records(last=50)) if r.get("guard")), None)
    path = guard.report_path(run.store, it) if it is not None else None
    if path is None or not os.path.exists(path):
        raise UsageError("no guard output" + (f" for iteration {it}" if it is not None else " yet"))
    print(term.printable(f"== {os.path.relpath(path, run.repo)} (guard, iteration {it}) =="))
    print(term.printable(views.tail_text(path, max(lines, 5))))


def cmd_holdout(a):
    run = engine.run_holdout(a.cwd)
    _emit(a, "holdout: " + run.holdout["summary"], run.holdout)


def cmd_stop(a):
    run, notes = engine.stop(a.cwd)
    cfg = run.config
    human = "\n".join([f"recovered: {n}" for n in notes] + [
        f"run {cfg.run_id} stopped: {run.state['stop']}"] + (
        [f"holdout: {run.holdout['summary']}"] if run.holdout else []) + _verified_lines(run) + [
        f"you are on {cfg.original_branch or 'the run branch'}; the experiment stays on {cfg.branch}",
        f"inspect it: git log --oneline {cfg.start_commit[:10]}..{cfg.branch}   "
        f"git diff {cfg.start_commit[:10]} {cfg.branch}",
        "report: ratchet.py report --html · a clean branch to merge: ratchet.py finalize"] + _best_artifacts(run))
    _emit(a, human, {"run_id": cfg.run_id, "stop": run.state["stop"], "branch": cfg.branch, "recovered": notes,
                     "holdout": run.holdout})


def _verified_lines(run) -> list:
    from ratchetlib import paired
    if run.verify_error:
        return [f"verify could not run: {run.verify_error}"]
    line = paired.verified_line(run.state.get("verified"), run.config.direction, run.state.get("log_scale", True))
    return [line] if line else []


def cmd_run_trial(a):
    run, trial, rec, notes = engine.run_one(a.cwd)
    if rec is not None:
        _emit(a, views.verdict(run, rec, notes), _verdict_json(run, rec, notes))
        return
    report = os.path.join(run.store.root, trial["report"])
    if trial["status"] == "ok":
        msg = f"trial {trial['trial']}: {run.config.metric_name} = {trial['score']!r} ({trial['detail']})"
    else:
        msg = (f"trial {trial['trial']}: {trial['status']} ({trial['detail']}); if the report holds the metric, "
               f"read it and run `ratchet.py score VALUE`")
    _emit(a, "\n".join([f"recovered: {n}" for n in notes] + [msg, f"report: {report}"]), {"trial": trial, "report": report})


def cmd_score(a):
    t = engine.score(a.cwd, a.value, a.trial)
    _emit(a, f"trial {t['trial']}: score {t['score']!r} recorded; run `run-trial` for more trials or `decide`", t)


def cmd_loop(a):
    from ratchetlib import headless
    given = {k: getattr(a, k) for k in LOOP_FLAGS}
    init_flags = {k[len("init_"):]: v for k, v in vars(a).items() if k.startswith("init_")}
    default_report_source(init_flags)
    return headless.main(a.cwd, given, init_flags if init_flags.get("run_command") else None)


def cmd_detect(a):
    from ratchetlib import detect, gitops
    if not os.path.isdir(a.cwd):
        raise UsageError(f"{a.cwd} is not a directory")
    try:  # commands and report paths are relative to the repository root, so look from there
        root = gitops.find_root(a.cwd)
    except UsageError:
        root = a.cwd
    report = detect.detect(root)
    _emit(a, detect.human(report), report)


def cmd_clean(a):
    from ratchetlib import gitops, unclean
    note = unclean.set_aside_if_corrupt(gitops.find_root(a.cwd))
    killed = unclean.clean(gitops.find_root(a.cwd))
    if note:
        human = note
    elif killed is None:
        human = "nothing to clean: no trial left processes behind"
    else:
        human = (f"killed {len(killed)} leftover process(es); " if killed else "") + \
            "no process of the earlier trial is left; trials may run again"
    _emit(a, human, {"marker": killed is not None or bool(note), "killed": killed or [], "note": note})


def _printable(text: str) -> str:
    """A forged file's text must not drive the terminal that asks for trust."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def cmd_reseal(a):
    """A person at a terminal, never a script or an agent (no TTY there),
    decides that the run's files as they are now are the contract."""
    from ratchetlib import gitops, seal, store as storemod
    root = storemod.Store(gitops.find_root(a.cwd)).root
    if not os.path.exists(os.path.join(root, "config.json")):
        raise UsageError("no ratchet run in this repository; nothing to reseal")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("reseal trusts the run's files as they are now, so a person must confirm it: run it "
                         "yourself at a terminal (never from a script or an agent)")
    raw = {}
    for name in ("config.json", "state.json", "loop.json"):
        try:
            with open(os.path.join(root, name), "rb") as f:
                raw[name] = json.loads(f.read())
        except (OSError, ValueError):
            raw[name] = {}
    cfg, st, loop = raw["config.json"], raw["state.json"], raw["loop.json"]
    print("ratchet reseal: these files do not verify now:")
    for line in storemod.seal_problems(root) or ["(none: every sealed file verifies)"]:
        print(f"  {_printable(line)}")
    print("the contract you are about to trust:")
    for label, value in (("run", cfg.get("run_id")), ("run command", cfg.get("run_command")),
                         ("guard command", cfg.get("guard_command")), ("holdout command", cfg.get("holdout_command")),
                         ("cancel command", cfg.get("cancel_command")),
                         ("executor", f"{cfg.get('executor') or 'local'} {cfg.get('executor_options') or ''}".strip()),
                         ("agent command", loop.get("agent_command")),
                         ("agent budgets", {k: loop.get(k) for k in ("max_agent_cost_usd", "max_agent_tokens",
                                                                   "max_wall_seconds") if loop.get(k) is not None}),
                         ("metric", f"{cfg.get('metric_name')} ({cfg.get('direction')}), decision {cfg.get('decision')}"),
                         ("editable", cfg.get("editable")), ("protected", cfg.get("protect")),
                         ("baseline / incumbent", f"{st.get('baseline')} / {st.get('incumbent_score')} at "
                                                  f"{str(st.get('incumbent_sha'))[:10]}")):
        print(f"  {label}: {_printable(value if isinstance(value, str) else repr(value))}")
    sys.stdout.write(f"type the run id ({cfg.get('run_id')}) to trust these files as they are now: ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    if not answer or answer != cfg.get("run_id"):
        raise UsageError("not confirmed; nothing was changed")
    done = storemod.trust(root)
    print(f"resealed {', '.join(done)} with the key {seal.key_path(cfg['run_id'])}")


def cmd_verify(a):
    from ratchetlib import paired
    run, verified, notes = engine.verify(a.cwd, a.pairs)
    line = paired.verified_line(verified) or "nothing to verify: no change has been kept yet"
    _emit(a, "\n".join([f"recovered: {n}" for n in notes] + [line]), {"verified": verified, "recovered": notes})


def cmd_ideas(a):
    run = engine.load(a.cwd)
    text = " ".join(a.arg)
    if a.action == "add":
        idea = learning.ideas_add(run, text)
        _emit(a, f"idea #{idea['id']}: {idea['text']}", idea)
    elif a.action == "done":
        if len(a.arg) != 1:
            raise UsageError("usage: ideas done N (the number `ideas list` shows)")
        idea = learning.ideas_done(run, a.arg[0])
        _emit(a, f"idea #{idea['id']} done", idea)
    else:
        if a.arg:
            raise UsageError("`ideas list` takes no arguments")
        shown = learning.top_ideas(run)[0]
        _emit(a, "\n".join(f"#{i['id']} [{i['source']}] {i['text']}" for i in shown) or
              "no open ideas; add one with `ratchet.py ideas add TEXT`", shown)


def cmd_report(a):
    from ratchetlib import reporting
    run = engine.load(a.cwd)
    data = reporting.inputs(run)
    md = reporting.markdown(data)
    out = {"summary": None, "markdown": md, "html": None}
    if a.html is not None:
        path = reporting.resolve_html_path(run, a.cwd, a.html or None)
        size = reporting.write_html(path, reporting.html(data))
        out["html"] = {"path": path, "bytes": size}
        md += f"\nHTML report: {path} ({size / 1024:.0f} KB, self-contained; open it in a browser)\n"
    if a.json:
        from ratchetlib import report
        s = report.summary(data["config"], data["state"], data["records"], verified=data["verified"])
        s["top_wins"] = [{k: r.get(k) for k in ("iter", "hypothesis", "description", "avg", "delta", "incumbent", "sha")}
                         for r in s["top_wins"]]
        out["summary"] = s
    _emit(a, md.rstrip("\n"), out)


def cmd_diff(a):
    from ratchetlib import ship, term
    text, what = ship.diff(a.cwd, a.iteration, color=term.use_color())
    if not text:
        print(f"ratchet: {what}: no change", file=sys.stderr)
        return 0
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cmd_finalize(a):
    from ratchetlib import ship, term
    result = ship.finalize(a.cwd, a.branch, a.split)
    _emit(a, ship.describe(result, color=term.use_color()), result, painted=True)


def cmd_doctor(a):
    from ratchetlib import doctor, term
    flags = {k: v for k, v in vars(a).items() if k not in ("verb", "cwd", "json", "runs")}
    result = doctor.doctor(a.cwd, flags, a.runs)
    _emit(a, doctor.human(result, color=term.use_color()), result, painted=True)
    return 0 if result["ok"] else 2


def cmd_demo(a):
    from ratchetlib import demo
    return demo.main(keep=a.keep)


COMMANDS = {"init": cmd_init, "chain": cmd_chain, "baseline": cmd_baseline, "iterate": cmd_iterate, "decide": cmd_decide,
            "status": cmd_status, "history": cmd_history, "tail": cmd_tail, "stop": cmd_stop,
            "run-trial": cmd_run_trial, "score": cmd_score, "ideas": cmd_ideas, "clean": cmd_clean, "reseal": cmd_reseal,
            "detect": cmd_detect, "holdout": cmd_holdout, "verify": cmd_verify, "demo": cmd_demo, "loop": cmd_loop,
            "report": cmd_report, "diff": cmd_diff, "finalize": cmd_finalize, "doctor": cmd_doctor}


def _glued(argv: list) -> list:
    """`--executor-options '--partition=gpu'` as `--executor-options=--partition=gpu`: its
    value is scheduler options, which begin with a dash (argparse would take them for flags)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--executor-options" and i + 1 < len(argv):
            out.append(f"--executor-options={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so cleanup (finally, locks) runs."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = build_parser().parse_args(_glued(sys.argv[1:] if argv is None else list(argv)))
        if not args.verb:
            build_parser().print_help()
            return 2
        return COMMANDS[args.verb](args) or 0
    except (UsageError, RatchetError) as e:
        print(f"ratchet: error: {term.printable(e, multiline=False)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ratchet: interrupted; the trial's processes were stopped", file=sys.stderr)
        return 130
    except Terminated:
        print("ratchet: terminated; the trial's processes were stopped", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 0
    except OSError as e:  # a full disk or a read-only .ratchet/: one line, not a traceback
        known = from_os_error(e)
        if known is None:
            raise
        print(f"ratchet: error: {term.printable(known, multiline=False)}", file=sys.stderr)
        return known.exit_code


if __name__ == "__main__":
    sys.exit(main())
