"""The pure part of `doctor`: the record every check appends (`Check`: ok,
warn or fail, with a one-line fix) and the figures a few measured runs
imply. No I/O, so tests/test_doctor checks the figures directly.

The noise figures are deliberately simple (issue 3 brings the paired test):
from n runs, sd is the sample standard deviation and CV = sd / |mean|. With
N = --trials runs per iteration, comparing two means of N:
- the smallest effect detected with power 0.8 at two-sided alpha 0.05 is
  MDE = (1.96 + 0.84) * sqrt(2) * sd / sqrt(N) ~= 2.8 * sqrt(2) * sd / sqrt(N);
- the engine keeps a change whose mean beats the incumbent by more than the
  margin, so a change that does nothing is kept with probability
  1 - Phi(margin / (sd * sqrt(2 / N))): 50% with no margin. A margin of
  1.645 * sd * sqrt(2 / N) brings that to 5%.
Both assume roughly normal, independent runs; n = 3..5 runs estimate sd
roughly, which is why these lines warn rather than fail.
"""

import math

from ..core import record


OK, WARN, FAIL = "ok", "warn", "fail"
Z_POWER = 2.8                  # 1.96 (alpha 0.05, two-sided) + 0.84 (power 0.8)
Z_FALSE_KEEP = 1.645           # one-sided 5%


class Check(record.Record, frozen=False):
    name: str
    status: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return record.asdict(self)


def noise(scores: list) -> dict:
    """mean, sd (sample), cv (percent) of the scores; sd None below two."""
    n = len(scores)
    mean = math.fsum(scores) / n if n else None
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "cv_pct": None}
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in scores) / (n - 1))
    return {"n": n, "mean": mean, "sd": sd, "cv_pct": sd / abs(mean) * 100 if mean else None}


def mde(sd: float, trials: int) -> float:
    """The smallest detectable difference of two means of `trials` runs (module docstring)."""
    return Z_POWER * math.sqrt(2) * sd / math.sqrt(trials)


def false_keep_rate(sd: float, trials: int, margin: float) -> float:
    """P(a no-op change is kept) when a keep needs mean > incumbent + margin."""
    if sd <= 0:
        return 0.0
    z = margin / (sd * math.sqrt(2 / trials))
    return 0.5 * math.erfc(z / math.sqrt(2))


def trials_for(sd: float, mean: float, goal_pct: float, trials: int) -> int:
    """--trials that bring the MDE down to goal_pct of |mean|."""
    goal = abs(mean) * goal_pct / 100
    if goal <= 0:
        return trials
    return max(trials, math.ceil((Z_POWER * math.sqrt(2) * sd / goal) ** 2))


def suggest_timeout(max_seconds: float) -> int:
    """Three times the slowest run, at least 10 s, rounded up to a round number."""
    t = max(10.0, 3 * max_seconds)
    step = 5 if t < 60 else (30 if t < 600 else 300)
    return int(math.ceil(t / step) * step)


def seconds_text(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def num_text(x) -> str:
    return f"{x:.4g}"
