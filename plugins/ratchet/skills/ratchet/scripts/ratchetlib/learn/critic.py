"""The critic's statistics: which proposal (A, B, or the agent's own idea)
an iteration went with, and how often each was kept.

`critic_record` is the record's `critic` field from the iterate flags;
the pure counter update `fold_critic` lives with the run state's other
folds (core/memory, applied by core/state.apply_record); `critic_summary` renders the O(1)
counters for status and the verdict, `critic_summary_of` the same over a
list of records (`history`).
"""


from __future__ import annotations

from ..core.memory import fold_critic
from ..core.text import clip

CRITIC_KEYS = ("a", "b", "none", "other")
PROPOSAL_CAP = 300


def critic_record(pick: str | None, reason: str | None, proposal_a: str | None = None,
                  proposal_b: str | None = None) -> dict | None:
    """`record["critic"]` from the iterate flags, or None when none was given.

    `pick` is `a`, `b` or `none` (the critic rejected both; the agent made its
    own change); any other text (older skill versions passed the chosen
    proposal's summary) is kept as given and counted as a pick of unknown side.
    """
    if not any((pick, reason, proposal_a, proposal_b)):
        return None
    clean = clip(pick, PROPOSAL_CAP) if pick else None
    if clean and clean.lower() in ("a", "b", "none"):
        clean = clean.lower()
    out = {"pick": clean, "reason": clip(reason, PROPOSAL_CAP) if reason else None}
    if proposal_a or proposal_b:
        out["proposals"] = {"a": clip(proposal_a, PROPOSAL_CAP) if proposal_a else None,
                            "b": clip(proposal_b, PROPOSAL_CAP) if proposal_b else None}
    return out


def _rate(n: int, kept: int) -> str:
    return f"{kept}/{n}" + (f" ({kept / n:.0%})" if n else "")


def critic_summary(stats: dict | None, counts: dict | None) -> dict | None:
    """How often the critic's pick was kept against every iteration's keep
    rate, from the O(1) counters (or None without critic records)."""
    if not stats:
        return None
    get = lambda k: (stats.get(k) or {"n": 0, "kept": 0})  # noqa: E731
    picked = {"n": sum(get(k)["n"] for k in ("a", "b", "other")),
              "kept": sum(get(k)["kept"] for k in ("a", "b", "other"))}
    counts = counts or {}
    overall = {"n": sum(v for k, v in counts.items() if k != "baseline"), "kept": counts.get("keep", 0)}
    short = (f"critic: picks kept {_rate(picked['n'], picked['kept'])} · own ideas "
             f"{_rate(get('none')['n'], get('none')['kept'])} · all {_rate(overall['n'], overall['kept'])}")
    line = (f"critic: picks kept {_rate(picked['n'], picked['kept'])} (A {_rate(get('a')['n'], get('a')['kept'])}, "
            f"B {_rate(get('b')['n'], get('b')['kept'])}) · own ideas {_rate(get('none')['n'], get('none')['kept'])}"
            f" · all iterations {_rate(overall['n'], overall['kept'])}")
    return {"picked": picked, "a": get("a"), "b": get("b"), "none": get("none"), "other": get("other"),
            "overall": overall, "line": line, "short": short}


def critic_summary_of(records: list) -> dict | None:
    """The same summary over a list of records (for `history`)."""
    stats, counts = None, {}
    for rec in records:
        stats = fold_critic(stats, rec)
        counts[rec.get("decision")] = counts.get(rec.get("decision"), 0) + 1
    return critic_summary(stats, counts)
