"""The handlers of the verbs around a run (chain, loop, detect, clean,
reseal, finalize, doctor, demo): each imports its verb module when it runs,
so a verb loads only what it needs."""

import json
import os
import sys

from ..core import term
from ..core.errors import UsageError
from .emit import emit
from .flags import LOOP_FLAGS, default_report_source


def cmd_chain(a):
    from ..verbs import chain
    run, record = chain.chain(a.cwd, a.rationale, chain.verb_flags(vars(a)))
    cfg = run.config
    human = (chain.describe(record, cfg.branch) + "\n"
             + (f"archived the previous run to .ratchet/runs/{run.state.archived}\n" if run.state.archived else "")
             + "next: run `ratchet.py baseline`")
    emit(a, human, {"config": cfg.to_dict(), "parent": record, "archived": run.state.archived})


def cmd_loop(a):
    from ..verbs.loop import headless
    given = {k: getattr(a, k) for k in LOOP_FLAGS}
    init_flags = {k[len("init_"):]: v for k, v in vars(a).items() if k.startswith("init_")}
    default_report_source(init_flags)
    return headless.main(a.cwd, given, init_flags if init_flags.get("run_command") else None)


def cmd_detect(a):
    from ..verbs import detect
    from ..io import gitops
    if not os.path.isdir(a.cwd):
        raise UsageError(f"{a.cwd} is not a directory")
    try:  # commands and report paths are relative to the repository root, so look from there
        root = gitops.find_root(a.cwd)
    except UsageError:
        root = a.cwd
    report = detect.detect(root)
    emit(a, detect.human(report), report)


def cmd_clean(a):
    from ..io import gitops, unclean
    note = unclean.set_aside_if_corrupt(gitops.find_root(a.cwd))
    done = unclean.clean(gitops.find_root(a.cwd))
    killed, spared = done or (None, [])
    if note:
        human = note
    elif killed is None:
        human = "nothing to clean: no trial left processes behind"
    else:
        human = (f"killed {len(killed)} leftover process(es); " if killed else "") + \
            "no process of the earlier trial is left; trials may run again" + \
            (f" (left alone, as not provably a trial's: {', '.join(str(p['pid']) for p in spared)})" if spared else "")
    emit(a, human, {"marker": killed is not None or bool(note), "killed": killed or [], "spared": spared,
                    "note": note})


def _printable(text: str) -> str:
    """A forged file's text must not drive the terminal that asks for trust."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def cmd_reseal(a):
    """A person at a terminal, never a script or an agent (no TTY there),
    decides that the run's files as they are now are the contract."""
    from ..io import gitops, seal, store as storemod, store_seal
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
    for line in store_seal.seal_problems(root) or ["(none: every sealed file verifies)"]:
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
    done = store_seal.trust(root)
    print(f"resealed {', '.join(done)} with the key {seal.key_path(cfg['run_id'])}")


def cmd_finalize(a):
    from ..verbs import ship
    result = ship.finalize(a.cwd, a.branch, a.split)
    emit(a, ship.describe(result, color=term.use_color()), result, painted=True)


def cmd_doctor(a):
    from ..verbs import doctor
    flags = {k: v for k, v in vars(a).items() if k not in ("verb", "cwd", "json", "runs")}
    result = doctor.doctor(a.cwd, flags, a.runs)
    emit(a, doctor.human(result, color=term.use_color()), result, painted=True)
    return 0 if result["ok"] else 2


def cmd_demo(a):
    from ..verbs import demo
    return demo.main(keep=a.keep)

