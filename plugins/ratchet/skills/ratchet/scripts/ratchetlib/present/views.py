"""Human-readable text for the agent and the user: short, fixed-size views.

Every view is bounded whatever the history length: the agent reads these
lines every iteration, so their size is its context cost.

Pure: each view renders what it is handed. verbs/show.py gathers the
inputs (the learning snapshot, the verified and holdout lines, a chained
run's origin, the loop's record), so printing a verdict reads no file:
the learning lines come from the snapshot `learning.persist` already made.
"""


from __future__ import annotations

from ..core import budget, change, headline
from ..core.decision import progress
from ..core.text import clip, num, ratio_pct
from ..core.state import RunState

_MAX_LINE = 160


def next_line(state: RunState) -> str:
    return f"next: stop ({state.stop})" if state.stop else "next: continue"


def _pct(delta: float | None, base: float | None) -> str:
    share = ratio_pct(delta, base)
    return f" ({share})" if share else ""


def _head(cfg, rec: dict) -> str:
    """`iter 3: KEEP  score 12 vs 10 (+20.00%)  [trials: ...]` (the mean rule), or
    `iter 3: KEEP  score, 2 pairs incumbent|candidate: 10|12 10|12` (paired):
    a paired verdict's one effect figure is the test's, in the reason line, so
    the head shows the raw pairs and no mean difference to contradict it."""
    head = f"iter {rec['iter']}: {rec['decision'].upper()}"
    if rec.get("incumbent_scores"):
        shown = [f"{num(i)}|{num(c)}" for i, c in zip(rec["incumbent_scores"], rec["trial_scores"])]
        return (f"{head}  {cfg.metric_name}, {len(shown)} pair{'s' if len(shown) != 1 else ''} incumbent|candidate: "
                + " ".join(shown[:6]) + (" …" if len(shown) > 6 else ""))
    if rec.get("avg") is not None:
        head += (f"  {cfg.metric_name} {num(rec['avg'])} vs {num(rec.get('incumbent'))}"
                 f"{_pct(rec.get('delta'), rec.get('incumbent'))}")
    return head + f"  [trials: {' '.join(num(s) for s in rec['trial_scores']) or 'none'}]"


def verdict_text(cfg, st: RunState, rec: dict, notes: list, *, learned: list = (), verified: str | None = None,
            verify_error: str | None = None, holdout_ran: bool = False) -> str:
    """The ~6-line answer to `iterate`/`decide` (plus at most 6 learning
    lines, `learned`: similarity warning, near miss, escalation, hints, arm);
    last line is `next: ...`. `verified` is the verified-gain line, shown
    when this iteration ran the verify; `holdout_ran` when it ran the holdout."""
    lines = [f"recovered: {n}" for n in notes]
    lines.append(_head(cfg, rec))
    lines.append(clip(rec["reason"], 300))
    if rec.get("sha") and rec["decision"] == "keep":
        lines.append(f"committed {rec['sha'][:10]} on {cfg.branch}")
    elif rec.get("patch"):
        lines.append(f"reverted; the change is saved in .ratchet/{rec['patch']}")
    if rec["decision"] in ("crash", "timeout"):
        lines.append(f"diagnose with: ratchet.py tail --iter {rec['iter']}")
    lines += integrity_lines(rec)
    if (st.verified or {}).get("at_iteration") == rec["iter"] and verified:
        lines.append(verified)
    elif verify_error:
        lines.append(clip(f"verify could not run: {verify_error}", 200))
    unconfirmed = headline.threshold_line(st, cfg)
    if unconfirmed:
        lines.append(clip(unconfirmed, 240))
    if holdout_ran:
        lines.append("holdout: evaluated on the start and final commits; `ratchet.py status` shows it to the user")
    lines.append(f"best {num(st.best)} (iter {st.best_iter}) · " + " · ".join(progress(st, cfg)))
    lines += learned
    if cfg.instructions:
        lines.append("instructions: " + clip(cfg.instructions, 240))
    lines.append(next_line(st))
    return "\n".join(lines)


def integrity_lines(rec: dict) -> list:
    """The extra verdict lines of issue 4: metrics compared, warnings, the guard."""
    lines = []
    if rec.get("compare"):
        m = rec.get("metrics") or {}
        lines.append(clip("metrics: " + " · ".join(f"{n} {num(m.get(n))} {v}" for n, v in rec["compare"].items()), 160))
    if rec.get("warnings"):
        lines.append(clip("warnings (soft limits, not a revert): " + "; ".join(rec["warnings"]), 160))
    if rec["decision"] == "guard-failed":
        lines.append(f"guard output: ratchet.py tail --guard --iter {rec['iter']}"
                     + (f"; fix and re-apply: git apply .ratchet/{rec['patch']}" if rec.get("patch") else ""))
    return lines


