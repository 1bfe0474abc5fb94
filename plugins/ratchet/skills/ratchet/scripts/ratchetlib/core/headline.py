"""The run's cumulative gain as people read it: one honest figure.

The best's own figure (`state.best` against the baseline) is the mean
that won its keep decision: the winner's curse makes it too high (a lucky
first run is exactly what gets kept), and under drift it compares runs made
hours apart. So the headline is the re-measured gain (`state.verified`,
keep/recheck.py: paired runs of HEAD against the start commit, with its 95%
interval), and only when it measured the current HEAD (`sha` =
`incumbent_sha`). Otherwise it says "not yet re-measured"; the best's own
figure appears only labelled as what it is.

The same rule decides a `--threshold` stop: the confirmed value (`value`:
the baseline moved by the re-measured ratio) must cross it, not the best's
own mean (`threshold_to_confirm`, `confirmed_value`; core/decision.py).

Pure functions of the run state (core/state.RunState; FORMATS.md
"state.json"), `current` of its two fields for the report's JSON; no I/O.
"""


from __future__ import annotations

from . import change
from .text import finite, num

NAIVE_LABEL = "measured in its own decision, not re-measured"
WHEN = "re-measured at the stop, 3 decisions after a keep, or by `ratchet.py verify`"
BY_HAND = "run `ratchet.py verify` to re-measure it"


def current(verified: dict | None, head: str | None) -> dict | None:
    """`verified` when it re-measured `head`, the current HEAD (a verify
    without `sha`, from a hand-made or old state, counts as current), else None."""
    if not isinstance(verified, dict) or finite(verified.get("gain_pct")) is None:
        return None
    sha = verified.get("sha")
    return verified if sha is None or sha == head else None


def of_head(st) -> dict | None:
    """The run state's verify when it re-measured HEAD (`current`)."""
    return current(st.verified, st.incumbent_sha)


def kept_anything(st) -> bool:
    return bool(st.counts.get("keep")) or of_head(st) is not None


def figure(verified: dict, direction: str = "max", log_scale: bool = True) -> str | None:
    """'+20.0% [+18.0%, +22.0%]': the verified change of the metric itself, or None."""
    pct, iv = change.verified_change(verified, direction, log_scale)
    if pct is None:
        return None
    return change.percent(pct / 100) + (f" {change.bracket(iv[0] / 100, iv[1] / 100)}" if iv else "")


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def what(verified: dict) -> str:
    """'8 pairs, HEAD at iter 7 vs the start': what a verify measured."""
    it, pairs = verified.get("iter"), verified.get("pairs")
    return ((f"{pairs} pairs, " if _int(pairs) else "") + "HEAD" + (f" at iter {it}" if _int(it) else "")
            + " vs the start")


def verified_line(verified, direction: str = "max", log_scale: bool = True) -> str | None:
    """`verified gain over the start: +20.0% [+18.0%, +22.0%] (8 pairs, HEAD at
    iter 7 vs the start)`, or None when `verified` holds no gain."""
    if not isinstance(verified, dict) or finite(verified.get("gain_pct")) is None:
        return None
    text = figure(verified, direction, log_scale)
    return None if text is None else f"verified gain over the start: {text} ({what(verified)})"


def gain_line(st, direction: str = "max", paired: bool = True) -> str | None:
    """The headline of `status`: the verified gain of HEAD, or why there is
    none yet (naming the last verify when it measured an earlier best, and
    when one runs: automatically only in `paired` runs); None while nothing
    was kept."""
    scale = st.log_scale
    now = of_head(st)
    if now is not None:
        return verified_line(now, direction, scale)
    if not kept_anything(st):
        return None
    head = st.incumbent_iter
    line = "gain over the start: not yet re-measured" + (f" for HEAD (iter {head})" if head is not None else "")
    old = st.verified
    shown = figure(old, direction, scale) if isinstance(old, dict) and finite(old.get("gain_pct")) is not None else None
    if shown:
        return f"{line}; the last re-measure, of an earlier best: {shown} ({what(old)})"
    return f"{line}; {WHEN if paired else BY_HAND}"


def naive(st) -> str:
    """'best 20 at iter 3 (measured in its own decision, not re-measured)'."""
    return f"best {num(st.best)} at iter {st.best_iter} ({NAIVE_LABEL})"


def confirmed_value(st) -> float | None:
    """The metric's value HEAD was re-measured at (the baseline moved by the
    re-measured ratio or difference), or None when HEAD is not re-measured."""
    v = of_head(st)
    return None if v is None else finite(v.get("value"))


def threshold_to_confirm(st, config) -> bool:
    """The best's own figure crosses --threshold while HEAD (a kept change) is
    not yet re-measured: re-measure before stopping (keep/finish.py)."""
    t, best = config.threshold, st.best
    if t is None or finite(best) is None or config.better(t, best) or st.iteration < 1:
        return False
    if not st.incumbent_sha or st.incumbent_sha == config.start_commit:
        return False
    return of_head(st) is None


def threshold_line(st, config) -> str | None:
    """The verdict's line when the best's own figure crosses --threshold but
    the run goes on: the re-measure did not confirm it (or could not run)."""
    t, best = config.threshold, st.best
    if t is None or st.stop or finite(best) is None or config.better(t, best):
        return None
    if st.iteration < 1:
        return None
    value = confirmed_value(st)
    if value is None:
        return (f"threshold {num(t)} not confirmed: the best's own figure {num(best)} crosses it, HEAD is not "
                f"re-measured yet (the next decision re-measures it); the run goes on")
    return (f"threshold {num(t)} not confirmed: HEAD re-measured against the start reads {num(value)} "
            f"({figure(of_head(st), config.direction)}), not the best's own {num(best)}; the run goes on")
