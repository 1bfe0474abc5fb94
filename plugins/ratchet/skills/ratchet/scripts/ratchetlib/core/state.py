"""The run state: one typed, immutable value for everything a run has
decided so far, and the only functions that make a new one from an old.

Why one place: the state is what recovery replays and what every verb
reads, so a transition written twice (or a key spelled two ways) is a
state that can disagree with its own records. `apply_record` is the fold of
one finished record; it is pure, so `keep/recover` can replay a record a
killed command had already written and land on the same state. The other
transitions are named for what happened (`stopped`, `with_verified`, ...).
`RunState` is frozen: code elsewhere reads fields and hands the new value
to `io/store` (the one writer of `.ratchet/`); it cannot edit one in place.

On disk it is state.json (FORMATS.md "state.json", format `FORMAT`):
`to_json`/`from_json` round-trip every field, and keys this version does not
know (a newer ratchet's) are kept in `extra` and written back unchanged.
"""


from __future__ import annotations

from . import record

# The record fold's rules (decision, the statistics behind `power`, the
# memory) are imported inside the fold: every verb reads the state, and
# `status` must not load the statistics to print a few lines (issue 18).

FORMAT = 1

# Decisions that say nothing about the change: the loop was stopped (a
# signal, the wall-clock budget) before it was measured. They leave the hints
# memory, the escalation level and the critic counters as they were.
UNINFORMATIVE = ("interrupted",)


class RunState(record.Record):
    """Counters and pointers of one run (FORMATS.md documents each field)."""

    run_id: str = ""
    iteration: int = -1                   # the last finished iteration (0 after baseline)
    incumbent_sha: str | None = None   # what candidates are measured against; HEAD between iterations
    incumbent_score: float | None = None
    incumbent_metrics: dict | None = None
    incumbent_iter: int | None = None  # the iteration that made HEAD (what a verify names)
    baseline: float | None = None
    best: float | None = None          # the best kept pair mean: what won its own decision
    best_iter: int | None = None
    last_score: float | None = None
    since_keep: int = 0
    consecutive_crashes: int = 0
    counts: dict = record.Factory(dict)
    stop: str | None = None
    untracked_before: list = record.Factory(list)
    ignored_before: list | None = None  # None: a run from before the field, which flags nothing
    archived: str | None = None
    harness: dict | None = None
    unpinned: bool = False                # adopted from before harness pinning: no harness.json to require
    sealed_after: int | None = None    # adopted from before seals: the last record written unsealed
    recovered: dict | None = None
    agent: dict | None = None
    memory: dict | None = None
    escalation: dict | None = None
    critic_stats: dict | None = None
    pareto: list | None = None
    noise: dict | None = None
    log_scale: bool = True
    detectable_effect: float | None = None
    verified: dict | None = None
    outputs_seen: list | None = None
    updated: str | None = None
    extra: dict = record.Factory(dict)  # keys of a newer format, written back as read

    @property
    def started(self) -> bool:
        """Whether the baseline has been recorded."""
        return self.iteration >= 0

    def to_json(self) -> dict:
        out = {"format": FORMAT, **self.extra}
        for name in record.fields(self):
            if name != "extra":
                out[name] = getattr(self, name)
        return out


_FIELDS = frozenset(record.fields(RunState)) - {"extra"}


def from_json(obj: dict | None) -> RunState:
    """The state read from state.json (None: a run with no state yet).
    Missing keys take their defaults (an older run); unknown ones are kept."""
    obj = dict(obj or {})
    obj.pop("format", None)
    known = {k: v for k, v in obj.items() if k in _FIELDS}
    known.setdefault("log_scale", True)
    if known.get("log_scale") is None:
        known["log_scale"] = True
    if known.get("iteration") is None:
        known["iteration"] = -1
    for key in ("since_keep", "consecutive_crashes"):
        known[key] = known.get(key) or 0
    known["counts"] = known.get("counts") or {}
    known["untracked_before"] = known.get("untracked_before") or []
    return RunState(**known, extra={k: v for k, v in obj.items() if k not in _FIELDS})


def new_run(run_id: str, start_commit: str, untracked: list, ignored: list,
            archived: str | None = None, harness: dict | None = None) -> RunState:
    """The state `init` writes: no baseline yet, the start commit as incumbent."""
    return RunState(run_id=run_id, incumbent_sha=start_commit, untracked_before=list(untracked),
                    ignored_before=list(ignored), archived=archived, harness=harness)


# --- the record fold (pure; recovery replays it) --------------------------------

