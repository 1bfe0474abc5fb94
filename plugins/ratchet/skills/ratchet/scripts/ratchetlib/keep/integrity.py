"""What must hold besides the metric: the pinned harness, the sealed
`.ratchet/` files, git's own configuration, nothing written outside the
change, and (for a keep) the guard command. Each check returns a verdict
with its record fields, or None when it holds."""

from __future__ import annotations


from ..core import decision
from ..io import carry, gitguard, harness, seal, workspace
from ..io.store_seal import put_back
from . import candidate


def tampered(run: workspace.Run, changes: dict, when: str) -> tuple:
    """The `tampered` verdict and its record fields for harness `changes`."""
    lost = harness.unrestorable(run.store.root, changes)
    reason = (f"tampered: protected file(s) changed {when}: {candidate.listing(changes)}; "
              f"the harness was restored and the candidate reverted")
    if lost:
        reason += f"; no copy to restore {', '.join(lost[:3])}: the run stops"
    extra = {"tampered": changes, **({"unrestorable": lost} if lost else {})}
    return decision.Verdict(decision.TAMPERED, None, None, reason), extra


def before_trials(run: workspace.Run, cand: candidate.Candidate) -> tuple:
    """Before trials: (verdict, record fields) for a tampered harness, no
    change, or a change outside the editable scope; (None, {}) otherwise."""
    changes = {**_sealed_changes(run), **harness.verify(run.repo, run.store.root)}
    changes.update(gitguard.verify(run.repo, run.store.root))
    for p in gitguard.attributes_in(cand.paths):
        changes.setdefault(p, harness.ADDED if p in cand.new else harness.EDITED)
    for p, kind in cand.kinds:
        changes.setdefault(p, kind)
    if changes:
        return tampered(run, dict(sorted(changes.items())), "before the trials")
    if not cand.paths:
        return decision.Verdict(decision.NO_CHANGE, None, None, "no change: the working tree equals the incumbent"), {}
    if cand.outside:
        return (decision.Verdict(decision.OUT_OF_SCOPE, None, None,
                                 f"out-of-scope: changed path(s) outside the editable scope: {', '.join(cand.outside[:5])}"),
                {"out_of_scope": list(cand.outside)})
    return None, {}


def after_batch(run: workspace.Run, when: str, window: dict | None = None, trials=()) -> tuple | None:
    """After trials or the guard ran candidate code: `tampered` if the harness,
    a sealed file or git's configuration moved, if a pinned file was rewritten
    since `window` (harness.window, taken before that code ran) even though its
    content is back, or if a run wrote outside its change (carry.py, already
    undone by `watched_trial`)."""
    changes = {**_sealed_changes(run), **harness.verify(run.repo, run.store.root)}
    changes.update(gitguard.verify(run.repo, run.store.root))
    for rel, kind in (harness.rewritten(run.repo, window) if window else {}).items():
        changes.setdefault(rel, kind)
    if changes:
        return tampered(run, dict(sorted(changes.items())), when)
    hit = next((t["carried"] for t in trials if t.get("carried")), None)
    if hit is None:
        return None
    if hit.get("git"):
        v, extra = tampered(run, hit["git"], when)
        return v, {**extra, **({"outside_writes": hit["outside"]} if hit["outside"] else {})}
    who = "the candidate's run" if hit["role"] == "candidate" else "an incumbent run"
    extra = {"outside_writes": hit["outside"], "startup_hooks": hit["hooks"]}
    if hit["lost"]:
        extra["not_restored"] = hit["lost"]
    return decision.Verdict(decision.TAMPERED, None, None, carry.reason(hit["outside"], hit["hooks"], hit["lost"], who)), extra


def _sealed_changes(run: workspace.Run) -> dict:
    """Sealed `.ratchet/` files rewritten while this command ran (by a trial,
    the guard or the agent): put back at once, before the harness is read,
    and reported as tampered paths (`.ratchet/config.json`: edited)."""
    names = seal.changed(run.store.root)
    put_back(run.store.root, names)
    return {f".ratchet/{n}": harness.EDITED for n in names}


def gate(run: workspace.Run, it: int, v: decision.Verdict, extra: dict) -> tuple:
    """A keep must pass the guard too: it runs now, on the candidate, and the
    harness is checked again after it (it ran candidate code)."""
    cfg = run.config
    if v.decision != decision.KEEP or not cfg.guard_command:
        return v, extra
    from ..measure import guard  # only a run with a guard loads it
    win = harness.window(run.repo, run.store.root)
    extra["guard"] = g = guard.run(cfg, run.repo, run.store, it)
    tampered = after_batch(run, "while the guard ran", win)
    if tampered:
        return tampered[0], {**extra, **tampered[1]}
    if g["status"] != "ok":
        return decision.Verdict(decision.GUARD_FAILED, v.avg, v.delta,
                                f"guard-failed: {g['detail']}; reverted although the metric would keep it "
                                f"({v.reason})"), extra
    return v, extra
