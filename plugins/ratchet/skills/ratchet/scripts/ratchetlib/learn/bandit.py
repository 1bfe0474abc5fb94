"""The strategy bandit (`--strategy bandit`): UCB1 over kinds of change.

Each iteration the agent is told which strategy arm to try (`suggest`), passes
the arm it used to `iterate --arm NAME`, and the outcome is credited to that
arm (`update`). Every outcome counts as a pull, so an arm whose changes crash
or change nothing loses ground like one whose changes are reverted.

Reward, in [0, 1] as UCB1's confidence bound assumes:
    keep      0.5 + 0.5 * min(max(effect, 0) / 0.10, 1)   (0.5 when effect unknown)
    otherwise 0
A keep is the event that matters and has passed the statistical test, so any
keep earns at least half the reward: an arm that keeps often wins over one that
keeps rarely, even when its wins are small. The other half grows linearly with
the keep's relative effect and saturates at 10%, so among arms that keep, the
one with bigger verified wins is preferred, and one outsized win cannot drown
every other arm's record. Using the effect alone would make rewards tiny (most
wins are a few percent) and as noisy as the estimates themselves.

File `.ratchet/bandit.json` (format 1):
    {"format": 1, "arms": ["algorithm", ...], "total": 7, "last_iter": 9,
     "stats": {"algorithm": {"n": 3, "reward": 1.1, "keeps": 2}, ...}}
"""

import math

from ..io import store
from ..core.steering import DEFAULT_ARMS, check_arms
from ..core.errors import UsageError

FORMAT = 1
OUTCOMES = ("keep", "revert", "crash", "timeout", "invalid", "no-change")
KEEP_BASE = 0.5
EFFECT_CAP = 0.10


def new_state(arms=None):
    """A bandit with every arm untried; UsageError for bad or repeated names."""
    arms = check_arms(DEFAULT_ARMS if arms is None else arms)
    return {"format": FORMAT, "arms": arms, "total": 0, "last_iter": -1,
            "stats": {a: {"n": 0, "reward": 0.0, "keeps": 0} for a in arms}}


def require_arm(state, arm):
    """UsageError (one line, listing the arms) unless `arm` is one of the
    bandit's arms; `iterate --arm` calls it before running any trial."""
    if arm not in state["stats"]:
        raise UsageError(f"unknown arm {arm!r}; arms: {', '.join(state['arms'])}")


def reward(outcome, effect=None):
    """The reward of one outcome (see the module docstring for why)."""
    if outcome not in OUTCOMES:
        raise UsageError(f"unknown outcome {outcome!r}; outcomes: {', '.join(OUTCOMES)}")
    if outcome != "keep":
        return 0.0
    if effect is None or not math.isfinite(effect):
        return KEEP_BASE
    return KEEP_BASE + (1 - KEEP_BASE) * min(max(effect, 0.0) / EFFECT_CAP, 1.0)


def ucb(state, arm):
    """The arm's UCB1 score: mean reward + sqrt(2 ln N / n); inf when untried."""
    require_arm(state, arm)
    stats = state["stats"][arm]
    if stats["n"] == 0:
        return math.inf
    return stats["reward"] / stats["n"] + math.sqrt(2 * math.log(state["total"]) / stats["n"])


def suggest(state):
    """The arm to try next: the first untried arm in configured order, then the
    highest UCB1 score (ties go to the earlier arm)."""
    return max(state["arms"], key=lambda arm: (ucb(state, arm), -state["arms"].index(arm)))


def update(state, arm, outcome, effect=None, iteration=None):
    """A new state with one pull of `arm` credited with `outcome` (a record's
    decision) and its relative `effect` (positive = better; only read for a
    keep). UsageError for an unknown arm or outcome.

    With `iteration` (the record's iter) the update is idempotent: an
    iteration at or below the last one credited returns the state unchanged,
    so recovery that replays a record after a crash between writing
    results.jsonl and bandit.json cannot count it twice.
    """
    require_arm(state, arm)
    if iteration is not None and iteration <= state.get("last_iter", -1):
        return state
    gained = reward(outcome, effect)
    stats = {name: dict(s) for name, s in state["stats"].items()}
    stats[arm]["n"] += 1
    stats[arm]["reward"] += gained
    stats[arm]["keeps"] += 1 if outcome == "keep" else 0
    last = state.get("last_iter", -1) if iteration is None else iteration
    return {**state, "arms": list(state["arms"]), "total": state["total"] + 1, "stats": stats,
            "last_iter": last}


def explain(state, arm):
    """One short line on why `arm` is suggested, for status and program.md."""
    require_arm(state, arm)
    stats = state["stats"][arm]
    if stats["n"] == 0:
        return f"{arm} (untried)"
    return (f"{arm} ({stats['n']} tries, {stats['keeps']} kept, "
            f"mean reward {stats['reward'] / stats['n']:.2f})")


def _reconcile(state, arms):
    """The stored statistics re-fitted to a new arm list: known arms keep
    theirs, new arms start untried, dropped arms' pulls leave the total."""
    fresh = new_state(arms)
    for arm in fresh["arms"]:
        if arm in state["stats"]:
            fresh["stats"][arm] = dict(state["stats"][arm])
    fresh["total"] = sum(s["n"] for s in fresh["stats"].values())
    fresh["last_iter"] = state.get("last_iter", -1)
    return fresh


def load(path, arms=None):
    """The bandit at `path`; a new one with `arms` (default DEFAULT_ARMS) when
    the file is missing. When `arms` is given and differs from the stored
    list, the stored statistics are re-fitted to it."""
    data = store.read_json(path, "bandit.json")
    if data is None:
        return new_state(arms)
    try:
        state = {"format": FORMAT, "arms": check_arms(data["arms"]),
                 "total": int(data["total"]), "last_iter": int(data.get("last_iter", -1)),
                 "stats": {a: {"n": int(data["stats"][a]["n"]),
                               "reward": float(data["stats"][a]["reward"]),
                               "keeps": int(data["stats"][a].get("keeps", 0))}
                           for a in data["arms"]}}
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise UsageError(f"{path}: not a bandit state ({exc})") from None
    if arms is not None and list(arms) != state["arms"]:
        return _reconcile(state, arms)
    return state


def save(path, state):
    """Write the bandit atomically."""
    store.write_json(path, state)
