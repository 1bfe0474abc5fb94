"""The flags of every verb, as a table: one row per `init` flag and one
small function per other verb, so a verb's flags are read in one place and
`--help` lists them in the order written here (the help text, the flags and
the usage errors are part of the CLI's contract: tests/test_cli checks them).

A usage mistake is one line and exit 2 (`Parser.error` raises UsageError);
the flags `loop`, `doctor` and `chain` share with `init` are copied from
init's parser, so a flag added to `init` is accepted everywhere an init line is."""

from __future__ import annotations

import argparse

from ..core.errors import UsageError
from ..core.steering import DEFAULT_ARMS


class Parser(argparse.ArgumentParser):
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


INIT_FLAGS = (
    ("--run-command", dict(required=True, help="shell command that prints the metric")),
    ("--direction", dict(choices=("max", "min"), help="required unless --metric is given")),
    ("--metric-name", dict(help="the primary metric (required unless --metric is given)")),
    ("--report-source", dict(
        help="where the metric is read (default stdout): stdout, stderr, a report file, or KIND:PATH[#KEY] "
             "for the files trainers write (json, jsonl, csv, hf, wandb, tensorboard, lightning; e.g. "
             "jsonl:metrics.jsonl#val_loss; see FORMATS.md)")),
    ("--metric-pattern", dict(help="regex with one capture group, when no `NAME: value` line exists")),
    ("--trials", dict(type=_int, default=1,
                      help="paired: the minimum pairs (at least 2); mean: runs per iteration, averaged (default 1)")),
    ("--iterations", dict(type=_int, default=20, help="hard cap on iterations (default 20)")),
    ("--threshold", dict(type=_float, help="stop when the best, re-measured against the start, crosses this value")),
    ("--patience", dict(type=_int, default=0, help="stop after K iterations without a keep (0 = off)")),
    ("--min-improvement", dict(default="0", help="margin to keep: absolute (0.5) or relative (2%%)")),
    ("--decision", dict(choices=("paired", "mean"), default="paired",
                        help="paired (default): incumbent and candidate run in alternating pairs, a sequential test "
                             "decides; mean: the mean of --trials runs against the incumbent's stored score")),
    ("--target", dict(type=_float, default=2.0, metavar="PCT",
                      help="paired: the improvement the test is built to detect, percent (default 2)")),
    ("--alpha", dict(type=_float, default=0.05, help="paired: false-keep rate at the margin (default 0.05)")),
    ("--beta", dict(type=_float, default=0.2, help="paired: miss rate at the target (default 0.2)")),
    ("--max-trials", dict(type=_int, default=10, help="paired: the pair cap per iteration (default 10)")),
    ("--seed-env", dict(metavar="VAR", help="paired: export a fresh seed in VAR per pair, the same to both runs "
                                            "(common random numbers)")),
    ("--calibration-runs", dict(type=_int, default=10,
                                help="paired: runs of the start commit in `baseline` to measure the noise (default 10)")),
    ("--verify-every", dict(type=_int, default=25,
                            help="paired: re-measure start vs best every N iterations (0 = only at the stop; "
                                 "default 25)")),
    ("--max-consecutive-crashes", dict(type=_int, default=3)),
    ("--trial-timeout-seconds", dict(type=_float)),
    ("--cancel-command", dict(help="run when a trial times out or is interrupted, with RATCHET_TRIAL_ID set "
                                   "(cancels a remote job: scancel, ray job stop, sky cancel)")),
    ("--executor", dict(choices=("local", "slurm", "ray"), default="local",
                        help="where each trial runs: local (default), slurm (one sbatch job per trial) or ray "
                             "(one Ray job per trial, over the Jobs REST API); see the README's \"Trials on other machines\"")),
    ("--executor-options", dict(default="", metavar="'OPTS'",
                                help="passed to sbatch / translated from `ray job submit` options, e.g. '--partition=gpu --gres=gpu:1 "
                                     "--time=1:00:00' or '--address=http://127.0.0.1:8265'")),
    ("--critic", dict(action="store_true", help="critic mode: two proposers and a critic per iteration")),
    ("--strategy", dict(choices=("bandit",), help="bandit: suggest a strategy arm each iteration (UCB1)")),
    ("--arms", dict(metavar="A,B,C", help="the bandit's arms (default: " + ",".join(DEFAULT_ARMS) + ")")),
    ("--escalation", dict(metavar="refine=3,pivot=5,search=2,halt=3",
                          help="non-keeps before REFINE / PIVOT, failed pivots before SEARCH / HALT (any subset)")),
    ("--instructions", dict(default="", help="run-specific integrity rules, echoed every iteration")),
    ("--instructions-file", dict()),
    ("--editable", dict(nargs="+", default=[], metavar="PATHSPEC", help="what the agent may change")),
    ("--protect", dict(nargs="+", default=[], metavar="PATHSPEC", help="harness files, never edited")),
    ("--artifact-glob", dict(action="append", default=[], metavar="GLOB",
                             help="checkpoint files to keep: after a keep the newest match is copied to "
                                  ".ratchet/best/ (repeatable)")),
    ("--output", dict(action="append", default=[], metavar="PATHSPEC",
                      help="what the benchmark writes (caches, logs, build outputs), beyond what its unmodified runs "
                           "write: a candidate's run may write there (repeatable)")),
    ("--artifacts-on-revert", dict(choices=("keep", "remove"), default="keep",
                                   help="what happens to artifacts a reverted iteration's trials created "
                                        "(default keep)")),
    ("--metric", dict(action="append", metavar="NAME:max|min[:MARGIN]",
                      help="another primary metric, read like NAME: value (repeatable): keep when better on one, "
                           "worse on none")),
    ("--constraint", dict(action="append", metavar="'NAME>=X'",
                          help="hard limit read from the report (>=, <=, >, <; repeatable): a violation reverts")),
    ("--warn", dict(action="append", metavar="'NAME<=X'", help="soft limit: recorded and shown, never reverts")),
    ("--guard-command", dict(help="regression gate (e.g. the tests) run on a candidate the metric would keep")),
    ("--guard-metric", dict(action="append", metavar="'NAME>=X'", help="limit read from the guard's output")),
    ("--guard-timeout-seconds", dict(type=_float)),
    ("--holdout-command", dict(help="evaluation the agent never sees, run on the start and final commits at the end")),
    ("--branch", dict(help="experiment branch name (default ratchet/<run-id>)")),
    ("--no-branch", dict(action="store_true", help="stay on the current branch")),
)