def baseline_text(cfg, st: RunState, rec: dict, notes: list, calibration: list = ()) -> str:
    """`baseline`'s answer; `calibration` the noise lines (paired.calibration_lines)."""
    lines = [f"recovered: {n}" for n in notes]
    scores = " ".join(num(s) for s in rec["trial_scores"])
    lines.append(f"baseline: {cfg.metric_name} {num(rec['avg'])}  [trials: {scores}]")
    lines += calibration
    if len(rec.get("metrics") or {}) > 1:
        lines.append(clip("metrics: " + " · ".join(f"{n} {num(v)}" for n, v in rec["metrics"].items()), 200))
    if rec.get("warnings"):
        lines.append(clip("warnings (soft limits): " + "; ".join(rec["warnings"]), 240))
    lines.append(next_line(st))
    return "\n".join(lines)


def status_text(cfg, st: RunState, recent: list, facts: dict) -> str:
    """`status` for people. `facts` (every key optional): `trend` (the
    sparkline line), `learned` (learning.status_lines), `verified` (the
    verified-gain line), `holdout` (the holdout view), `origin` (a chained
    run's line), `loop` (loop.json, marked killed when its pid is gone),
    `notes` (what this status just recovered), `busy` (the lock of the live
    command working now: status then only looks)."""
    best = headline.naive(st) if st.best_iter else f"best {num(st.best)} at iter {st.best_iter}"
    lines = [  # the progress shares the baseline's line, so the headline below costs no line of the bound
        f"run {cfg.run_id} on {cfg.branch} · {cfg.metric_name} ({'higher' if cfg.direction == 'max' else 'lower'} is better)",
        " · ".join([f"baseline {num(st.baseline)}", best, f"last {num(st.last_score)}"]
                   + progress(st, cfg)),
    ]
    if facts.get("verified"):
        lines.insert(2, facts["verified"])
    unconfirmed = headline.threshold_line(st, cfg)
    if unconfirmed:
        lines.append(clip(unconfirmed, 240))
    lines += _so_far(st, recent, facts)
    lines += _status_tail(cfg, st, facts)
    notes, busy = facts.get("notes"), facts.get("busy")
    head = [f"recovered: {n}" for n in notes or ()]
    if busy:
        head.append(f"working: `{busy.get('verb')}` (pid {busy.get('pid')}) since {busy.get('started')}")
    return "\n".join(head + lines)


def _so_far(st: RunState, recent: list, facts: dict) -> list:
    """Counts, the recent decisions, the trend, learning, warnings, the frontier."""
    lines = []
    counts = st.counts or {}
    if counts:
        lines.append("so far: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if k != "baseline"))
    if recent:
        lines.append("recent: " + ", ".join(f"{r['iter']} {r['decision']}" for r in recent))
    if facts.get("trend"):
        lines.append(facts["trend"])
    lines += facts.get("learned") or []
    warned = next((r for r in reversed(recent) if r.get("warnings")), None)
    if warned:
        lines.append(clip(f"warnings at iter {warned['iter']}: " + "; ".join(warned["warnings"]), 200))
    if st.pareto:
        lines.append(clip(f"pareto frontier: {len(st.pareto)} kept result(s) (iters "
                          f"{', '.join(str(p['iter']) for p in st.pareto[-8:])}); `status --json` has them", 160))
    return lines


def _status_tail(cfg, st: RunState, facts: dict) -> list:
    """Holdout, chained origin, instructions, the agent's spend, the last recovery, next."""
    lines = []
    held = holdout_line(facts.get("holdout"))
    if held:
        lines.append(held)
    if facts.get("origin"):
        lines.append(clip(facts["origin"], _MAX_LINE))
    if cfg.instructions:
        lines.append("instructions: " + clip(cfg.instructions, 300))
    agent_line = budget.status_line(st.agent, facts.get("loop"))
    if agent_line:
        lines.append(agent_line)
    last = st.recovered or {}
    if not facts.get("notes") and last.get("notes") and st.iteration - last.get("iteration", -1) <= 5:
        lines.append(clip(f"last recovery (#{last.get('count')}, {last.get('at')}, after iter {last.get('iteration')}): "
                          + "; ".join(last["notes"]), 240))
    lines.append(next_line(st) if st.iteration >= 0 or st.stop else "next: run `ratchet.py baseline`")
    return lines


def holdout_line(view: dict | None) -> str | None:
    """`holdout: ...` from what `status` may show of the holdout, or None."""
    return None if view is None else clip("holdout: " + view.get("summary", ""), 240)


def history_line(r: dict, direction: str = "max") -> str:
    """One record: iter, decision, avg, its effect, hypothesis. The effect of a
    paired decision is the test's estimate (the metric's change), not the
    difference of means, which one off run can turn the other way."""
    chg = change.record_change(r, direction) if isinstance(r.get("estimate"), (int, float)) else None
    if chg is not None:
        delta = " " + change.percent(chg, with_factor=False)
    else:
        delta = "" if r.get("delta") is None else " " + num(r["delta"], sign=True)
    hyp = clip(r.get("hypothesis", ""), 120)
    return f"{r['iter']:>4} {r['decision']:<9} {num(r.get('avg')):>12}{delta:<12}  {hyp}"
