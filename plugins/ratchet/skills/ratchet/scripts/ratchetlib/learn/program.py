"""`.ratchet/program.md`: the one page an agent needs to resume the run.

After a context compaction or in a new session the agent has lost everything
but the repository; this document plus `status` must be enough to continue.
It is regenerated after every decision from O(1) inputs (config, state, the
hints memory, a few recent records), and stays under MAX_BYTES whatever the
history length: every field is clipped, every list capped, and when the whole
is still too long the oldest history lines go first, since `history` can
always show them.
"""

import math

from ..core import change
from ..core import escalation as escalation_mod
from .hints import MAX_HINTS
from ..core.text import clip

MAX_BYTES = 3000
RECENT_LINES = 8
IDEA_LINES = 3


def _finite(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _num(value):
    return f"{value:.6g}" if _finite(value) else "n/a"


def _pct(record, direction):
    """The record's (or memory entry's) figure: the metric's own change (change.py)."""
    if "change" in record:
        value = record["change"]
    elif "effect" in record:  # a memory entry written before `change`
        value = change.metric_change(record["effect"], direction)
    else:
        value = change.record_change(record, direction)
    return "" if value is None else f" {change.percent(value)}"


def _paths(specs, empty):
    if not specs:
        return empty
    shown, rest = [], list(specs)
    while rest and len(", ".join(shown + [rest[0]])) <= 110:
        shown.append(rest.pop(0))
    text = ", ".join(shown) or clip(rest.pop(0), 110)
    return text + (f" (+{len(rest)} more)" if rest else "")


def _goal(config, state):
    verb = "Minimize" if config.get("direction") == "min" else "Maximize"
    lines = [f"{verb} `{clip(config.get('metric_name'), 40)}` from "
             f"`{clip(config.get('run_command'), 60)}` "
             f"(read from {clip(config.get('report_source'), 40)})."]
    progress = (f"Iteration {state.get('iteration', -1)} of {config.get('iterations', '?')}: "
                f"{state.get('keeps', 0)} kept, {state.get('reverts', 0)} reverted, "
                f"{state.get('crashes', 0)} crashed; {state.get('since_keep', 0)} since the last keep.")
    lines.append(progress)
    if state.get("stop"):
        lines.append(f"STOPPED: {clip(state['stop'], 120)}.")
    return lines


def _rules(config):
    lines = ["- One focused change per iteration, then `ratchet.py iterate --hypothesis ...`;"
             " the CLI measures and keeps or reverts.",
             "- Never edit protected paths, the benchmark or its checks."]
    if config.get("instructions"):
        lines.append(f"- Run instructions: {clip(config['instructions'], 200)}")
    if config.get("instructions_file"):
        lines.append(f"- Read the rules in `{clip(config['instructions_file'], 60)}`.")
    return lines


def _best(state, direction="max"):
    line = (f"Baseline {_num(state.get('baseline'))}; best {_num(state.get('best'))}"
            f" at iter {state.get('best_iter', '?')}; incumbent {_num(state.get('incumbent_score'))}.")
    verified = state.get("verified")
    if isinstance(verified, dict) and _finite(verified.get("gain_pct")):
        pct, interval = change.verified_change(verified, direction, state.get("log_scale", True) is not False)
        bounds = f" {change.bracket(interval[0] / 100, interval[1] / 100)}" if interval else ""
        pairs = f" ({verified['pairs']} pairs)" if isinstance(verified.get("pairs"), int) else ""
        return [line, f"Verified gain: {change.percent(pct / 100 if pct is not None else None)}{bounds}{pairs}."]
    return [line, "Verified gain: not measured yet."]


def _history(records, direction):
    lines = []
    for record in list(records or [])[-RECENT_LINES:]:
        lines.append(f"- iter {record.get('iter')} {record.get('decision')}{_pct(record, direction)}: "
                     f"{clip(record.get('hypothesis') or record.get('description'), 55)}")
    return lines or ["- (none yet)"]


def _fit(head, history, tail):
    """Join the sections, dropping the oldest history lines until it fits."""
    history = list(history)
    while True:
        text = "\n".join(head + history + tail) + "\n"
        if len(text.encode("utf-8")) <= MAX_BYTES or not history:
            break
        history.pop(0)
    data = text.encode("utf-8")
    if len(data) > MAX_BYTES:  # only inputs far beyond every clip above get here
        marker = "\n…\n"
        keep = MAX_BYTES - len(marker.encode("utf-8"))
        text = data[:keep].decode("utf-8", "ignore") + marker
    return text


def render(config, state, memory, hints, escalation, arm, ideas, recent_records):
    """The resume document as text (at most MAX_BYTES bytes of UTF-8).

    `state["verified"]`, when `verify` has run, is read as present/figures.py reads it:
    {"gain_pct": 3.1, "interval": [1.2, 5.0], "pairs": 8} (percent, positive
    = better).

    `hints`: the lines from hints.hints; `escalation`: the escalation state
    dict (or None); `arm`: the suggested arm or its bandit.explain line (or
    None without a bandit); `ideas`: open ideas, best first; `recent_records`:
    the last records, full or as memory["recent"] entries (None uses memory's).
    """
    state = state or {}
    records = recent_records if recent_records is not None else (memory or {}).get("recent", [])
    head = ["# ratchet program", "Resume: run `ratchet.py status`, then continue the loop below.",
            "", "## Goal", *_goal(config, state),
            "", "## Rules", *_rules(config),
            "", "## Paths",
            f"- editable: {_paths(config.get('editable'), 'every path not protected')}",
            f"- protected: {_paths(config.get('protect'), 'none')}",
            "", "## Best", *_best(state, config.get("direction")),
            "", "## Recent history"]
    shown = [f"- {clip(h, 160)}" for h in list(hints or [])[:MAX_HINTS]]
    tail = ["", "## Hints", *(shown or ["- none"])]
    if escalation:
        tail += ["", "## Escalation", clip(escalation_mod.directive(escalation), 160)]
    if arm:
        tail += ["", "## Suggested strategy arm", clip(arm, 80)]
    open_ideas = list(ideas or [])[:IDEA_LINES]
    if open_ideas:
        tail += ["", "## Ideas (`ratchet.py ideas list`)",
                 *[f"- #{i['id']} {clip(i['text'], 100)}" for i in open_ideas]]
    return _fit(head, _history(records, config.get("direction")), tail)
