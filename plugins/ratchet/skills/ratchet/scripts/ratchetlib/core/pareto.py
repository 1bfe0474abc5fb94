"""Several primary metrics: keep a change that is better on one, worse on none.

The objectives are the primary metric (`--metric-name`/`--direction`) first,
then every `--metric NAME:max|min[:MARGIN]` in order; each has a margin (its
own, else `--min-improvement`). The rule, in `judge`:

- each objective gets a three-way verdict from `compare_one`: `better` when
  the candidate's mean beats the incumbent's by MORE than the margin,
  `worse` when it trails by MORE than the margin, else `same` (an exact tie
  is `same`);
- keep iff at least one objective is `better` and none is `worse`;
  otherwise revert (all `same`: nothing beyond the noise margin; any `worse`:
  a regression, even if another metric improved a lot).

Edge cases: every primary metric must be in every trial; a trial without
one is `no-metric`, so the iteration is a crash before this rule runs (a
missing number is never read as a tie). A candidate mean that is missing all
the same (possible only when the agent scored the primary metric by hand with
`score`) counts as `worse`. An incumbent without a value for an objective (a
run configured before the metric existed) counts that objective as `same`.

`compare_one` is the only place that says what "significantly" means. It
compares means against the margin, like the single-metric rule. With paired
decisions (paired.py) the incumbent's means are those measured in the same
pairs (not the stored ones) and the number of pairs is set by the sequential
test on the primary metric; a per-objective paired test in `compare_one`
(better / worse / same from each metric's pair effects) is not built yet.

The frontier (`update_frontier`) is the set of kept results (baseline
included) that no other kept result dominates: at least as good on every
objective and strictly better on one, no margins. It lives in state.json.
"""

from __future__ import annotations


from .decision import KEEP, REVERT, Verdict, mean
from .text import num

BETTER, WORSE, SAME = "better", "worse", "same"


def _beats(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "max" else a < b


def compare_one(candidate: float, incumbent: float | None, direction: str, margin) -> str:
    """BETTER, WORSE or SAME for one objective (means; `margin` has `.over`)."""
    if candidate is None:
        return WORSE
    if incumbent is None:
        return SAME
    m = margin.over(incumbent)
    if direction == "max":
        return BETTER if candidate > incumbent + m else WORSE if candidate < incumbent - m else SAME
    return BETTER if candidate < incumbent - m else WORSE if candidate > incumbent + m else SAME


def averages(trials: list, names) -> dict:
    """{name: mean over the trials that have it} (the primary's are `score`)."""
    out = {}
    for i, name in enumerate(names):
        out[name] = mean(t.get("score") if i == 0 else (t.get("metrics") or {}).get(name) for t in trials)
    return out


def judge(avgs: dict, incumbent: dict, objectives) -> tuple:
    """(Verdict, {name: better|worse|same}) for valid trials' means `avgs`.

    `objectives` is [(name, direction, margin)], primary first; `incumbent`
    the incumbent's means. The Verdict's avg and delta are the primary's.
    """
    verdicts, parts = {}, []
    for name, direction, margin in objectives:
        cand, inc = avgs.get(name), incumbent.get(name)
        verdicts[name] = compare_one(cand, inc, direction, margin)
        parts.append(f"{name} {num(cand)} vs {num(inc)} {verdicts[name]}")
    primary = objectives[0][0]
    delta = None if incumbent.get(primary) is None else avgs[primary] - incumbent[primary]
    listing = "; ".join(parts)
    worse = [n for n, v in verdicts.items() if v == WORSE]
    better = [n for n, v in verdicts.items() if v == BETTER]
    if better and not worse:
        return Verdict(KEEP, avgs[primary], delta, f"kept: better on {', '.join(better)}, worse on none ({listing})"), verdicts
    why = f"worse on {', '.join(worse)}" if worse else "no metric beyond its margin"
    return Verdict(REVERT, avgs[primary], delta, f"reverted: {why} ({listing})"), verdicts


def dominates(a: dict, b: dict, objectives) -> bool:
    """True when metrics `a` are at least as good as `b` everywhere and better once."""
    strictly = False
    for name, direction, _ in objectives:
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            return False
        if _beats(y, x, direction):
            return False
        strictly = strictly or _beats(x, y, direction)
    return strictly


def update_frontier(frontier: list, point: dict, objectives) -> list:
    """The frontier after adding `point` ({"iter", "sha", "metrics"})."""
    pts = list(frontier or [])
    if any(dominates(p["metrics"], point["metrics"], objectives) for p in pts):
        return pts
    return [p for p in pts if not dominates(point["metrics"], p["metrics"], objectives)] + [point]
