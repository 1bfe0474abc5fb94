"""The loop that learns: where the decision meets hints, escalation, the
bandit, the ideas backlog, critic statistics and `.ratchet/program.md`.

The learning modules (hints, escalation, bandit, ideas, critic, program) are
pure or own one file each; this module is the glue the decision tail and the
views call, so keep/ stays about measuring and deciding.

Crash safety follows the engine's ordering (record appended, then state.json
replaced as the decision's commit point):
  - the hints memory, the escalation level and the critic counters are pure
    folds in `core/state.apply_record` (core/memory, core/escalation), so
    they land in state.json in the same atomic write as the counters: a
    replayed record cannot count twice, because recovery only replays a
    record newer than state.iteration.
  - `persist` writes the files derived from a record (bandit.json, ideas.json,
    program.md) BEFORE state.json, and each write is idempotent: the bandit
    ignores an iteration it already credited (`last_iter`), a near miss is
    deduplicated by its iteration, program.md is regenerated whole. A kill
    anywhere before the state write is replayed by `recover.recover` and
    converges to the same files; a kill after it leaves nothing to do.
Everything the views read here is O(1) in the history length: state.json,
bandit.json and ideas.json are bounded, results.jsonl is never read.
"""


from __future__ import annotations

from . import bandit, critic, hints, ideas
from ..core import escalation, memory
from ..core.state import UNINFORMATIVE, RunState, learning_config
from ..core.errors import UsageError
from ..core.text import clip
from ..io import store_files
from ..io.store_lock import Lock

STATUS_HINTS = 3
VERDICT_HINTS = 2
STATUS_IDEAS = 3
HINT_CLIP = 140
URGENT_HINTS = ("failure streak:", "plateau:")
STATUS_BUDGET = 750   # bytes of learning lines in `status` (the rest of it is at most ~730)
VERDICT_BUDGET = 550  # bytes of learning lines in a verdict (the rest of it is at most ~930)


# --- records ------------------------------------------------------------------

def check_arm(cfg, arm: str | None) -> None:
    """UsageError (one line) unless `arm` is None or one of the run's arms."""
    if arm is None:
        return
    if cfg.strategy != "bandit":
        raise UsageError("--arm needs a run started with `init --strategy bandit`")
    if arm not in cfg.arms:
        raise UsageError(f"unknown arm {arm!r}; arms: {', '.join(cfg.arms)}")


def similar(hypothesis: str, state: RunState) -> dict | None:
    """The reverted hypothesis that `hypothesis` closely resembles, as
    {"iter", "ratio", "hypothesis"} for the record, or None."""
    mem = (state.memory if state else None) or {}
    match = hints.similar_reverted(hypothesis, mem)
    if match is None:
        return None
    text, ratio = match
    it = next((e.get("iter") for e in reversed(mem.get("reverted", [])) if e["hypothesis"] == text), None)
    return {"iter": it, "ratio": round(ratio, 2), "hypothesis": clip(text, 80)}


def similar_line(sim: dict) -> str:
    where = f"iter {sim['iter']}" if sim.get("iter") is not None else "one"
    return (f"warning: {sim['ratio']:.0%} similar to reverted {where} (\"{clip(sim['hypothesis'], 60)}\"); "
            f"change the mechanism, not the wording")


# --- derived files (idempotent, written before state.json) ---------------------

def bandit_path(run) -> str:
    return run.store.file("bandit")


def ideas_path(run) -> str:
    return run.store.file("ideas")


_OUTCOMES = {"agent-error": "crash", "tampered": "invalid", "out-of-scope": "invalid",
             "constraint": "revert", "guard-failed": "revert"}


def _outcome(decision: str) -> str:
    """The bandit outcome of a decision: each earns nothing but a keep; an
    agent that failed its step counts like a crash of the arm's change."""
    decision = _OUTCOMES.get(decision, decision)
    return decision if decision in bandit.OUTCOMES else "invalid"


def loop_arms(run, n: int = 1) -> list:
    """The arms the headless loop asks its n agents to use this iteration
    (None each without `--strategy bandit`): the suggested arm first, then
    the others by UCB1 score, so parallel proposers explore different arms."""
    cfg = run.config
    if cfg.strategy != "bandit" or not cfg.arms:
        return [None] * n
    band = bandit.load(bandit_path(run), list(cfg.arms))
    first = bandit.suggest(band)
    rest = sorted((a for a in band["arms"] if a != first),
                  key=lambda a: (-bandit.ucb(band, a), band["arms"].index(a)))
    ranked = [first] + rest
    return [ranked[i % len(ranked)] for i in range(n)]


