"""`status`'s trend line: the last scores as a sparkline (oldest first), with
their lowest and highest (named so, never "a to b", which reads as a time order).

Pure: the caller hands in the records (status reads only a tail of
results.jsonl, TREND_WIDTH long; test_learning holds it to <= 10) and the
stream it will print to, to pick block or ASCII characters.
"""

from ..core import term
from ..core.text import MISSING_DOC, finite as _finite, num

TREND_WIDTH = 10   # status reads only this tail of results.jsonl (test_learning holds it to <= 10)
_SPARK = "▁▂▃▄▅▆▇█"
_SPARK_ASCII = "_.-:=+*#"


def sparkline(values, width=20, ascii=False):
    """The last `width` scores as one line of block characters (ASCII levels
    `_.-:=+*#` when `ascii`); a missing or non-finite score is `×` (`x`).
    Equal scores sit mid-height; an empty list gives ''."""
    levels, miss = (_SPARK_ASCII, "x") if ascii else (_SPARK, "×")
    vals = [_finite(v) for v in list(values)[-width:]] if width > 0 else []
    finite = [v for v in vals if v is not None]
    if not finite:
        return miss * len(vals)
    lo, hi = min(finite), max(finite)
    top = len(levels) - 1
    out = []
    for v in vals:
        if v is None:
            out.append(miss)
        elif hi == lo:
            out.append(levels[top // 2])
        else:
            out.append(levels[round((v - lo) / (hi - lo) * top)])
    return "".join(out)


def trend(records: list, stream=None) -> str:
    """`status`'s one-line sparkline of the last scores, or '' before any:
    `trend: ▁▃▅×█  last 5 scores, oldest first; lowest 98, highest 118 (× no score)`."""
    if not records:
        return ""
    values = [r.get("avg") for r in records][-TREND_WIDTH:]
    ascii_only = not term.can_encode(sparkline([1, 2]) + "×→", stream)
    spark = sparkline(values, width=TREND_WIDTH, ascii=ascii_only)
    finite = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    span = (f"; lowest {num(min(finite), missing=MISSING_DOC)}, highest {num(max(finite), missing=MISSING_DOC)}"
            if finite else "")
    miss = "x" if ascii_only else "×"
    missing = f" ({miss} no score)" if len(finite) < len(values) else ""
    return f"trend: {spark}  last {len(values)} scores, oldest first{span}{missing}"
