"""Human-readable text for the agent and the user: short, fixed-size views.

Every view is bounded whatever the history length: the agent reads these
lines every iteration, so their size is its context cost.
"""

import os
import re
from typing import Optional

from ..core import budget
from ..learn import learning
from ..core.decision import progress
from ..core.text import clip, num as fmt, ratio_pct
from ..io.store import _alive

_MAX_LINE = 160


def next_line(state: dict) -> str:
    return f"next: stop ({state['stop']})" if state.get("stop") else "next: continue"


def _pct(delta: Optional[float], base: Optional[float]) -> str:
    share = ratio_pct(delta, base)
    return f" ({share})" if share else ""


def verdict(run, rec: dict, notes: list, snap: Optional[dict] = None) -> str:
    """The ~6-line answer to `iterate`/`decide` (plus at most 6 learning
    lines: similarity warning, near miss, escalation, hints, arm); last line
    is `next: ...`."""
    cfg, st = run.config, run.state
    lines = [f"recovered: {n}" for n in notes]
    scores = " ".join(fmt(s) for s in rec["trial_scores"]) or "none"
    head = f"iter {rec['iter']}: {rec['decision'].upper()}"
    if rec.get("avg") is not None:
        head += f"  {cfg.metric_name} {fmt(rec['avg'])} vs {fmt(rec.get('incumbent'))}{_pct(rec.get('delta'), rec.get('incumbent'))}"
    if rec.get("incumbent_scores"):
        shown = [f"{fmt(i)}|{fmt(c)}" for i, c in zip(rec["incumbent_scores"], rec["trial_scores"])]
        head += "  [pairs incumbent|candidate: " + " ".join(shown[:6]) + (" …" if len(shown) > 6 else "") + "]"
    else:
        head += f"  [trials: {scores}]"
    lines.append(head)
    lines.append(clip(rec["reason"], 300))
    if rec.get("sha") and rec["decision"] == "keep":
        lines.append(f"committed {rec['sha'][:10]} on {cfg.branch}")
    elif rec.get("patch"):
        lines.append(f"reverted; the change is saved in .ratchet/{rec['patch']}")
    if rec["decision"] in ("crash", "timeout"):
        lines.append(f"diagnose with: ratchet.py tail --iter {rec['iter']}")
    lines += integrity_lines(rec)
    from ..keep.paired import verified_line
    vline = verified_line(st.get("verified"), cfg.direction, st.get("log_scale", True))
    if (st.get("verified") or {}).get("at_iteration") == rec["iter"] and vline:
        lines.append(vline)
    elif getattr(run, "verify_error", None):
        lines.append(clip(f"verify could not run: {run.verify_error}", 200))
    if getattr(run, "holdout", None):
        lines.append("holdout: evaluated on the start and final commits; `ratchet.py status` shows it to the user")
    lines.append(f"best {fmt(st.get('best'))} (iter {st.get('best_iter')}) · " + " · ".join(progress(st, cfg)))
    lines += learning.verdict_lines(run, rec, snap or learning.snapshot(run))
    if cfg.instructions:
        lines.append("instructions: " + clip(cfg.instructions, 240))
    lines.append(next_line(st))
    return "\n".join(lines)


def integrity_lines(rec: dict) -> list:
    """The extra verdict lines of issue 4: metrics compared, warnings, the guard."""
    lines = []
    if rec.get("compare"):
        m = rec.get("metrics") or {}
        lines.append(clip("metrics: " + " · ".join(f"{n} {fmt(m.get(n))} {v}" for n, v in rec["compare"].items()), 160))
    if rec.get("warnings"):
        lines.append(clip("warnings (soft limits, not a revert): " + "; ".join(rec["warnings"]), 160))
    if rec["decision"] == "guard-failed":
        lines.append(f"guard output: ratchet.py tail --guard --iter {rec['iter']}"
                     + (f"; fix and re-apply: git apply .ratchet/{rec['patch']}" if rec.get("patch") else ""))
    return lines


def baseline(run, rec: dict, notes: list) -> str:
    lines = [f"recovered: {n}" for n in notes]
    scores = " ".join(fmt(s) for s in rec["trial_scores"])
    lines.append(f"baseline: {run.config.metric_name} {fmt(rec['avg'])}  [trials: {scores}]")
    from ..keep.paired import calibration_lines
    lines += calibration_lines(run.config, rec, run.state)
    if len(rec.get("metrics") or {}) > 1:
        lines.append(clip("metrics: " + " · ".join(f"{n} {fmt(v)}" for n, v in rec["metrics"].items()), 200))
    if rec.get("warnings"):
        lines.append(clip("warnings (soft limits): " + "; ".join(rec["warnings"]), 240))
    lines.append(next_line(run.state))
    return "\n".join(lines)