def arm_text(run, arm: str) -> str:
    """What the loop's prompt says about the arm it assigns."""
    band = bandit.load(bandit_path(run), list(run.config.arms))
    return (f"Use the `{arm}` strategy for this change (the bandit's pick among "
            f"{', '.join(run.config.arms)}: {bandit.explain(band, arm)}). "
            f"Pick a change of that kind; ratchet credits the arm with the result.")


def persist(run, rec: dict, state: RunState) -> dict:
    """Credit the bandit, add a near miss to the ideas, regenerate program.md;
    return the snapshot program.md was made from (with this record's near
    miss), so the verdict renders from it instead of reading the files again.

    Called with the state about to be written; see the module docstring for
    why this runs before the state write and why a replay is harmless.
    """
    cfg = run.config
    if rec.get("decision") not in ("baseline",) + UNINFORMATIVE:
        arm = rec.get("arm")
        if cfg.strategy == "bandit" and arm in cfg.arms:
            path = bandit_path(run)
            before = bandit.load(path, list(cfg.arms))
            after = bandit.update(before, arm, _outcome(rec["decision"]),
                                  memory.effect(rec, cfg.direction), iteration=rec["iter"])
            if after is not before:
                bandit.save(path, after)
        ideas.auto_add_near_miss(ideas_path(run), rec, learning_config(cfg))
    return write_program(run, state, rec)


def start(run) -> None:
    """At `init`: a fresh bandit (when asked for) and the first program.md."""
    if run.config.strategy == "bandit":
        bandit.save(bandit_path(run), bandit.new_state(list(run.config.arms)))
    write_program(run, run.state)


def init_lines(cfg) -> list:
    """What `init` says about escalation and the bandit (and how patience and
    escalation's HALT combine: both stop the run, whichever comes first)."""
    esc = escalation.settings(learning_config(cfg))
    halt_after = esc["pivot"] + esc["halt_pivots"]
    lines = [f"escalation: REFINE after {esc['refine']} non-keeps, PIVOT after {esc['pivot']}, "
             f"SEARCH after {esc['search_pivots']} failed pivots, HALT after {esc['halt_pivots']} "
             f"({halt_after} non-keeps in a row)"]
    if cfg.patience and cfg.patience <= esc["pivot"]:
        lines.append(f"note: --patience {cfg.patience} stops the run at {cfg.patience} non-keeps, before the "
                     f"PIVOT directive can act; raise it or lower --escalation pivot=")
    if cfg.strategy == "bandit":
        lines.append(f"bandit arms: {', '.join(cfg.arms)} (pass the one you used to iterate --arm NAME)")
    return lines


def _program_state(state: RunState) -> dict:
    counts = state.counts
    return {**state.to_json(), "keeps": counts.get("keep", 0), "reverts": counts.get("revert", 0),
            "crashes": counts.get("crash", 0) + counts.get("timeout", 0)}


def write_program(run, state: RunState, rec: dict | None = None) -> dict:
    """Regenerate `.ratchet/program.md` from O(1) inputs (bounded by
    program.MAX_BYTES); return the snapshot it used (see `snapshot`)."""
    snap = facts(run, state, rec)
    arm = snap["arm"]["explain"] if snap["arm"] else None
    from . import program  # only a decision writes program.md; `status` never loads it
    text = program.render(run.config.to_dict(), _program_state(state), state.memory, snap["hints"],
                          state.escalation, arm, snap["ideas"], None)
    store_files.write_text(run.store.root, "program", text)
    return snap


# --- what status and the verdict show ---------------------------------------------

def _idea_rank(idea: dict, direction: str):
    """Agent ideas first (oldest first), then near misses, biggest effect first."""
    if idea.get("source") != "near-miss":
        return (0, 0.0, idea["id"])
    eff = memory.effect(idea.get("figures") or {}, direction)
    return (1, -(eff if eff is not None else 0.0), idea["id"])


def top_ideas(run, limit: int | None = None) -> tuple:
    """(the open ideas best first, up to `limit`; how many are open)."""
    return _top(ideas.list_open(ideas_path(run)), run.config.direction, limit)


def _top(opened: list, direction: str, limit: int | None) -> tuple:
    ranked = sorted(opened, key=lambda i: _idea_rank(i, direction))
    return (ranked if limit is None else ranked[:limit]), len(opened)


def _near_miss(opened: list, rec: dict | None) -> dict | None:
    """The open near-miss idea saved from `rec` (a revert), or None."""
    if not rec or rec.get("decision") != "revert":
        return None
    return next((i for i in opened if i.get("source") == "near-miss"
                 and (i.get("figures") or {}).get("iter") == rec.get("iter")), None)