# the `loop` flags of its own (the rest of its flags are init's, prefixed init_)
LOOP_FLAGS = ("agent_command", "agent_timeout_seconds", "max_wall_seconds", "max_agent_cost_usd",
              "max_agent_tokens", "parallel")


def default_report_source(flags: dict) -> bool:
    """Fill the report source a user left out with stdout, as `doctor` assumes;
    True when it did (init says so)."""
    if flags.get("run_command") and not flags.get("report_source"):
        flags["report_source"] = "stdout"
        return True
    return False


def copy_init_flags(src, dst, *, prefix: str = "", overrides: bool = False) -> None:
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


def _json(sp, init):
    sp.add_argument("--json", action="store_true")


def _init(sp, init):
    for flag, kw in INIT_FLAGS:
        sp.add_argument(flag, **kw)
    _json(sp, init)


def _chain(sp, init):
    sp.add_argument("--rationale", required=True, help="one line: why this follow-up run, what it changes")
    copy_init_flags(init, sp, overrides=True)
    _json(sp, init)


def _decision(sp, init):
    """iterate and decide: what the change was, for the record."""
    sp.add_argument("--hypothesis", required=True, help="one line: what should improve and why")
    sp.add_argument("--description", default="", help="one line: what was changed")
    sp.add_argument("--critic-pick", help="critic mode: a, b, or none (the critic rejected both)")
    sp.add_argument("--critic-reason", help="critic mode: why")
    sp.add_argument("--proposal-a", help="critic mode: proposer A's summary and plan, one line")
    sp.add_argument("--proposal-b", help="critic mode: proposer B's summary and plan, one line")
    sp.add_argument("--arm", help="--strategy bandit: the strategy arm this change used")
    _json(sp, init)


def _history(sp, init):
    sp.add_argument("--last", type=_int, help="only the last N records")
    sp.add_argument("--all", action="store_true", help="the whole chain: earlier runs' records, then this run's")
    _json(sp, init)


def _tail(sp, init):
    sp.add_argument("--iter", type=_int, dest="iteration")
    sp.add_argument("--trial", type=_int)
    sp.add_argument("--lines", type=_int, default=80)
    sp.add_argument("--guard", action="store_true", help="the guard's output instead of a trial's")


def _score(sp, init):
    sp.add_argument("value")
    sp.add_argument("--trial", type=_int)
    _json(sp, init)


def _loop(sp, init):
    sp.add_argument("--agent-command", help="shell command for one agent step; the prompt is its stdin, or the file "
                                            "named by {prompt_file} in it (saved for later `loop` calls)")
    sp.add_argument("--agent-timeout-seconds", type=_float, help="per agent call (default 1800)")
    sp.add_argument("--max-wall-seconds", type=_float, help="this loop's wall-clock budget")
    sp.add_argument("--max-agent-cost-usd", type=_float, help="the run's agent cost budget (agents that report it)")
    sp.add_argument("--max-agent-tokens", type=_int, help="the run's agent token budget (agents that report it)")
    sp.add_argument("--parallel", type=_int, help="N agents propose at once, each in its own git worktree")
    copy_init_flags(init, sp, prefix="init_")
    sp.epilog = ("Every `init` flag is accepted too: when the repository has no run, `loop` starts one with them "
                 "(init, then baseline); an existing run is continued. Exit 0: the run is over; 3: a budget ran out.")


def _none(sp, init):
    pass


def _verify(sp, init):
    sp.add_argument("--pairs", type=_int, help="pairs to run (default --max-trials)")
    _json(sp, init)


