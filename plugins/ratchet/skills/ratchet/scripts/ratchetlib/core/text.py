"""The one place that turns a value into short text: clip, number, percent.

Every line ratchet prints (the verdict, `status`, the report, the loop's
prompt, commit messages) goes through these, so a figure reads the same
wherever it appears and a cut is always marked the same way (`…`).

Pure functions; no I/O. Two conventions are deliberate and pinned by tests:
- a missing number prints as `-` in the terminal lines (the agent and
  `status` read them) and as `–` in the report document (`MISSING_DOC`);
- the verdict's headline percent (`ratio_pct`) has two decimals so a change
  near the keep margin reads exactly, the report's (`pct`) one decimal.
"""

from __future__ import annotations

import math

MISSING = "-"          # a missing number in the terminal lines
MISSING_DOC = "–"      # a missing number in the report (Markdown / HTML)


def clip(text, limit: int) -> str:
    """`text` on one line (whitespace collapsed), at most `limit` characters;
    an ellipsis marks a cut. None reads as empty."""
    text = " ".join(("" if text is None else str(text)).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def finite(value) -> float | None:
    """A finite float, or None: records carry null (or junk) for missing figures."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def num(value, sign: bool = False, missing: str = MISSING, digits: int = 6) -> str:
    """A metric value for people, short but exact enough to tell scores apart:
    whole numbers below 1e15 in full, others with `digits` significant
    digits, without an exponent from 1e-4 to 1e10; `missing` for None, junk
    or non-finite values. `sign` puts a `+` before positive values.

    This merges the two formatters there were: the terminal lines' (whole
    numbers in full, `-` when missing) and the report's (no exponent for
    everyday magnitudes, `–`). Each kept what its tests assert; the merge
    changes only figures that read more exactly now: a non-whole value from
    1e6 to 1e10 in the terminal lines (`1234567.8` was `1.23457e+06`) and a
    whole one from 1e10 to 1e15 in the report (`10000000000` was `1e+10`)."""
    v = finite(value)
    if v is None:
        return missing
    plus = "+" if sign else ""
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):{plus}d}"
    return f"{v:{plus}.{digits}g}" if not 1e-4 <= abs(v) < 1e10 else _fixed(v, plus, digits)


def _fixed(v: float, plus: str, digits: int) -> str:
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    text = f"{v:{plus}.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def pct(p: float, signed: bool = True) -> str:
    """A percentage with one decimal (two significant digits when tiny, three when huge)."""
    sign = "+" if signed else ""
    if abs(p) >= 1e6:
        return f"{p:{sign}.3g}%"
    if p == 0 or abs(p) >= 0.1:
        return f"{p:{sign}.1f}%"
    return f"{p:{sign}.2g}%"


def ratio_pct(delta: float | None, base: float | None) -> str:
    """`delta` relative to `base` as '+2.00%' (two decimals), '' when either is
    missing or the base is zero."""
    if delta is None or not base:
        return ""
    return f"{delta / abs(base) * 100:+.2f}%"