def facts(run, state: RunState | None = None, rec: dict | None = None) -> dict:
    """Everything status, the verdict and program.md show about learning,
    read once from bandit.json and ideas.json; `near_miss` is the idea saved
    from `rec` when one is given (the verdict's line)."""
    st = run.state if state is None else state
    cfg = run.config
    esc = st.escalation or escalation.initial()
    arm = None
    if cfg.strategy == "bandit":
        band = bandit.load(bandit_path(run), list(cfg.arms))
        name = bandit.suggest(band)
        arm = {"suggested": name, "explain": bandit.explain(band, name)}
    opened = ideas.list_open(ideas_path(run))
    shown, n_open = _top(opened, cfg.direction, STATUS_IDEAS)
    return {"record_iter": rec.get("iter") if rec else None, "near_miss": _near_miss(opened, rec),
            "hints": hints.hints(st.memory, learning_config(cfg), st),
            "escalation": {**esc, "directive": escalation.directive(esc)},
            "arm": arm, "ideas": shown, "open_ideas": n_open,
            "critic": critic.critic_summary(st.critic_stats, st.counts)}


def _arm_line(snap: dict) -> str | None:
    arm = snap.get("arm")
    if not arm:
        return None
    return f"bandit: suggested arm {clip(arm['explain'], 90)}: iterate --arm {arm['suggested']}"


def _ideas_line(snap: dict) -> str | None:
    if not snap["ideas"]:
        return None
    shown = "; ".join(f"#{i['id']} {clip(i['text'], 45)}" for i in snap["ideas"])
    more = snap["open_ideas"] - len(snap["ideas"])
    return f"ideas ({snap['open_ideas']} open{f', {more} more in `ideas list`' if more else ''}): {shown}"


def _within(items: list, budget: int) -> list:
    """The lines of `items` ((priority, line) in display order) that fit in
    `budget` bytes, most important (lowest priority number) first."""
    chosen, used = set(), 0
    for i in sorted(range(len(items)), key=lambda i: items[i][0]):
        size = len(items[i][1].encode("utf-8")) + 1
        if used + size <= budget:
            chosen.add(i)
            used += size
    return [line for i, (_, line) in enumerate(items) if i in chosen]


def _hint_items(found: list, priorities: tuple, limit: int) -> list:
    return [(p, "hint: " + clip(h, limit)) for p, h in zip(priorities, found)]


def status_lines(state: RunState, snap: dict) -> list:
    """The learning lines of `status`: at most 7, within STATUS_BUDGET bytes
    (escalation, hints, arm, ideas, critic; the least urgent dropped first)."""
    items = []
    active = not state.stop
    if active and snap["escalation"]["level"] != "NORMAL":
        items.append((0, "escalation " + clip(snap["escalation"]["directive"], HINT_CLIP)))
    items += _hint_items(snap["hints"], (1, 3, 6)[:STATUS_HINTS], HINT_CLIP)
    if active and _arm_line(snap):
        items.append((2, _arm_line(snap)))
    if _ideas_line(snap):
        items.append((5, clip(_ideas_line(snap), 170)))
    if snap["critic"]:
        items.append((4, snap["critic"]["short"]))
    return _within(items, STATUS_BUDGET)


def verdict_lines(state: RunState, rec: dict, snap: dict) -> list:
    """The learning lines of a verdict: at most 6, within VERDICT_BUDGET
    bytes; none of the advice once the run has stopped. Only the urgent hints
    (failure streak, plateau) repeat here every iteration; what to avoid and
    the biggest win are in `status` and program.md, read after a break."""
    items = []
    if rec.get("similar"):
        items.append((0, similar_line(rec["similar"])))
    miss = snap.get("near_miss")
    if miss is not None and (miss.get("figures") or {}).get("iter") == rec.get("iter"):
        items.append((1, f"near miss saved as idea #{miss['id']} (`ideas list`); retry it stronger later"))
    if not state.stop:
        if snap["escalation"]["level"] != "NORMAL":
            items.append((2, "escalation " + clip(snap["escalation"]["directive"], HINT_CLIP)))
        urgent = [h for h in snap["hints"] if h.startswith(URGENT_HINTS)]
        items += _hint_items(urgent, (3, 5)[:VERDICT_HINTS], HINT_CLIP)
        if _arm_line(snap):
            items.append((4, _arm_line(snap)))
    return _within(items, VERDICT_BUDGET)


# --- the `ideas` verb ----------------------------------------------------------------

def _edit_ideas(run, change, arg: str) -> dict:
    """`change(path, arg)` on the backlog under the lock, then program.md follows."""
    with Lock(run.store, "ideas"):
        run.state = run.store.read_state() or run.state
        idea = change(ideas_path(run), arg)
        write_program(run, run.state)
    return idea


def ideas_add(run, text: str) -> dict:
    """`ideas add TEXT`: program.md then shows it."""
    return _edit_ideas(run, ideas.add, text)


def ideas_done(run, n: str) -> dict:
    """`ideas done N`: program.md then drops it."""
    return _edit_ideas(run, ideas.done, n)