def _ideas(sp, init):
    sp.add_argument("action", choices=("add", "list", "done"))
    sp.add_argument("arg", nargs="*", metavar="TEXT|N")
    _json(sp, init)


def _report(sp, init):
    sp.add_argument("--html", nargs="?", const="", metavar="FILE",
                    help="also write a self-contained HTML report (default .ratchet/report.html)")
    _json(sp, init)


def _diff(sp, init):
    which = sp.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true", help="start commit to best (the default)")
    which.add_argument("--iter", type=_int, dest="iteration", metavar="N",
                       help="iteration N's change: its kept commit, or the patch its revert saved")


def _finalize(sp, init):
    sp.add_argument("--branch", help="the new branch's name (default ratchet/<run-id>-final)")
    sp.add_argument("--split", action="store_true", help="one commit per kept iteration, in order")
    _json(sp, init)


def _doctor(sp, init):
    copy_init_flags(init, sp)
    sp.add_argument("--runs", type=_int, metavar="N",
                    help="runs of the command for the noise (default: up to 5 within 2 minutes)")
    _json(sp, init)


def _demo(sp, init):
    sp.add_argument("--keep", action="store_true", help="keep the demo repository and print its path")


# (verb, its one-line help, the function that adds its flags), in `--help` order;
# `init` comes first: the verbs that copy its flags are handed its parser
VERBS = (
    ("init", "start a run: validate the flags, create the experiment branch", _init),
    ("chain", "start a follow-up run at a stopped run's best commit, with some init flags changed", _chain),
    ("baseline", "measure the unmodified start commit (iteration 0)", _json),
    ("iterate", "measure the agent's change, keep or revert it (one call per iteration)", _decision),
    ("decide", "decide on the trials recorded with run-trial/score", _decision),
    ("status", "compact state of the run", _json),
    ("history", "the records of the run", _history),
    ("tail", "the end of a trial's report, from the traceback when there is one", _tail),
    ("stop", "end the run and return to the branch you started from", _json),
    ("run-trial", "run one trial of the current change and save its report", _json),
    ("score", "record the metric you read from the last trial's report", _score),
    ("loop", "headless: run a fresh agent per iteration until the run stops or a budget runs out", _loop),
    ("detect", "inspect the project: commands, tracker files, metrics, and a proposed init", _json),
    ("reseal", "at a terminal only: show the run's contract and, once you type the run id, trust its "
               "sealed files as they are now (a new machine without the key, or a change you made yourself)", _none),
    ("clean", "after a trial's processes survived the kill: kill them again, check, unblock trials", _json),
    ("holdout", "evaluate the holdout on the start and the final commit now", _json),
    ("verify", "re-measure the start commit against the best in paired runs: the honest gain", _verify),
    ("ideas", "the ideas backlog: add TEXT, list, done N", _ideas),
    ("report", "the run as Markdown (start, best, verified gain, top wins, Pareto, holdout); --html: a page with "
               "charts", _report),
    ("diff", "the change from the start commit to the best (or one iteration's), editable paths only", _diff),
    ("finalize", "a clean branch from the start commit with the best state (your branches stay untouched)",
     _finalize),
    ("doctor", "preflight before init, with init's flags (none: the current run's): git, a clean tree, the "
               "command runs, the metric is read, trial time, noise, protected paths, timeout", _doctor),
    ("demo", "run the whole loop on a built-in example, no LLM needed", _demo),
)


def verb_of(argv: list) -> str | None:
    """The verb `argv` names when it starts `[-C DIR] VERB`, else None (a
    leading option other than -C, or no verb: the whole parser is needed)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-C"):
        i += 1 if argv[i] != "-C" else 2
    return argv[i] if i < len(argv) and argv[i] in VERB_NAMES else None


def build_parser(argv: list | None = None) -> argparse.ArgumentParser:
    """The parser: the global -C, then each row of VERBS (every verb also
    takes -C after its name, hidden from its help). Given the command line
    `argv` that names a verb, only that verb's row is built (and init's, for
    the verbs that copy its flags): the same parse, without building 23
    sub-parsers to run one (issue 18)."""
    verb = verb_of(argv) if argv is not None else None
    p = Parser(prog="ratchet.py", description="Keep a code change only when a benchmark proves it helped.")
    p.add_argument("-C", dest="cwd", default=".", metavar="DIR", help="run as if started in DIR")
    sub = p.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    wanted = None if verb is None else {verb, "init"} if verb in INIT_USERS else {verb}
    init = None
    for name, help_text, add_flags in VERBS:
        if wanted is not None and name not in wanted:
            continue
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("-C", dest="cwd", default=argparse.SUPPRESS, metavar="DIR", help=argparse.SUPPRESS)
        add_flags(sp, init)
        init = init or sp
    return p


VERB_NAMES = frozenset(row[0] for row in VERBS)
INIT_USERS = ("init", "chain", "loop", "doctor")  # the verbs whose flags copy init's