def _counters(st: RunState, rec: dict, cfg) -> dict:
    """The counter and incumbent fields after `rec`."""
    from . import budget, decision, pareto
    d = rec["decision"]
    counts = dict(st.counts)
    counts[d] = counts.get(d, 0) + 1
    ch = {"counts": counts, "iteration": rec["iter"]}
    if rec.get("avg") is not None:
        ch["last_score"] = rec["avg"]
    if d in (decision.KEEP, decision.BASELINE):
        metrics = rec.get("metrics") or {cfg.metric_name: rec["avg"]}
        ch.update(incumbent_sha=rec["sha"], incumbent_score=rec["avg"], incumbent_iter=rec["iter"],
                  incumbent_metrics=metrics, since_keep=0)
        if len(cfg.objectives) > 1:
            point = {"iter": rec["iter"], "sha": rec["sha"], "metrics": metrics}
            ch["pareto"] = pareto.update_frontier(st.pareto, point, cfg.objectives)
        if st.best is None or cfg.better(rec["avg"], st.best):
            ch.update(best=rec["avg"], best_iter=rec["iter"])
        if d == decision.BASELINE:
            ch["baseline"] = rec["avg"]
    elif d != decision.INTERRUPTED:
        ch["since_keep"] = st.since_keep + 1
    if d in decision.FAILURES:
        ch["consecutive_crashes"] = st.consecutive_crashes + 1
    elif d in (decision.KEEP, decision.REVERT, decision.BASELINE):
        ch["consecutive_crashes"] = 0
    agent = budget.fold(st.agent, rec)
    if agent is not None:
        ch["agent"] = agent
    return ch


def _learning(st: RunState, rec: dict, cfg) -> dict:
    """The hints memory, the escalation level and the critic counters after `rec`."""
    from . import decision, escalation
    from .memory import fold_critic, new_memory, update_memory
    d = rec.get("decision")
    if d in UNINFORMATIVE:
        return {}
    if d == decision.BASELINE:
        return {"memory": st.memory or new_memory(), "escalation": st.escalation or escalation.initial()}
    conf = learning_config(cfg)
    ch = {"memory": update_memory(st.memory, rec, conf),
          "escalation": escalation.advance(st.escalation, d == decision.KEEP, conf)}
    stats = fold_critic(st.critic_stats, rec)
    if stats is not None:
        ch["critic_stats"] = stats
    return ch


def _noise(st: RunState, rec: dict, cfg) -> dict:
    """The baseline's calibration sets `noise`/`log_scale`; a paired
    decision's effects refine the noise; `detectable_effect` follows it."""
    from . import decision
    from .noise import update_noise
    from .power import detectable, noise_of
    if rec.get("decision") == decision.BASELINE and rec.get("noise"):
        ch = {"noise": rec["noise"], "log_scale": rec.get("log_scale", True) is not False}
    else:
        noise, fx = noise_of(st.noise), rec.get("effects") or []
        if noise is None or len(fx) < 2 or bool(rec.get("log_scale")) != noise.log_scale:
            return {}
        try:
            ch = {"noise": update_noise(noise, fx).to_json()}
        except ValueError:
            return {}
    noise = noise_of(ch["noise"])
    if noise is not None:
        ch["detectable_effect"] = detectable(cfg, noise, st.baseline or rec.get("avg"))
    return ch


def apply_record(st: RunState, rec: dict, cfg) -> RunState:
    """The run state after `rec`: pure, so recovery can replay it. A stop
    condition (iteration cap, patience, threshold, crash budget, an
    unrestorable harness, an escalation HALT) sets `stop` once."""
    from . import decision
    st = record.replace(st, **_counters(st, rec, cfg))
    stop = st.stop
    if rec.get("unrestorable") and not stop:
        stop = (f"harness could not be restored ({', '.join(rec['unrestorable'][:3])}); "
                f"restore it by hand and start a new run")
    st = record.replace(st, stop=stop or decision.stop_reason(st, cfg))
    st = record.replace(st, **_learning(st, rec, cfg))
    if (st.escalation or {}).get("stop") and not st.stop:
        st = record.replace(st, stop=st.escalation["stop"])
    return record.replace(st, **_noise(st, rec, cfg))


def learning_config(cfg) -> dict:
    """The slice of the run config the learning folds and hints read."""
    return {"direction": cfg.direction, "escalation": dict(cfg.escalation or {})}


# --- the other transitions ---------------------------------------------------------

def after_decision(st: RunState, untracked: list, ignored: list) -> RunState:
    """What the tree holds once a decision is applied: the untracked files a
    revert must never delete, and the git-ignored entries known so far."""
    return record.replace(st, untracked_before=list(untracked), ignored_before=list(ignored))


def with_untracked(st: RunState, now: list) -> RunState:
    """Untracked files that appeared between decisions (a wrapper's log, a
    cache) join `untracked_before`: they are not the agent's."""
    return record.replace(st, untracked_before=sorted(set(now) | set(st.untracked_before)))


def with_outputs(st: RunState, seen: list) -> RunState:
    """The paths the benchmark's own runs write outside the diff (io/carry)."""
    return record.replace(st, outputs_seen=list(seen))


def with_verified(st: RunState, verified: dict, cfg) -> RunState:
    """The last paired re-measurement of HEAD against the start; one that
    confirms a --threshold stops the run (core/headline.py)."""
    from . import decision
    st = record.replace(st, verified=verified)
    return record.replace(st, stop=st.stop or decision.stop_reason(st, cfg))


def stopped(st: RunState, reason: str) -> RunState:
    """The run stopped for `reason`, unless it had already stopped."""
    return record.replace(st, stop=st.stop or reason)


def recovered(st: RunState, notes: list, at: str) -> RunState:
    """The last recovery (at most 8 notes) and how many there were, so
    `status` can tell it later."""
    prev = st.recovered or {}
    return record.replace(st, recovered={"count": prev.get("count", 0) + 1, "at": at,
                                              "iteration": st.iteration, "notes": list(notes[:8])})