def status(run, recent: list, snap: Optional[dict] = None, trend: str = "", notes: Optional[list] = None,
           busy: Optional[dict] = None) -> str:
    """`notes`: what this status just recovered; `busy`: the lock of the live
    command working now (status then only looks)."""
    cfg, st = run.config, run.state
    base, best = st.get("baseline"), st.get("best")
    gain = _pct(None if best is None or base is None else best - base, base)
    lines = [
        f"run {cfg.run_id} on {cfg.branch} · {cfg.metric_name} ({'higher' if cfg.direction == 'max' else 'lower'} is better)",
        f"baseline {fmt(base)} · best {fmt(best)}{gain} at iter {st.get('best_iter')} · last {fmt(st.get('last_score'))}",
        " · ".join(progress(st, cfg)),
    ]
    from ..keep.paired import verified_line
    vline = verified_line(st.get("verified"), cfg.direction, st.get("log_scale", True))
    if vline:
        lines.insert(2, vline)
    counts = st.get("counts") or {}
    if counts:
        lines.append("so far: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if k != "baseline"))
    if recent:
        lines.append("recent: " + ", ".join(f"{r['iter']} {r['decision']}" for r in recent))
    if trend:
        lines.append(trend)
    lines += learning.status_lines(run, snap or learning.snapshot(run))
    warned = next((r for r in reversed(recent) if r.get("warnings")), None)
    if warned:
        lines.append(clip(f"warnings at iter {warned['iter']}: " + "; ".join(warned["warnings"]), 200))
    if st.get("pareto"):
        lines.append(clip(f"pareto frontier: {len(st['pareto'])} kept result(s) (iters "
                           f"{', '.join(str(p['iter']) for p in st['pareto'][-8:])}); `status --json` has them", 160))
    if holdout_line(run):
        lines.append(holdout_line(run))
    from ..io.lineage import summary as chained
    origin = chained(run.store)
    if origin:
        lines.append(clip(origin, _MAX_LINE))
    if cfg.instructions:
        lines.append("instructions: " + clip(cfg.instructions, 300))
    loop = run.store.read_loop()
    if loop and loop.get("status") == "running" and not _alive(loop):
        loop = {**loop, "status": "killed", "reason": f"pid {loop.get('pid')} is gone; `ratchet.py loop` resumes"}
    agent_line = budget.status_line(st.get("agent"), loop)
    if agent_line:
        lines.append(agent_line)
    last = st.get("recovered") or {}
    if not notes and last.get("notes") and st.get("iteration", -1) - last.get("iteration", -1) <= 5:
        lines.append(clip(f"last recovery (#{last.get('count')}, {last.get('at')}, after iter {last.get('iteration')}): "
                           + "; ".join(last["notes"]), 240))
    lines.append(next_line(st) if st.get("iteration", -1) >= 0 or st.get("stop") else "next: run `ratchet.py baseline`")
    head = [f"recovered: {n}" for n in notes or ()]
    if busy:
        head.append(f"working: `{busy.get('verb')}` (pid {busy.get('pid')}) since {busy.get('started')}")
    return "\n".join(head + lines)


def holdout_view(run) -> Optional[dict]:
    """What `status` may show of the holdout: all of it once the run has
    stopped, only whether it ran while the agent is still optimizing."""
    if not run.config.holdout_command:
        return None
    from ..measure.holdout import load
    doc = load(run.store.root)
    if run.state.get("stop"):
        return doc or {"summary": "not run yet; run `ratchet.py holdout`"}
    return {"measured": doc is not None, "summary": "hidden until the run stops"}


def holdout_line(run) -> Optional[str]:
    view = holdout_view(run)
    return None if view is None else clip("holdout: " + view.get("summary", ""), 240)


def history_line(r: dict) -> str:
    delta = "" if r.get("delta") is None else " " + fmt(r["delta"], sign=True)
    hyp = clip(r.get("hypothesis", ""), 120)
    return f"{r['iter']:>4} {r['decision']:<9} {fmt(r.get('avg')):>12}{delta:<12}  {hyp}"


_TRACEBACK = "Traceback (most recent call last)"
# Launchers that re-raise a worker's failure as their own exception: the worker's traceback is the cause.
_WRAPPERS = ("ChildFailedError", "CalledProcessError")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TAIL_WINDOW = 4 * 1024 * 1024
_TAIL_LINE = 400


def _cause_start(data: list):
    """Index of the traceback to show: the last one that is not a launcher wrapper's."""
    starts = [i for i, line in enumerate(data) if _TRACEBACK in line]
    for n in range(len(starts) - 1, -1, -1):
        end = starts[n + 1] if n + 1 < len(starts) else len(data)
        if not any(w in line for line in data[starts[n]:end] for w in _WRAPPERS):
            return starts[n]
    return starts[-1] if starts else None


def tail_text(path: str, lines: int) -> str:
    """The last `lines` lines of `path`, starting at the last Python traceback
    when there is one, so a crash's cause is in view without the noise.

    Built for long training logs: only the last 4 MiB are read; progress bars
    redrawn with carriage returns count as separate lines; colour codes are
    stripped and very long lines clipped; a traceback prefixed per rank
    (`[rank0]: Traceback ...`) counts; and when the last traceback is a
    launcher's wrapper (torchrun's ChildFailedError, accelerate's
    CalledProcessError), the display starts at the worker's traceback before it.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - _TAIL_WINDOW))
        data = f.read().decode("utf-8", "replace").splitlines()
    if size > _TAIL_WINDOW:
        data = data[1:]
    data = [_clip_line(_ANSI.sub("", line)) for line in data]
    start = _cause_start(data)
    chosen = data[start:] if start is not None else data
    if len(chosen) > lines:
        keep_head = min(10, lines // 4) if start is not None else 0
        cut = len(chosen) - lines + keep_head
        chosen = chosen[:keep_head] + [f"... ({cut} lines cut) ..."] + chosen[-(lines - keep_head):]
    return "\n".join(chosen)


def _clip_line(line: str) -> str:
    return line if len(line) <= _TAIL_LINE else line[:_TAIL_LINE - 1] + "…"
