"""Dispatch: parse the flags, run the verb's handler (COMMANDS), and map
what can go wrong to one line on stderr and an exit code: 0 ok, 2 usage or
configuration (errors.UsageError, nothing changed), 1 a runtime failure
(errors.RatchetError, state left consistent), 130 Ctrl-C, 143 SIGTERM.
SIGTERM is raised as an exception in the main thread so `finally` blocks
and locks unwind as they do for Ctrl-C."""

import _signal as signal  # CPython's C module under `signal`, without its enums (issue 18: every verb starts here)
import atexit
import os
import sys

from ..core.errors import RatchetError, UsageError, from_os_error
from . import quickargs


def _read(name):
    def handler(a):
        from . import read_verbs
        return getattr(read_verbs, name)(a)
    return handler


def _run(name):
    def handler(a):
        from . import run_verbs
        return getattr(run_verbs, name)(a)
    return handler


def _tool(name):
    def handler(a):
        from . import tool_verbs
        return getattr(tool_verbs, name)(a)
    return handler


# verb -> handler; each handler module is imported when its verb runs, so
# `status` never loads the engine `iterate` needs (issue 18)
COMMANDS = {"init": _run("cmd_init"), "chain": _tool("cmd_chain"), "baseline": _run("cmd_baseline"),
            "iterate": _run("cmd_iterate"), "decide": _run("cmd_decide"), "status": _read("cmd_status"),
            "history": _read("cmd_history"), "tail": _read("cmd_tail"), "stop": _run("cmd_stop"),
            "run-trial": _run("cmd_run_trial"), "score": _run("cmd_score"), "ideas": _read("cmd_ideas"),
            "clean": _tool("cmd_clean"), "reseal": _tool("cmd_reseal"), "detect": _tool("cmd_detect"),
            "holdout": _run("cmd_holdout"), "verify": _run("cmd_verify"), "demo": _tool("cmd_demo"),
            "loop": _tool("cmd_loop"), "report": _read("cmd_report"), "diff": _read("cmd_diff"),
            "finalize": _tool("cmd_finalize"), "doctor": _tool("cmd_doctor")}


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


def _parse(argv: list):
    """argparse, for every command line quickargs does not read (the other
    verbs, help, usage mistakes): loaded only then (issue 18)."""
    from .flags import build_parser
    return build_parser(argv).parse_args(argv)


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        argv = _glued(sys.argv[1:] if argv is None else list(argv))
        args = quickargs.read_argv(argv) or _parse(argv)
        if not args.verb:
            from .flags import build_parser
            build_parser().print_help()
            return 2
        return COMMANDS[args.verb](args) or 0
    except (UsageError, RatchetError) as e:
        from ..core import term
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
        from ..core import term
        print(f"ratchet: error: {term.printable(known, multiline=False)}", file=sys.stderr)
        return known.exit_code


def exit_process(code: int) -> None:
    """End the process with `code` once its verb is done, skipping the
    interpreter's teardown: freeing every object of the ~200 modules an
    `iterate` loads took ~14 ms of it (issue 18; mypy's hard_exit does the
    same). What a normal exit runs before that teardown still runs, in its
    order: a live non-daemon thread makes it a normal exit, then the atexit
    handlers run (runner's sweep of live trials, tempfile's finalizers),
    then stdout and stderr are flushed (a closed pipe loses nothing more
    than it would; any other failed flush turns a 0 into 120, as Python's
    own exit does). Every file ratchet writes is closed where it is
    written, so none waits for the teardown."""
    threading = sys.modules.get("threading")
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is None or threading is not None and any(
            t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate()):
        sys.exit(code)
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # the reader left (`| head`): main() answers 0 for it too
            pass
        except (OSError, ValueError):  # a full disk: the output is lost, so not a success (Python says 120)
            code = code or 120
    os._exit(code)
