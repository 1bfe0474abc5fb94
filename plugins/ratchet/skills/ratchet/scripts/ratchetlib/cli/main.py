"""Dispatch: parse the flags, run the verb's handler (COMMANDS), and map
what can go wrong to one line on stderr and an exit code: 0 ok, 2 usage or
configuration (errors.UsageError, nothing changed), 1 a runtime failure
(errors.RatchetError, state left consistent), 130 Ctrl-C, 143 SIGTERM.
SIGTERM is raised as an exception in the main thread so `finally` blocks
and locks unwind as they do for Ctrl-C."""

import signal
import sys

from ..core import term
from ..core.errors import RatchetError, UsageError, from_os_error
from . import read_verbs as read, run_verbs as run, tool_verbs as tool
from .flags import build_parser

COMMANDS = {"init": run.cmd_init, "chain": tool.cmd_chain, "baseline": run.cmd_baseline, "iterate": run.cmd_iterate,
            "decide": run.cmd_decide, "status": read.cmd_status, "history": read.cmd_history, "tail": read.cmd_tail,
            "stop": run.cmd_stop, "run-trial": run.cmd_run_trial, "score": run.cmd_score, "ideas": read.cmd_ideas,
            "clean": tool.cmd_clean, "reseal": tool.cmd_reseal, "detect": tool.cmd_detect,
            "holdout": run.cmd_holdout, "verify": run.cmd_verify, "demo": tool.cmd_demo, "loop": tool.cmd_loop,
            "report": read.cmd_report, "diff": read.cmd_diff, "finalize": tool.cmd_finalize,
            "doctor": tool.cmd_doctor}


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so cleanup (finally, locks) runs."""


def _on_sigterm(signum, frame):
    raise Terminated()


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
