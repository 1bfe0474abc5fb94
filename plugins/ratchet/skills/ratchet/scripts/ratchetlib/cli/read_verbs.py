"""The handlers of the verbs that read the run and change nothing of it but
the ideas backlog (status, history, tail, ideas, report, diff): load, render
with present/, print (emit). Each handler imports what it uses when it
runs: `status`, `history` and `tail` are called hundreds of times a night,
so they load only their own modules (issue 18)."""

import os
import sys

from ..core.errors import UsageError
from ..io import workspace
from .emit import emit


def cmd_status(a):
    from ..keep import recover
    from ..learn import learning
    from ..core import headline
    from ..present import trend as trends
    from ..verbs import show
    run = workspace.open_run(a.cwd)
    notes, busy = recover.recover_for_status(run)
    tail = run.store.records(last=trends.TREND_WIDTH)  # a bounded tail: status never reads the whole history
    recent, trend = tail[-5:], trends.trend(tail)
    st = run.state
    data = {"run_id": run.config.run_id, "iteration": st.iteration, "best": st.best,
            "baseline": st.baseline, "stop": st.stop, "state": st.to_json(),
            "config": run.config.to_dict(), "recent": recent, "pareto": st.pareto,
            "holdout": show.holdout_view(run), "loop": run.store.read_loop()}
    snap = learning.facts(run)
    data.update(hints=snap["hints"], escalation=snap["escalation"], arm=snap["arm"], ideas=snap["ideas"],
                open_ideas=snap["open_ideas"], critic=snap["critic"])
    data.update(trend=trend, recent_scores=[r.get("avg") for r in tail], recovered=notes, busy=busy,
                gain=headline.gain_line(st, run.config.direction, run.config.decision == "paired"))
    emit(a, show.run_status(run, recent, snap, trend, notes, busy), data)


def cmd_history(a):
    from ..learn import critic
    from ..present import views
    if a.all:
        return _history_all(a)
    run = workspace.open_run(a.cwd)
    recs = run.store.records(last=a.last) if a.last else run.store.records()
    summary = critic.critic_summary_of(recs)
    lines = [views.history_line(r, run.config.direction) for r in recs] + ([summary["line"]] if summary else [])
    emit(a, "\n".join(lines) or "no records yet", recs)


def _history_all(a):
    from ..core.text import clip
    from ..io import lineage
    from ..present import views
    run = workspace.open_run(a.cwd)
    runs = lineage.runs(run.store, run.config.run_id)
    lines = []
    for r in runs:
        p = r["parent"]
        head = f"== run {r['run_id']}"
        if p:
            head += f" (chained from {p.get('parent_run_id')} at its best {p.get('best')!r}: {p.get('rationale', '')})"
        lines.append(clip(head + " ==", 200) if not r["missing"] else head + " (archive missing) ==")
        recs = r["records"][-a.last:] if a.last else r["records"]
        lines += [views.history_line(x, run.config.direction) for x in recs] or ["no records"]
    emit(a, "\n".join(lines), runs)


def cmd_tail(a):
    from ..core import term
    from ..verbs import tail as logtail
    run = workspace.open_run(a.cwd)
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
    tb = next((p for p in found if "Traceback (most recent call last)" in logtail.tail_text(p, 10 ** 6)), found[0])
    print(term.printable(f"== {os.path.relpath(tb, run.repo)} (iteration {it}, trial {k}) =="))
    print(term.printable(logtail.tail_text(tb, max(a.lines, 5))))


def _tail_guard(run, it, lines):
    from ..core import term
    from ..measure import guard
    from ..verbs import tail as logtail
    if it is None:
        it = next((r["iter"] for r in reversed(run.store.records(last=50)) if r.get("guard")), None)
    path = guard.report_path(run.store, it) if it is not None else None
    if path is None or not os.path.exists(path):
        raise UsageError("no guard output" + (f" for iteration {it}" if it is not None else " yet"))
    print(term.printable(f"== {os.path.relpath(path, run.repo)} (guard, iteration {it}) =="))
    print(term.printable(logtail.tail_text(path, max(lines, 5))))


def cmd_ideas(a):
    from ..learn import learning
    run = workspace.open_run(a.cwd)
    text = " ".join(a.arg)
    if a.action == "add":
        idea = learning.ideas_add(run, text)
        emit(a, f"idea #{idea['id']}: {idea['text']}", idea)
    elif a.action == "done":
        if len(a.arg) != 1:
            raise UsageError("usage: ideas done N (the number `ideas list` shows)")
        idea = learning.ideas_done(run, a.arg[0])
        emit(a, f"idea #{idea['id']} done", idea)
    else:
        if a.arg:
            raise UsageError("`ideas list` takes no arguments")
        shown = learning.top_ideas(run)[0]
        emit(a, "\n".join(f"#{i['id']} [{i['source']}] {i['text']}" for i in shown) or
              "no open ideas; add one with `ratchet.py ideas add TEXT`", shown)


def cmd_report(a):
    from ..verbs import report
    md, out = report.run_report(workspace.open_run(a.cwd), a.cwd, a.html, a.json)
    emit(a, md.rstrip("\n"), out)


def cmd_diff(a):
    from ..core import term
    from ..verbs import ship
    text, what = ship.diff(a.cwd, a.iteration, color=term.use_color())
    if not text:
        print(f"ratchet: {what}: no change", file=sys.stderr)
        return 0
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


